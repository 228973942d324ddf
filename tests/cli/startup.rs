//! What `run` says before it reads (never silently watch nothing), and `--dry-run`/`test`
//! without the robots' secrets in the environment.

use std::path::Path;
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_dingtail");

const CONFIG: &str = r#"robots:
  ops:
    webhook: "https://oapi.dingtalk.com/robot/send?access_token=${DT_TEST_TOKEN}"
    secret: "${DT_TEST_SECRET}"
rules:
  - name: error
    match: ERROR
"#;

fn dingtail(dir: &Path, args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut c = Command::new(BIN);
    c.args(args)
        .current_dir(dir)
        .env_remove("DINGTAIL_CONFIG")
        .env_remove("DT_TEST_TOKEN")
        .env_remove("DT_TEST_SECRET")
        .env("DINGTAIL_HOST", "h")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    match stdin {
        Some(_) => c.stdin(Stdio::piped()),
        None => c.stdin(Stdio::null()),
    };
    let mut child = c.spawn().unwrap();
    if let Some(input) = stdin {
        use std::io::Write;
        // A run that refuses to start exits before reading: a broken pipe is its answer.
        let _ = child.stdin.take().unwrap().write_all(input);
    }
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn dry_run_and_test_need_no_secrets_but_run_does() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("dingtail.yaml"), CONFIG).unwrap();
    let input = b"ok\nERROR one\nERROR two\n";

    let out = dingtail(dir.path(), &["run", "--dry-run"], Some(input));
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("DT_TEST_SECRET, DT_TEST_TOKEN not set; fine here"),
        "{stderr}"
    );
    let line: serde_json::Value = serde_json::from_str(text(&out.stdout).trim()).unwrap();
    assert_eq!(line["robot"], "ops");
    assert_eq!(line["count"], 2);
    assert!(!text(&out.stdout).contains("SEC-unset"));

    let out = dingtail(dir.path(), &["test"], Some(input));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("2 of 3 lines matched"));

    // Sending does need them, and says which.
    let out = dingtail(dir.path(), &["run"], Some(input));
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("environment variable DT_TEST_TOKEN is not set"),
        "{stderr}"
    );
}

#[test]
fn run_says_what_it_follows_and_where_messages_go() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("a.log"), "ERROR x\n").unwrap();
    std::fs::create_dir(d.join("logs")).unwrap();

    // stdin
    let out = dingtail(d, &["run", "--dry-run"], Some(b"fine\n"));
    assert!(
        text(&out.stderr)
            .starts_with("dingtail: reading stdin; no robot: printing messages to stdout\n"),
        "{}",
        text(&out.stderr)
    );

    // Files: each path and glob with what it matched; mistakes are warnings.
    let out = dingtail(
        d,
        &[
            "run",
            "--once",
            "--from-beginning",
            "*.log",
            "logs",
            "nothing-*.txt",
        ],
        None,
    );
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.starts_with(
            "dingtail: reading once *.log (1 file: a.log), logs (a directory: nothing read), nothing-*.txt (no file); no robot"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("warning: logs is a directory, not a log file; name its files or a glob such as 'logs/*.log'"),
        "{stderr}"
    );
    assert!(
        stderr.contains("warning: nothing-*.txt matches no file"),
        "{stderr}"
    );
    assert!(stderr.contains("read 1 lines"), "{stderr}");

    // --once with nothing to read at all: exit 2, and why.
    let out = dingtail(d, &["run", "--once", "missing.log"], None);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("warning: missing.log does not exist; nothing to read from it"),
        "{stderr}"
    );
    assert!(stderr.contains("--once and no file to read"), "{stderr}");

    // Data piped in while following files is not read: said, not silently dropped.
    let out = dingtail(d, &["run", "--once", "a.log"], Some(b"ERROR piped\n"));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("warning: standard input is not read while following files"),
        "{stderr}"
    );
}

#[test]
fn a_machine_without_ca_certificates_is_told_so() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("certs");
    std::fs::create_dir(&empty).unwrap();
    std::fs::write(
        dir.path().join("dingtail.yaml"),
        "robots:\n  ops:\n    webhook: \"https://127.0.0.1:1/robot/send?access_token=t0k3n\"\nrules: []\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["send", "hello"])
        .current_dir(dir.path())
        .env_remove("DINGTAIL_CONFIG")
        .env("SSL_CERT_DIR", &empty)
        .env("SSL_CERT_FILE", empty.join("none.pem"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("no usable CA certificates on this machine")
            && stderr.contains("ca-certificates"),
        "{stderr}"
    );
    assert!(!stderr.contains("t0k3n"), "{stderr}");
}
