use super::*;
use crate::aggregate::tests::{batch, describe, dur, routes, rule, step};
use crate::ids::RuleId;
use crate::stale::StaleInput;

/// How long dingtail is stopped between the two runs, on the wall clock.
const DOWN: Duration = Duration::from_secs(10);

/// Two runs of the same rules (or of `later` ones) with a stop between them: hits (ms,
/// rule, line) before the stop at `stop` ms, then the second run's hits (ms from its start)
/// until `end`. Timers run on time.
#[derive(Default)]
struct Case {
    name: &'static str,
    rules: Vec<Rule>,
    /// The second run's rules, when the config changed.
    later: Option<Vec<Rule>>,
    /// Watch stdin (the lines' source) with `stale: 1s`.
    stale: bool,
    before: &'static [(u64, RuleId, &'static str)],
    stop: u64,
    /// What the first run sent, its stop included.
    sent: &'static [&'static str],
    after: &'static [(u64, RuleId, &'static str)],
    end: u64,
    /// What the second run sent (ms from its start; 0 for a timer that came due while
    /// stopped).
    then: &'static [&'static str],
    /// What the restore said, a piece of each line.
    notes: &'static [&'static str],
}

/// A run of `rules` from `t0` (`w0` on the wall clock), stopped like followed files with
/// the alert state kept.
fn start(rules: &[Rule], stale: bool, t0: Instant, w0: SystemTime) -> Aggregator {
    let stdin = StaleInput {
        input: "-".into(),
        after: Duration::from_secs(1),
    };
    let inputs = if stale { vec![stdin] } else { Vec::new() };
    Aggregator::new(rules, t0, w0)
        .with_stale(&inputs, &[0], &Default::default(), t0)
        .with_absence_at_end(false)
        .with_pending_kept(true)
}

/// Feeds the hits, running every timer on time until `end`; returns what came out.
fn feed(
    agg: &mut Aggregator,
    rules: &[Rule],
    (t0, w0): (Instant, SystemTime),
    hits: &[(u64, RuleId, &str)],
    end: u64,
) -> Vec<String> {
    let mut out = Vec::new();
    let run_until = |agg: &mut Aggregator, ms: u64, out: &mut Vec<String>| {
        while let Some(d) = agg.next_deadline().filter(|&d| d <= t0 + dur(ms)) {
            let at = d.saturating_duration_since(t0).as_millis() as u64;
            out.extend(agg.expire(d).iter().map(|a| describe(a, at)));
        }
    };
    for &(ms, id, line) in hits {
        run_until(agg, ms, &mut out);
        let b = batch(&rules[id], id, line, w0 + dur(ms));
        out.extend(agg.add(&b, t0 + dur(ms)).iter().map(|a| describe(a, ms)));
    }
    run_until(agg, end, &mut out);
    out
}

#[test]
fn table() {
    let cooldown = |s: &mut crate::rules::RuleSpec| s.cooldown = Some(Duration::from_secs(60));
    let per_host = |max_groups: usize| {
        rule(|s| {
            s.absent_for = Some(Duration::from_secs(1));
            s.group_by = vec!["ip".into()];
            s.max_groups = max_groups;
        })
    };
    let escalating = rule(|s| {
        s.pattern = "x".into();
        s.cooldown = Some(dur(300));
        s.resolve_after = Some(Duration::from_secs(60));
        s.escalate = vec![step(400, "lead"), step(20_000, "dba")];
    });
    let cases = vec![
        Case {
            name: "a cooldown and the hits gathered in it survive a stop",
            rules: vec![rule(cooldown)],
            before: &[(0, 0, "a x"), (300, 0, "a x"), (400, 0, "a x")],
            stop: 500,
            sent: &["100 ×1 @0"],
            after: &[(0, 0, "a x")],
            end: 60_000,
            // 60 s after the first message (at 0.1 s; this run started at 10.5 s): all 3
            then: &["49600 ×3 @0"],
            ..Case::default()
        },
        Case {
            name: "an open alert gets its recovered, counted from the last hit before",
            rules: vec![rule(|s| s.resolve_after = Some(Duration::from_secs(30)))],
            before: &[(0, 0, "a x")],
            stop: 1000,
            sent: &["100 ×1 @0"],
            end: 60_000,
            then: &["19000 recovered @0"],
            ..Case::default()
        },
        Case {
            name: "absence is counted from the line seen before the stop",
            rules: vec![rule(|s| s.absent_for = Some(Duration::from_secs(60)))],
            before: &[(0, 0, "a x")],
            stop: 1000,
            end: 120_000,
            then: &["49000 absent @0"],
            ..Case::default()
        },
        Case {
            name: "a rule whose grouping changed starts fresh, with one note",
            rules: vec![rule(cooldown)],
            later: Some(vec![rule(|s| {
                cooldown(s);
                s.group_by = vec!["ip".into()];
            })]),
            before: &[(0, 0, "a x")],
            stop: 200,
            sent: &["100 ×1 @0"],
            after: &[(0, 0, "a x")],
            end: 1000,
            then: &["100 ×1 ip=a @0"],
            notes: &["`hits` and the rule is now `hits group_by=ip`"],
            ..Case::default()
        },
        Case {
            name: "a routed stream's cooldown survives a stop, apart from the rule's own",
            rules: vec![rule(|s| {
                cooldown(s);
                s.routes = routes(&[("ip == 'pay'", &[1], "111")]);
            })],
            before: &[(0, 0, "pay x"), (10, 0, "web x"), (300, 0, "pay x")],
            stop: 500,
            sent: &["100 ×1 @1", "110 ×1 @0"],
            after: &[(0, 0, "pay x")],
            end: 60_000,
            then: &["49600 ×2 @1"],
            ..Case::default()
        },
        Case {
            name: "the streams of a route that is gone start fresh, with a note",
            rules: vec![rule(|s| {
                cooldown(s);
                s.routes = routes(&[("ip == 'pay'", &[1], "111")]);
            })],
            later: Some(vec![rule(cooldown)]),
            before: &[(0, 0, "pay x"), (10, 0, "web x"), (300, 0, "pay x")],
            stop: 500,
            sent: &["100 ×1 @1", "110 ×1 @0"],
            // the rule's own stream still cools down; the pay line now goes there
            after: &[(0, 0, "pay x")],
            end: 60_000,
            // the hit kept for the pay route joins it: counted, not lost
            then: &["49610 ×2 @0"],
            notes: &["route ip == 'pay' is gone: its 1 saved alert stream(s) start fresh"],
            ..Case::default()
        },
        Case {
            name: "a step sent before the stop is not sent again, the next comes on time",
            rules: vec![escalating.clone()],
            before: &[(0, 0, "x"), (200, 0, "x"), (400, 0, "x")],
            stop: 600,
            sent: &[
                "100 ×1 @0",
                "400 ×1 @0",
                "500 escalated @0 (3 so far, @lead)",
            ],
            // the run starts at 10.6 s; the hit kept from the cooldown is due at once; the
            // second step 20 s after the first message; "recovered" 60 s after the last
            // hit ends the episode, and the next starts from the first step
            after: &[(50_000, 0, "x")],
            end: 51_000,
            then: &[
                "0 ×1 @0",
                "9500 escalated @0 (3 so far, @lead,dba)",
                "49800 recovered @0",
                "50100 ×1 @0",
                "50500 escalated @0 (1 so far, @lead)",
            ],
            ..Case::default()
        },
        Case {
            name: "a step that came due while stopped is sent at the start",
            rules: vec![escalating],
            before: &[(0, 0, "x")],
            stop: 200,
            sent: &["100 ×1 @0"],
            end: 1000,
            then: &["0 escalated @0 (1 so far, @lead)"],
            ..Case::default()
        },
        Case {
            name: "a host reported absent stays absent, says back, and others keep their timers",
            rules: vec![per_host(10)],
            before: &[(0, 0, "a x"), (0, 0, "b x"), (1500, 0, "b x")],
            stop: 1800,
            sent: &[
                "1000 absent ip=a @0",
                "1000 absent ip=b @0",
                "1500 back ip=b @0",
            ],
            // b was due while stopped: after the grace (at most `for`)
            after: &[(2000, 0, "a x")],
            end: 2500,
            then: &["1000 absent ip=b @0", "2000 back ip=a @0"],
            ..Case::default()
        },
        Case {
            name: "restored values are bounded by max_groups; the rest share other",
            rules: vec![per_host(10)],
            later: Some(vec![per_host(1)]),
            before: &[(0, 0, "a x"), (0, 0, "b x")],
            stop: 1500,
            sent: &["1000 absent ip=a @0", "1000 absent ip=b @0"],
            after: &[(100, 0, "a x"), (200, 0, "b x")],
            end: 1500,
            then: &[
                "100 back ip=a @0",
                "1100 absent ip=a @0",
                "1200 absent other @0",
            ],
            ..Case::default()
        },
        Case {
            name: "an input reported stale stays stale and says back when it writes",
            rules: vec![rule(|_| {})],
            stale: true,
            before: &[(0, 0, "a x")],
            stop: 1500,
            sent: &["100 ×1 @0", "1000 absent @0"],
            after: &[(3000, 0, "a x")],
            end: 3500,
            then: &["3000 back @0", "3100 ×1 @0"],
            ..Case::default()
        },
        Case {
            name: "an input quiet since before the stop is reported stale after the grace",
            rules: vec![rule(|_| {})],
            stale: true,
            before: &[(0, 0, "a x"), (900, 0, "a x")],
            stop: 1000,
            sent: &["100 ×1 @0", "1000 ×1 @0"],
            end: 3000,
            then: &["1000 absent @0"],
            ..Case::default()
        },
    ];
    for case in cases {
        let name = case.name;
        let t0 = Instant::now();
        let w0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let mut a = start(&case.rules, case.stale, t0, w0);
        let mut sent = feed(&mut a, &case.rules, (t0, w0), case.before, case.stop);
        let stop = t0 + dur(case.stop);
        sent.extend(a.flush(stop).iter().map(|x| describe(x, case.stop)));
        assert_eq!(sent, case.sent, "{name}: the first run");
        // through JSON, as between two runs
        let snap = a.snapshot(stop, w0 + dur(case.stop));
        let snap: AlertSnapshot =
            serde_json::from_str(&serde_json::to_string(&snap).unwrap()).unwrap();

        // the next run: its own Instant origin, `DOWN` later on the wall clock
        let rules = case.later.as_ref().unwrap_or(&case.rules);
        let t1 = t0 + Duration::from_secs(100);
        let w1 = w0 + dur(case.stop) + DOWN;
        let mut b = start(rules, case.stale, t1, w1);
        let notes = b.restore(&snap, t1, w1);
        assert_eq!(notes.len(), case.notes.len(), "{name}: {notes:?}");
        for (note, want) in notes.iter().zip(case.notes) {
            assert!(note.contains(want), "{name}: {note}");
        }
        let then = feed(&mut b, rules, (t1, w1), case.after, case.end);
        assert_eq!(then, case.then, "{name}: the second run");
    }
}
