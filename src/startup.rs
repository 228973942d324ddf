//! The line `run` prints on stderr before it reads anything, so that nobody watches nothing
//! without knowing it: what is followed (each path and glob with the files it matches now, or
//! stdin) and where messages go (the robots, or stdout). Things that look like a mistake are
//! warnings: a glob that matches nothing, a path that is a directory, a missing file with
//! `--once`, standard input with data on it while files are followed (it is not read then).
//!
//! It only looks; the tailer decides what is read. Globs are expanded the way the tailer expands
//! them (the `glob` crate, relative paths against the working directory).

use std::path::{Path, PathBuf};

use crate::config::Config;

/// What `run` is about to do, in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Startup {
    /// The one line: what is followed and where messages go.
    pub line: String,
    /// Each a line of its own, after `warning: `.
    pub warnings: Vec<String>,
    /// With `--once`: no file to read at all (the command exits 2).
    pub nothing_to_read: bool,
}

/// How standard input looks, for the warning about data piped in while following files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stdin {
    /// A terminal, `/dev/null` or closed: nothing is lost by not reading it.
    Idle,
    /// A pipe or a file: someone meant it to be read.
    Data,
}

impl Stdin {
    /// Looks at this process's standard input.
    pub fn detect() -> Stdin {
        use std::io::IsTerminal;
        if std::io::stdin().is_terminal() {
            return Stdin::Idle;
        }
        match std::fs::metadata("/dev/stdin") {
            Ok(m) if m.is_file() && m.len() > 0 => Stdin::Data,
            Ok(m) => {
                use std::os::unix::fs::FileTypeExt;
                if m.file_type().is_fifo() || m.file_type().is_socket() {
                    Stdin::Data
                } else {
                    Stdin::Idle
                }
            }
            Err(_) => Stdin::Idle,
        }
    }
}

/// Describes a run of `config` with the command line's `paths`.
pub fn describe(
    config: &Config,
    paths: &[String],
    once: bool,
    dry_run: bool,
    stdin: Stdin,
) -> Startup {
    let patterns: Vec<&str> = config
        .inputs
        .iter()
        .map(|i| i.path.as_str())
        .chain(paths.iter().map(String::as_str))
        // `-` is stdin (`app::run` refuses it beside files).
        .filter(|p| *p != "-")
        .collect();
    let mut warnings = Vec::new();
    let mut parts = Vec::new();
    let mut files_now = 0usize;
    for pattern in &patterns {
        let is_glob = glob::Pattern::escape(pattern) != *pattern;
        if is_glob {
            let matched: Vec<PathBuf> = glob::glob(pattern)
                .map(|g| g.flatten().filter(|p| p.is_file()).collect())
                .unwrap_or_default();
            files_now += matched.len();
            if matched.is_empty() {
                warnings.push(format!(
                    "{pattern} matches no file{}",
                    if once {
                        ""
                    } else {
                        " yet (files that appear later are followed)"
                    }
                ));
                parts.push(format!(
                    "{pattern} (no file{})",
                    if once { "" } else { " yet" }
                ));
            } else {
                let shown: Vec<String> = matched
                    .iter()
                    .take(5)
                    .map(|p| p.display().to_string())
                    .collect();
                parts.push(format!(
                    "{pattern} ({} file{}: {}{})",
                    matched.len(),
                    if matched.len() == 1 { "" } else { "s" },
                    shown.join(", "),
                    if matched.len() > 5 { ", …" } else { "" }
                ));
            }
        } else {
            let path = Path::new(pattern);
            if path.is_dir() {
                warnings.push(format!(
                    "{pattern} is a directory, not a log file; name its files or a glob such as '{}'",
                    path.join("*.log").display()
                ));
                parts.push(format!("{pattern} (a directory: nothing read)"));
            } else if path.is_file() {
                files_now += 1;
                parts.push((*pattern).to_owned());
            } else {
                warnings.push(if once {
                    format!("{pattern} does not exist; nothing to read from it")
                } else {
                    format!("{pattern} does not exist yet (it is followed once it appears)")
                });
                parts.push(format!("{pattern} (missing)"));
            }
        }
    }
    let reading = if patterns.is_empty() {
        "reading stdin".to_owned()
    } else {
        if stdin == Stdin::Data {
            warnings.push(
                "standard input is not read while following files (inputs: or PATH arguments); \
                 run without them to read stdin"
                    .to_owned(),
            );
        }
        format!(
            "{} {}",
            if once { "reading once" } else { "following" },
            parts.join(", ")
        )
    };
    let robots: Vec<&str> = config.robots.iter().map(|r| r.name.as_str()).collect();
    let sending = if robots.is_empty() {
        "no robot: printing messages to stdout".to_owned()
    } else if dry_run {
        format!(
            "robots {} (dry run: printing, not sending)",
            robots.join(", ")
        )
    } else {
        format!(
            "sending to robot{} {}",
            if robots.len() == 1 { "" } else { "s" },
            robots.join(", ")
        )
    };
    Startup {
        line: format!("dingtail: {reading}; {sending}"),
        warnings,
        nothing_to_read: once && !patterns.is_empty() && files_now == 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(yaml: &str) -> Config {
        crate::config::parse_str(yaml, "t.yaml", &|_| None).unwrap()
    }

    #[test]
    fn says_what_is_followed_and_warns_about_what_looks_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        std::fs::write(dir.path().join("a.log"), "x\n").unwrap();
        std::fs::write(dir.path().join("b.log"), "x\n").unwrap();
        let c = config("rules: [{name: e, match: E}]\n");
        let paths = vec![
            format!("{d}/*.log"),
            format!("{d}/*.txt"),
            format!("{d}"),
            format!("{d}/gone.log"),
        ];
        let s = describe(&c, &paths, false, false, Stdin::Data);
        assert!(
            s.line.starts_with(&format!("dingtail: following {d}/*.log (2 files: {d}/a.log, {d}/b.log), {d}/*.txt (no file yet), {d} (a directory: nothing read), {d}/gone.log (missing); no robot")),
            "{}",
            s.line
        );
        assert_eq!(s.warnings.len(), 4, "{:?}", s.warnings);
        assert!(s.warnings[0].contains("matches no file yet"));
        assert!(s.warnings[1].contains("is a directory"));
        assert!(s.warnings[2].contains("does not exist yet"));
        assert!(s.warnings[3].contains("standard input is not read"));
        assert!(!s.nothing_to_read);

        let once = describe(&c, &paths[1..], true, false, Stdin::Idle);
        assert!(once.nothing_to_read);
        assert!(once.line.contains("reading once"));
        let stdin = describe(&c, &[], false, false, Stdin::Data);
        assert_eq!(
            stdin.line,
            "dingtail: reading stdin; no robot: printing messages to stdout"
        );
        assert!(stdin.warnings.is_empty());
    }
}
