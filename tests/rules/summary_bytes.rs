//! The summary counts every byte read, the skipped tails of lines cut at `max_line_bytes`
//! included, on stdin and on followed files alike.

use crate::support::env::TestEnv;

const CONFIG: &str = "max_line_bytes: 256\nrules:\n  - { name: err, match: ERROR }\n";

/// A 10,000-byte line (cut at 256), a matching line, and a long last line without a newline.
fn input() -> Vec<u8> {
    let mut v = vec![b'x'; 10_000];
    v.push(b'\n');
    v.extend_from_slice(b"ERROR one\n");
    v.extend(std::iter::repeat_n(b'y', 3_000));
    v.push(b'\n');
    v
}

#[test]
fn stdin_summary_counts_the_bytes_of_cut_lines() {
    let input = input();
    let out = TestEnv::new()
        .config(CONFIG)
        .run(&["run", "--dry-run"], &input);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let want = format!("read 3 lines ({} bytes)", input.len());
    assert!(out.stderr.contains(&want), "want {want}:\n{}", out.stderr);
}

#[test]
fn followed_file_summary_counts_the_bytes_of_cut_lines() {
    let input = input();
    let env = TestEnv::new().config(CONFIG);
    let path = env.dir().join("app.log");
    std::fs::write(&path, &input).unwrap();
    let path = path.display().to_string();
    let out = env.run(
        &["run", "--dry-run", "--from-beginning", "--once", &path],
        b"",
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let want = format!("({} bytes)", input.len());
    assert!(out.stderr.contains(&want), "want {want}:\n{}", out.stderr);
}
