//! `dingtail man`: one man page, dingtail(1), made from the clap definitions so it never drifts
//! from `--help`. `clap_mangen` renders one command per page; dingtail's subcommands are few and
//! small, so each gets its own section (synopsis, description, options) on the same page, the way
//! `git` users expect to find `man dingtail` answer everything.

use std::io::{self, Write};

use clap::Command;
use clap_mangen::Man;

/// Writes dingtail(1) as roff to `out`.
pub fn render(cmd: Command, out: &mut dyn Write) -> io::Result<()> {
    let cmd = cmd.name("dingtail");
    Man::new(cmd.clone()).render(out)?;
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        let name = format!("dingtail {}", sub.get_name());
        let man = Man::new(sub.clone().name(name.clone()).bin_name(name.clone()));
        let mut section = Vec::new();
        man.render_synopsis_section(&mut section)?;
        man.render_description_section(&mut section)?;
        if sub.get_arguments().any(|a| !a.is_hide_set()) {
            man.render_options_section(&mut section)?;
        }
        // The subcommand's own headings become subsections under one heading per subcommand.
        let section = String::from_utf8_lossy(&section).replace(".SH ", ".SS ");
        writeln!(out, ".SH \"{}\"", name.to_uppercase())?;
        out.write_all(section.as_bytes())?;
    }
    Ok(())
}
