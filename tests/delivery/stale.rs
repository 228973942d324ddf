//! `stale:` through the real binary and the emulator: stdin that writes nothing for a while is
//! an alert of its own, and its return is one too; counts of the rules stay exact.

use std::io::Write;
use std::time::Duration;

use crate::support::emulator::{Emulator, RobotSpec};
use crate::support::env::{TestEnv, header_counts};

const TOKEN: &str = "tok-ops";
/// Only a bound on waiting for a message that is due: never reached when dingtail works.
const PATIENCE: Duration = Duration::from_secs(60);

#[test]
fn stdin_that_goes_quiet_is_stale_and_its_return_is_back() {
    let emu = Emulator::start(vec![RobotSpec::new(TOKEN)]);
    let config = format!(
        "robots:\n  ops: {{ webhook: \"{}\" }}\ndefaults:\n  window: 100ms\nstdin: {{ stale: 400ms }}\nrules:\n  - {{ name: err, match: ERROR }}\n",
        emu.webhook(TOKEN)
    );
    let env = TestEnv::new().config(&config);
    let mut run = env.start(&["run"]);
    let mut stdin = run.stdin();
    let posted = |needle: &str| {
        let deadline = std::time::Instant::now() + PATIENCE;
        let mut n = 1;
        loop {
            let posts = emu.wait_for_posts(n, PATIENCE);
            if posts.iter().any(|p| p.text().contains(needle)) {
                return posts.len();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no {needle}: {posts:#?}"
            );
            n = posts.len() + 1;
        }
    };
    stdin.write_all(b"starting up\n").unwrap();
    stdin.flush().unwrap();
    // nothing more for 400 ms: stale
    posted("【stale-input stdin】absent");
    stdin.write_all(b"ERROR disk full\n").unwrap();
    stdin.flush().unwrap();
    posted("【stale-input stdin】back");
    drop(stdin);
    let out = run.wait();
    assert_eq!(out.code, 0, "{}", out.stderr);
    let posts = emu.posts();
    let texts: Vec<String> = posts.iter().map(|p| p.text()).collect();
    // absent and back alternate, starting with absent; the rule's one line is counted once
    let news: Vec<&str> = (texts.iter())
        .flat_map(|t| t.lines())
        .filter(|l| l.starts_with("【stale-input stdin】"))
        .map(|l| {
            if l.contains("】absent") {
                "absent"
            } else {
                "back"
            }
        })
        .collect();
    assert!(news.len() >= 2, "{texts:#?}");
    for (i, n) in news.iter().enumerate() {
        assert_eq!(*n, if i % 2 == 0 { "absent" } else { "back" }, "{texts:#?}");
    }
    let absent = texts.iter().find(|t| t.contains("】absent")).unwrap();
    assert!(
        absent.contains("nothing was read from it for 400ms"),
        "{absent}"
    );
    let counts: Vec<(String, u64)> = texts.iter().flat_map(|t| header_counts(t)).collect();
    assert_eq!(counts, [("err".to_owned(), 1)], "{texts:#?}");
}

#[test]
fn check_names_a_bad_stale_duration() {
    let env = TestEnv::new().config(
        "inputs:\n  - { path: /var/log/a.log, stale: 0s }\nstdin: { stale: 90days }\nrules:\n  - { name: a, match: x }\n",
    );
    env.run(&["check"], b"").assert_problems(&[
        &["rules.yaml:2:", "input 1, field 'stale'"],
        &["rules.yaml:3:", "stdin, field 'stale'", "longest"],
    ]);
}
