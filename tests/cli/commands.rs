//! `dingtail check`, `test` and `send` through the real binary.

use crate::support::emulator::{Emulator, RobotSpec};
use crate::support::env::TestEnv;

const TOKEN: &str = "tok-feedfacecafebeef";
const SECRET: &str = "SECabcdef0123456789";

#[test]
fn check_summarises_a_good_config() {
    let emu = Emulator::start(vec![]);
    let yaml = format!(
        "robots:\n  ops:\n    webhook: \"{}\"\nrules:\n  - {{name: a, match: x}}\n  - {{name: b, match: y}}\n",
        emu.webhook(TOKEN)
    );
    let env = TestEnv::new().config(&yaml);
    let out = env.run(&["check"], b"");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains("ok: 1 robot(s) (ops), 2 rule(s)"),
        "{}",
        out.stdout
    );
}

#[test]
fn check_lists_every_problem_with_file_line_rule_and_field() {
    let yaml = r#"robots:
  ops:
    webhook: "https://oapi.dingtalk.com/robot/send?access_token=${MISSING_TOKEN}"
    secret: "${MISSING_SECRET}"
rules:
  - name: bad-regex
    match: '(unclosed'
  - name: bad-window
    match: ok
    window: forever
  - name: bad-robot
    match: ok
    robot: nobody
"#;
    let env = TestEnv::new().config(yaml);
    let out = env.run(&["check"], b"");
    assert_eq!(out.code, 2);
    let file = env.config_path().display().to_string();
    let lines: Vec<&str> = out.stderr.lines().collect();
    let expect = [
        format!(
            "{file}:3:14: robot 'ops', field 'webhook': environment variable MISSING_TOKEN is not set"
        ),
        format!(
            "{file}:4:13: robot 'ops', field 'secret': environment variable MISSING_SECRET is not set"
        ),
        format!("{file}:7:12: rule 'bad-regex', field 'match': invalid regex"),
        format!("{file}:10:13: rule 'bad-window', field 'window': `forever` is not a duration"),
        format!("{file}:13:12: rule 'bad-robot', field 'robot': unknown robot `nobody`"),
    ];
    assert_eq!(lines.len(), expect.len(), "{}", out.stderr);
    for (line, want) in lines.iter().zip(&expect) {
        assert!(
            line.starts_with(want.as_str()),
            "{line}\nshould start with\n{want}"
        );
    }
}

#[test]
fn check_of_a_missing_file_is_a_usage_error() {
    let out = TestEnv::new().run(&["check", "-c", "nope.yaml"], b"");
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("nope.yaml"), "{}", out.stderr);
}

#[test]
fn config_comes_from_env_then_cwd_then_builtin() {
    let env = TestEnv::new();
    std::fs::write(
        env.dir().join("dingtail.yaml"),
        "rules:\n  - {name: cwd-rule, match: x}\n",
    )
    .unwrap();
    std::fs::write(
        env.dir().join("other.yaml"),
        "rules:\n  - {name: env-rule, match: x}\n",
    )
    .unwrap();
    let out = env.run(&["test"], b"x\n");
    assert!(out.stdout.contains("cwd-rule\tx"), "{}", out.stdout);
    let env = env.env("DINGTAIL_CONFIG", "other.yaml");
    let out = env.run(&["test"], b"x\n");
    assert!(out.stdout.contains("env-rule\tx"), "{}", out.stdout);
    let out = TestEnv::new().run(&["check"], b"");
    assert!(out.stdout.contains("built-in"), "{}", out.stdout);
}

#[test]
fn test_shows_matching_lines_and_a_table() {
    let yaml = "rules:\n  - {name: err, match: ERROR, exclude: [ignored]}\n  - {name: db, match: '(?i)database'}\n";
    let env = TestEnv::new().config(yaml);
    let out = env.run(
        &["test"],
        b"ok\nERROR Database down\nERROR ignored\ndatabase slow\n",
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let mut lines = out.stdout.lines();
    assert_eq!(lines.next(), Some("err,db\tERROR Database down"));
    assert_eq!(lines.next(), Some("db\tdatabase slow"));
    assert!(out.stdout.contains("err            1"), "{}", out.stdout);
    assert!(out.stdout.contains("db             2"), "{}", out.stdout);
    assert!(
        out.stdout
            .contains("2 of 4 lines matched at least one rule")
    );

    let path = env.dir().join("app.log");
    std::fs::write(&path, "ERROR x\n").unwrap();
    let out = env.run(&["test", path.to_str().unwrap()], b"");
    assert!(out.stdout.starts_with("err\tERROR x\n"), "{}", out.stdout);
}

fn send_config(emu: &Emulator, secret: &str) -> String {
    format!(
        "robots:\n  ops:\n    webhook: \"{}\"\n    secret: \"{secret}\"\n    keyword: 告警\n",
        emu.webhook(TOKEN)
    )
}

#[test]
fn send_posts_one_message_and_prints_the_answer() {
    let emu = Emulator::start(vec![RobotSpec::new(TOKEN).secret(SECRET).keyword("告警")]);
    let env = TestEnv::new().config(&send_config(&emu, SECRET));
    let out = env.run(&["send", "deploy finished"], b"");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("\"errcode\":0"), "{}", out.stdout);
    let posts = emu.posts();
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0].text(), "deploy finished\n告警");
}

#[test]
fn send_explains_a_wrong_secret_without_showing_it() {
    let emu = Emulator::start(vec![RobotSpec::new(TOKEN).secret(SECRET)]);
    let env = TestEnv::new().config(&send_config(&emu, "SECwrongwrongwrong"));
    let out = env.run(&["send", "hello"], b"");
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("310000") && out.stderr.contains("SEC…"),
        "{}",
        out.stderr
    );
    for s in ["SECwrongwrongwrong", TOKEN, "sign="] {
        assert!(
            !out.stderr.contains(s) && !out.stdout.contains(s),
            "{}",
            out.stderr
        );
    }
}

#[test]
fn send_to_an_unknown_robot_is_a_usage_error() {
    let emu = Emulator::start(vec![]);
    let env = TestEnv::new().config(&send_config(&emu, SECRET));
    let out = env.run(&["send", "--robot", "pager", "hi"], b"");
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("no robot named `pager`") && out.stderr.contains("ops"),
        "{}",
        out.stderr
    );
}

#[test]
fn send_reports_an_unreachable_dingtalk() {
    // A port nothing listens on: connection refused, reported without the URL.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let yaml = format!(
        "robots:\n  ops:\n    webhook: \"http://127.0.0.1:{port}/robot/send?access_token={TOKEN}\"\n"
    );
    let out = TestEnv::new().config(&yaml).run(&["send", "hi"], b"");
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("cannot reach DingTalk"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains(TOKEN), "{}", out.stderr);
}

/// The common mistakes get errors that say what to change: a missing config names `init`, a
/// look-ahead (written for PCRE) names `exclude:`.
#[test]
fn common_mistakes_say_what_to_change() {
    let env = TestEnv::new();
    let out = env.run(&["check", "-c", "nope.yaml"], b"");
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("cannot read config nope.yaml"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("dingtail init"), "{}", out.stderr);
    let env = TestEnv::new().config("rules:\n  - {name: a, match: 'ERROR(?!.*retrying)'}\n");
    let out = env.run(&["check"], b"");
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("rules.yaml:2:"), "{}", out.stderr);
    assert!(out.stderr.contains("`exclude:`"), "{}", out.stderr);
}

/// `${VAR}` in `inputs:` is expanded like elsewhere, and `-` names stdin.
#[test]
fn inputs_expand_variables_and_dash_is_stdin() {
    let env = TestEnv::new().config(
        "inputs:\n  - path: '${LOG_DIR}/app.log'\nrules:\n  - {name: err, match: ERROR, window: 10ms}\n",
    );
    let dir = env.dir().join("logs");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("app.log"), "ERROR in the file\n").unwrap();
    let env = env.env("LOG_DIR", dir.to_str().unwrap());
    let out = env.run(&["run", "--dry-run", "--once", "--from-beginning"], b"");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("ERROR in the file"), "{}", out.stdout);
    assert!(
        out.stdout.contains(&format!("{}/app.log", dir.display())),
        "{}",
        out.stdout
    );
    // Unset: an error naming the variable and the input.
    let out = TestEnv::new()
        .config("inputs:\n  - path: '${LOG_DIR}/app.log'\n")
        .run(&["check"], b"");
    assert_eq!(out.code, 2);
    assert!(
        out.stderr
            .contains("input 1, field 'path': environment variable LOG_DIR is not set"),
        "{}",
        out.stderr
    );
    // `-` is stdin.
    let env = TestEnv::new()
        .config("inputs:\n  - path: '-'\nrules:\n  - {name: err, match: ERROR, window: 10ms}\n");
    let out = env.run(&["run", "--dry-run"], b"ERROR on stdin\n");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("ERROR on stdin"), "{}", out.stdout);
    assert!(out.stderr.contains("reading stdin"), "{}", out.stderr);
}
