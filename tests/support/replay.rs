//! What `dingtail test --replay` printed, read back: each message with the log time it was
//! sent at, for tests that check windows, mute windows and escalations on the log's clock.

/// The `timestamp:` block of a config for log lines that start `YYYY-MM-DD HH:MM:SS`.
pub const TIMESTAMP: &str = "timestamp:\n  regex: '^(\\S+ \\S+)'\n  format: '%Y-%m-%d %H:%M:%S'\n";

/// The replayed messages, in order: (the time in the message's `--- TIME · SOURCE` header,
/// its text), up to the `===` summary.
pub fn replayed(stdout: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in stdout.lines() {
        if let Some(rest) = line.strip_prefix("--- ") {
            out.push((rest.split(" · ").next().unwrap().to_owned(), String::new()));
        } else if line.starts_with("===") {
            break;
        } else if let Some(last) = out.last_mut() {
            last.1.push_str(line);
            last.1.push('\n');
        }
    }
    out
}
