//! `dingtail init` through the real binary, on made-up logs and on every Loghub sample (read
//! from the shared data directory at run time, never copied into the repository).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_dingtail");

fn dingtail(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env_remove("DINGTAIL_CONFIG")
        .env("DINGTAIL_HOST", "web-01")
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The Loghub samples: `$DINGTAIL_LOGHUB`, else `shared/data/loghub` beside the repository (as CI
/// lays it out), else the workplace's copy. Missing data fails the test.
fn loghub() -> PathBuf {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let candidates = [
        std::env::var_os("DINGTAIL_LOGHUB").map(PathBuf::from),
        Some(repo.join("../shared/data/loghub")),
        Some(PathBuf::from("/work/shared/data/loghub")),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|p| p.join("Apache_2k.log").exists())
        .expect("the Loghub samples (shared/data/loghub) are not found; set DINGTAIL_LOGHUB")
}

#[test]
fn init_writes_a_valid_commented_config_and_never_overwrites_silently() {
    let dir = tempfile::tempdir().unwrap();
    let out = dingtail(dir.path(), &["init"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let yaml = std::fs::read_to_string(dir.path().join("dingtail.yaml")).unwrap();
    assert!(yaml.starts_with("# dingtail.yaml: written by `dingtail init`"));
    assert!(yaml.contains("# robots:"), "{yaml}");
    assert!(yaml.contains("- name: error"), "{yaml}");
    let check = dingtail(dir.path(), &["check"]);
    assert!(check.status.success(), "{}", text(&check.stderr));
    assert!(text(&check.stdout).contains("dingtail.yaml: ok"));

    std::fs::write(dir.path().join("dingtail.yaml"), "# mine\n").unwrap();
    let again = dingtail(dir.path(), &["init"]);
    assert_eq!(again.status.code(), Some(2));
    assert!(
        text(&again.stderr).contains("--force"),
        "{}",
        text(&again.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("dingtail.yaml")).unwrap(),
        "# mine\n"
    );
    let forced = dingtail(dir.path(), &["init", "--force"]);
    assert!(forced.status.success());
    assert!(
        std::fs::read_to_string(dir.path().join("dingtail.yaml"))
            .unwrap()
            .starts_with("# dingtail.yaml")
    );
}

#[test]
fn init_picks_the_packs_that_fit_and_replays_the_samples() {
    let dir = tempfile::tempdir().unwrap();
    let access = dir.path().join("access.log");
    let mut log = String::new();
    for i in 0..30 {
        let status = if i % 3 == 0 { 502 } else { 200 };
        log.push_str(&format!(
            "10.0.0.{i} - - [29/Nov/2026:10:44:{:02} +0800] \"GET /api/pay HTTP/1.1\" {status} 12 \"-\" \"curl\"\n",
            i
        ));
    }
    std::fs::write(&access, &log).unwrap();
    let auth = dir.path().join("auth.log");
    std::fs::write(
        &auth,
        "Nov 29 10:44:54 web sshd[1]: Accepted publickey for root from 10.0.0.9 port 22 ssh2\n",
    )
    .unwrap();
    let out = dingtail(
        dir.path(),
        &[
            "init",
            access.to_str().unwrap(),
            auth.to_str().unwrap(),
            "-o",
            "my.yaml",
        ],
    );
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("access.log: recognised nginx-access.yaml (30 of 30 lines)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("auth.log: recognised sshd.yaml"),
        "{stderr}"
    );
    let yaml = std::fs::read_to_string(dir.path().join("my.yaml")).unwrap();
    assert!(yaml.contains("# ---- from rules/nginx-access.yaml ----"));
    assert!(yaml.contains("# ---- from rules/sshd.yaml ----"));
    assert!(!yaml.contains("rules/default.yaml"), "{yaml}");
    assert!(yaml.contains(&format!(
        "  - path: \"{}\"",
        std::fs::canonicalize(&access).unwrap().display()
    )));
    // The replay: ten 502s within a minute pass the pack's threshold of 5; the root login is
    // told once.
    assert!(stdout.contains("【nginx-5xx】"), "{stdout}");
    assert!(stdout.contains("【ssh-root-login】×1 web-01"), "{stdout}");
    let check = dingtail(dir.path(), &["check", "-c", "my.yaml"]);
    assert!(check.status.success(), "{}", text(&check.stderr));
}

#[test]
fn init_on_every_loghub_sample() {
    let dir = tempfile::tempdir().unwrap();
    let data = loghub();
    let mut samples: Vec<PathBuf> = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    samples.sort();
    assert!(samples.len() >= 16, "{samples:?}");
    let expected = [
        (
            "OpenSSH_2k.log",
            "recognised sshd.yaml (2000 of 2000 lines)",
        ),
        ("Mac_2k.log", "recognised systemd-kernel.yaml"),
        ("Apache_2k.log", "no known format; using the built-in rules"),
    ];
    for sample in &samples {
        let name = sample.file_name().unwrap().to_str().unwrap();
        let out_file = format!("{name}.yaml");
        let out = dingtail(
            dir.path(),
            &["init", sample.to_str().unwrap(), "-o", &out_file],
        );
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        assert!(out.status.success(), "{name}: {stderr}");
        assert!(
            stderr.contains("recognised") || stderr.contains("no known format"),
            "{name}: {stderr}"
        );
        if let Some((_, want)) = expected.iter().find(|(n, _)| *n == name) {
            assert!(stderr.contains(want), "{name}: {stderr}");
        }
        assert!(
            stdout.contains("=== dingtail test --replay"),
            "{name}: {stdout}"
        );
        let check = dingtail(dir.path(), &["check", "-c", &out_file]);
        assert!(check.status.success(), "{name}: {}", text(&check.stderr));
        if name == "Apache_2k.log" {
            // Every one of the sample's [error] lines is in a message.
            assert!(
                stdout.contains("message(s), 595 matching line(s) in them"),
                "{stdout}"
            );
        }
        if name == "OpenSSH_2k.log" {
            assert!(stdout.contains("【ssh-bruteforce】"), "{stdout}");
        }
    }
}

#[test]
fn builtin_rules_catch_apache_and_nginx_error_lines() {
    let dir = tempfile::tempdir().unwrap();
    let apache = loghub().join("Apache_2k.log");
    let out = dingtail(dir.path(), &["test", apache.to_str().unwrap()]);
    let stdout = text(&out.stdout);
    assert!(
        stdout
            .lines()
            .any(|l| l.split_whitespace().eq(["error", "595"])),
        "{stdout}"
    );
    let errors = std::fs::read_to_string(&apache)
        .unwrap()
        .lines()
        .filter(|l| l.contains("] [error] "))
        .count();
    assert_eq!(errors, 595);

    let nginx = dir.path().join("error.log");
    std::fs::write(
        &nginx,
        "2026/11/29 10:44:54 [error] 12#12: *1 connect() failed (111: Connection refused)\n\
         2026/11/29 10:44:55 [crit] 12#12: *2 SSL_do_handshake() failed\n\
         2026/11/29 10:44:56 [notice] 12#12: signal process started\n\
         [Wed Oct 11 14:32:52.123 2026] [proxy:error] [pid 9] AH00940: disabled connection\n\
         no [error]s here, errors=0\n",
    )
    .unwrap();
    let out = dingtail(dir.path(), &["test", nginx.to_str().unwrap()]);
    let stdout = text(&out.stdout);
    assert!(stdout.contains("3 of 5 lines matched"), "{stdout}");
    assert!(!stdout.contains("[notice]"), "{stdout}");
}
