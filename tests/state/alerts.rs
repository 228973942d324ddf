//! Alert state across restarts, through the real binary and the DingTalk emulator: a deploy
//! (SIGTERM, start again) neither re-alerts what was cooling down (a routed stream's too) nor
//! forgets to send "recovered", absence is measured across it (a per-host value reported absent
//! says "back"), an escalation goes on from the step it reached, and a corrupt `alerts.json` is
//! kept aside.
//!
//! Each run follows a file; a second rule, `mark`, without cooldown, matches the marker lines
//! the test writes: its message is the signal that everything before the marker was counted.

use std::fs;
use std::path::PathBuf;
use std::time::Duration;

use crate::support::emulator::{Emulator, RobotSpec};
use crate::support::env::{Output, TestEnv, header_counts};
use crate::support::files::append;
use crate::support::running::Running;

const TOKEN: &str = "tok-alertstate012345";

fn emulator() -> Emulator {
    Emulator::start(vec![
        RobotSpec::new(TOKEN).rate(1000, Duration::from_secs(1)),
    ])
}

/// Rule `err` (with `extra` settings) and rule `mark` (the test's sync signal).
fn config(emu: &Emulator, extra: &str) -> String {
    config_with(emu, "", extra)
}

/// [`config`] with `top` (people, routes) before the rules.
fn config_with(emu: &Emulator, top: &str, extra: &str) -> String {
    format!(
        r#"robots:
  ops:
    webhook: "{}"
    rate: 1000/1s
defaults:
  window: 100ms
{top}
rules:
  - name: err
    match: 'ERROR'
{extra}
  - name: mark
    match: 'MARK'
"#,
        emu.webhook(TOKEN)
    )
}

/// Count per rule over every message so far (`recovered`/`absent` headers count 0, listed by
/// [`kinds`]).
fn count(emu: &Emulator, rule: &str) -> u64 {
    emu.posts()
        .iter()
        .flat_map(|p| header_counts(&p.text()))
        .filter(|(r, _)| r == rule)
        .map(|(_, n)| n)
        .sum()
}

fn wait_for(what: &str, done: impl Fn() -> bool) {
    crate::support::env::wait_until(what, done);
}

struct Run {
    env: TestEnv,
    log: PathBuf,
    state: PathBuf,
    /// People and routes of the config.
    top: String,
}

impl Run {
    fn new(emu: &Emulator, extra: &str) -> Run {
        Run::with(emu, "", extra)
    }

    fn with(emu: &Emulator, top: &str, extra: &str) -> Run {
        let env = TestEnv::new().config(&config_with(emu, top, extra));
        let log = env.dir().join("app.log");
        fs::write(&log, "").unwrap();
        let state = env.dir().join("state");
        let top = top.to_owned();
        Run {
            env,
            log,
            state,
            top,
        }
    }

    fn reconfigure(&self, emu: &Emulator, extra: &str) {
        fs::write(self.env.config_path(), config_with(emu, &self.top, extra)).unwrap();
    }

    /// Starts dingtail on the log and waits until it follows it: a line appended from then on
    /// is seen, and a SIGTERM is a clean stop.
    fn start(&self) -> Running {
        self.env.start_following(&[
            "run",
            "--state-dir",
            self.state.to_str().unwrap(),
            self.log.to_str().unwrap(),
        ])
    }

    /// Writes a marker and waits until its message arrived: everything before it is counted.
    fn mark(&self, emu: &Emulator) {
        let before = count(emu, "mark");
        append(&self.log, "MARK\n");
        wait_for("the marker's message", || count(emu, "mark") > before);
    }

    fn stop(&self, run: Running) -> Output {
        run.signal(libc::SIGTERM);
        let out = run.wait();
        assert_eq!(out.code, 0, "{}", out.stderr);
        out
    }

    fn alerts_json(&self) -> serde_json::Value {
        serde_json::from_slice(&fs::read(self.state.join("alerts.json")).unwrap()).unwrap()
    }
}

/// A cooldown, kept by a rule's own group or by a routed stream: where its state is saved, and
/// how a line for it is written.
struct Cooled {
    /// Which stream it is, for the failure messages.
    what: &'static str,
    /// People and routes of the config.
    top: &'static str,
    /// The log line of an `err` hit saying `msg`.
    line: fn(&str) -> String,
    /// Where in `alerts.json`, under the rule, the cooled-down stream is saved.
    saved_at: &'static [&'static str],
    /// Whom the first message must mention.
    mention: Option<&'static str>,
}

/// A deploy (SIGTERM, start again) during a cooldown neither alerts again nor forgets what the
/// cooldown gathered: the hits of both runs are counted for its end. For a rule's own group
/// and for a routed stream alike.
#[test]
fn a_deploy_during_a_cooldown_does_not_alert_again_and_keeps_what_it_gathered() {
    let cases = [
        Cooled {
            what: "the rule's group",
            top: "",
            line: |msg| format!("ERROR {msg}\n"),
            saved_at: &["groups", ""],
            mention: None,
        },
        Cooled {
            what: "a routed stream",
            top: "people:\n  pay: { mobiles: ['13800000001'] }\nroutes:\n  - name: payments\n    when: 'svc == \"pay\"'\n    mention: pay",
            line: |msg| format!("{{\"msg\": \"ERROR {msg}\", \"svc\": \"pay\"}}\n"),
            saved_at: &["routes", "payments", ""],
            mention: Some("@13800000001"),
        },
    ];
    for case in cases {
        let what = case.what;
        let emu = emulator();
        let run = Run::with(&emu, case.top, "    cooldown: 1h");
        let saved = || {
            let all = run.alerts_json();
            let stream = (case.saved_at.iter()).fold(&all["rules"]["err"], |v, k| &v[*k]);
            (stream.clone(), all)
        };
        let first = run.start();
        append(&run.log, &(case.line)("one"));
        wait_for("the first alert", || count(&emu, "err") == 1);
        if let Some(mention) = case.mention {
            assert!(
                emu.all_text().contains(mention),
                "{what}: {}",
                emu.all_text()
            );
        }
        append(&run.log, &(case.line)("two"));
        run.mark(&emu);
        let out = run.stop(first);
        let kept = |n| format!("cooling down, kept for the next run: err {n}");
        assert!(out.stderr.contains(&kept(1)), "{what}: {}", out.stderr);
        let (stream, all) = saved();
        assert!(stream["cooldown_until"].is_string(), "{what}: {all:#}");
        assert_eq!(stream["pending"]["count"], 1, "{what}: {all:#}");

        // The deploy: a new process, a new hit, still cooling down: no message for `err`.
        let second = run.start();
        append(&run.log, &(case.line)("three"));
        run.mark(&emu);
        let out = run.stop(second);
        assert_eq!(
            count(&emu, "err"),
            1,
            "{what} re-alerted: {}",
            emu.all_text()
        );
        // both hits gathered in the cooldown are still counted, for its end
        assert!(out.stderr.contains(&kept(2)), "{what}: {}", out.stderr);
        let (stream, all) = saved();
        assert_eq!(stream["pending"]["count"], 2, "{what}: {all:#}");
    }
}

#[test]
fn an_open_alert_gets_its_recovered_message_after_a_deploy() {
    let emu = emulator();
    let run = Run::new(&emu, "    resolve_after: 1h");
    let first = run.start();
    append(&run.log, "ERROR one\n");
    wait_for("the alert", || count(&emu, "err") == 1);
    run.stop(first);
    assert!(!emu.all_text().contains("recovered"), "{}", emu.all_text());
    assert_eq!(
        run.alerts_json()["rules"]["err"]["groups"][""]["alerted"],
        true
    );

    // The new version waits 1 s of quiet: it counts from the hit before the deploy, so the
    // "recovered" comes without any new line.
    run.reconfigure(&emu, "    resolve_after: 1s");
    let second = run.start();
    wait_for("recovered", || emu.all_text().contains("【err】recovered"));
    run.stop(second);
    assert_eq!(
        emu.all_text().matches("recovered").count(),
        1,
        "{}",
        emu.all_text()
    );
}

#[test]
fn absence_is_measured_across_a_deploy_and_a_stop_never_sends_one_not_due() {
    let emu = emulator();
    let beat = "  - name: beat\n    absent: { match: 'heartbeat', for: 1h }";
    let run = Run::new(&emu, beat);
    let first = run.start();
    append(&run.log, "heartbeat MARK\n");
    wait_for("the marker's message", || count(&emu, "mark") == 1);
    run.stop(first);
    assert!(!emu.all_text().contains("absent"), "{}", emu.all_text());
    let saved = run.alerts_json();
    assert!(
        saved["rules"]["beat"]["absence"]["last_seen"].is_string(),
        "{saved:#}"
    );

    // `for: 2s` now: due 2 s after the heartbeat seen by the first run, and the message says
    // when that was (a fresh start would say "never, since dingtail started").
    run.reconfigure(&emu, &beat.replace("1h", "2s"));
    let second = run.start();
    wait_for("absent", || emu.all_text().contains("【beat】absent"));
    run.stop(second);
    let text = emu.all_text();
    assert!(text.contains("no line matched"), "{text}");
    assert!(!text.contains("never, since dingtail started"), "{text}");
}

/// Texts of the messages that contain `needle`, in order, with when they arrived.
fn posts_with(emu: &Emulator, needle: &str) -> Vec<(String, std::time::Instant)> {
    (emu.posts().iter())
        .map(|p| (p.text(), p.at))
        .filter(|(t, _)| t.contains(needle))
        .collect()
}

#[test]
fn a_host_reported_absent_stays_absent_across_a_deploy_and_back_is_sent() {
    let emu = emulator();
    let beat = |every: &str| {
        format!(
            "  - name: beat\n    absent: {{ match: 'heartbeat (?P<host>\\S+)', for: {every} }}\n    group_by: [host]"
        )
    };
    let run = Run::new(&emu, &beat("1s"));
    let first = run.start();
    append(&run.log, "heartbeat web1\n");
    wait_for("absent", || emu.all_text().contains("【beat】absent"));
    run.stop(first);
    let saved = run.alerts_json();
    assert_eq!(
        saved["rules"]["beat"]["absences"]["host=web1"]["alerted"], true,
        "{saved:#}"
    );

    // `for: 1h` now, so the only message the line can bring is "back"; a fresh start would
    // not know web1 at all and send nothing
    run.reconfigure(&emu, &beat("1h"));
    let second = run.start();
    run.mark(&emu);
    append(&run.log, "heartbeat web1\n");
    wait_for("back", || emu.all_text().contains("【beat】back"));
    run.stop(second);
    let back = posts_with(&emu, "【beat】back");
    assert_eq!(back.len(), 1, "{}", emu.all_text());
    assert!(back[0].0.contains("host=web1"), "{}", back[0].0);
    assert_eq!(
        posts_with(&emu, "【beat】absent").len(),
        1,
        "{}",
        emu.all_text()
    );
}

#[test]
fn an_escalation_step_sent_before_a_deploy_is_not_sent_again_and_the_next_comes_on_time() {
    let emu = emulator();
    let people =
        "people:\n  lead: { mobiles: ['13800000001'] }\n  dba: { mobiles: ['13800000002'] }";
    let steps = |second: &str| {
        format!(
            "    cooldown: 1h\n    resolve_after: 1h\n    escalate: [{{ after: 1s, mention: lead }}, {{ after: {second}, mention: dba }}]"
        )
    };
    let run = Run::with(&emu, people, &steps("1h"));
    let first = run.start();
    let written = std::time::Instant::now();
    append(&run.log, "ERROR one\n");
    wait_for("the first step", || {
        !posts_with(&emu, "【err】escalated").is_empty()
    });
    run.stop(first);
    let saved = run.alerts_json();
    assert_eq!(
        saved["rules"]["err"]["groups"][""]["episode"]["level"], 1,
        "{saved:#}"
    );

    // the second step is due 3 s after the first message now
    run.reconfigure(&emu, &steps("3s"));
    let second = run.start();
    wait_for("the second step", || {
        posts_with(&emu, "【err】escalated").len() >= 2
    });
    run.mark(&emu);
    run.stop(second);
    let escalated = posts_with(&emu, "【err】escalated");
    assert_eq!(escalated.len(), 2, "{}", emu.all_text());
    assert!(
        escalated[0].0.contains("@13800000001"),
        "{}",
        escalated[0].0
    );
    assert!(
        escalated[1].0.contains("@13800000002"),
        "{}",
        escalated[1].0
    );
    // counted from the first message (sent a window after the line was written), never
    // before its time
    assert!(escalated[1].1 >= written + Duration::from_secs(3));
    assert_eq!(count(&emu, "err"), 1, "{}", emu.all_text());
}

#[test]
fn a_corrupt_alert_state_is_kept_aside_and_the_run_goes_on() {
    let emu = emulator();
    let env = TestEnv::new().config(&config(&emu, "    cooldown: 1h"));
    let state = env.dir().join("state");
    fs::create_dir(&state).unwrap();
    fs::write(state.join("alerts.json"), "{\"version\": 1, \"rules\": [").unwrap();
    let args = ["run", "--state-dir", state.to_str().unwrap()];
    let out = env.run(&args, b"ERROR one\n");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("is corrupt"), "{}", out.stderr);
    assert!(state.join("alerts.json.corrupt").exists());
    assert_eq!(count(&emu, "err"), 1);
    // the run wrote a good one: the next run (stdin too) knows the cooldown
    let out = env.run(&args, b"ERROR two\n");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(!out.stderr.contains("corrupt"), "{}", out.stderr);
    // the hit is gathered in the cooldown; stdin's end is final, so it is sent then
    assert_eq!(emu.posts().len(), 2, "{}", emu.all_text());
}

#[test]
fn on_stdin_an_unusable_state_directory_is_one_warning() {
    let emu = emulator();
    let env = TestEnv::new().config(&config(&emu, ""));
    // a path under a regular file can never be a directory, whoever runs the test
    let blocked = env.dir().join("file");
    fs::write(&blocked, "").unwrap();
    let state = blocked.join("state");
    let out = env.run(
        &["run", "--state-dir", state.to_str().unwrap()],
        b"ERROR one\n",
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        out.stderr.matches(state.to_str().unwrap()).count(),
        1,
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("live in memory only"), "{}", out.stderr);
    assert_eq!(count(&emu, "err"), 1);
}
