//! The aggregator's table tests (`play()`), the exact-count proptest and the edges.

use std::time::Duration;

use bytes::Bytes;
use proptest::prelude::*;

use super::*;
use crate::rules::{RuleSpec, Threshold};

const MS: Duration = Duration::from_millis(1);

fn dur(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A rule whose pattern captures `ip` (the first word of a line).
fn rule(tweak: impl FnOnce(&mut RuleSpec)) -> Rule {
    let mut spec = RuleSpec {
        name: "r".into(),
        pattern: r"(?P<ip>\S+) x".into(),
        window: 100 * MS,
        max_lines: 3,
        robots: vec![0],
        max_groups: 1000,
        ..RuleSpec::default()
    };
    tweak(&mut spec);
    Rule::compile(spec).unwrap()
}

fn batch(rule: &Rule, id: RuleId, line: &str, wall: SystemTime) -> HitBatch {
    let ip = Bytes::copy_from_slice(line.split(' ').next().unwrap().as_bytes());
    HitBatch {
        source: "-".into(),
        read_at: wall,
        lines: 1,
        bytes: line.len() as u64,
        end_offset: 0,
        mark: None,
        hits: vec![Hit {
            rule: id,
            line: Bytes::copy_from_slice(line.as_bytes()),
            captures: if rule.needs_captures {
                vec![ip]
            } else {
                Vec::new()
            },
        }],
    }
}

#[test]
fn a_reload_keeps_pending_hits_of_kept_rules_and_delivers_those_of_removed_ones() {
    let named = |name: &str, window: u64| {
        rule(|s| {
            s.name = name.into();
            s.pattern = "x".into();
            s.window = dur(window);
        })
    };
    let (a, b) = (named("a", 100), named("b", 100));
    let t0 = Instant::now();
    let w0 = SystemTime::UNIX_EPOCH;
    let mut agg = Aggregator::new(&[a.clone(), b.clone()], t0, w0);
    for _ in 0..3 {
        agg.add(&batch(&a, 0, "1 x", w0), t0);
    }
    agg.add(&batch(&b, 1, "1 x", w0), t0);
    // New config: `b` is gone, `c` is new and `a` moves to index 1 with a longer window.
    let (c, a2) = (named("c", 100), named("a", 500));
    let retired = agg.retire(&[c.clone(), a2.clone()]);
    assert_eq!(retired.len(), 1);
    assert_eq!((&*retired[0].rule_name, retired[0].count), ("b", 1));
    agg.reconfigure(&[c.clone(), a2.clone()], t0 + 10 * MS);
    assert_eq!(agg.pending_hits(), 3);
    agg.add(&batch(&a2, 1, "1 x", w0), t0 + 20 * MS);
    // The window opened before the reload closes on time, with every hit.
    let out = agg.expire(t0 + 100 * MS);
    assert_eq!(out.len(), 1);
    assert_eq!((out[0].rule, &*out[0].rule_name, out[0].count), (1, "a", 4));
    assert_eq!(agg.rule_names().len(), 2);
}

fn describe(a: &Routed, at: u64) -> String {
    let group = a
        .group
        .as_deref()
        .map(|g| format!(" {g}"))
        .unwrap_or_default();
    let robot = a.robot.map(|r| format!(" @{r}")).unwrap_or_default();
    match a.kind {
        AlertKind::Hits => format!("{at} ×{}{group}{robot}", a.count),
        AlertKind::Recovered { .. } => format!("{at} recovered{group}{robot}"),
        AlertKind::Absent { .. } => format!("{at} absent{group}{robot}"),
        AlertKind::Back => format!("{at} back{group}{robot}"),
        AlertKind::Notice => format!("{at} notice{robot}"),
        AlertKind::Escalated { episode_count, .. } => {
            format!(
                "{at} escalated{group}{robot} ({episode_count} so far, @{})",
                a.style.mention.mobiles.join(",")
            )
        }
    }
}

/// Feeds `hits` (milliseconds, line) to an aggregator of `rules`, running every timer on
/// time, then either runs timers until `end` or flushes at `end`; returns what came out,
/// described, with when.
fn play(
    rules: &[Rule],
    hits: &[(u64, RuleId, &str)],
    end: u64,
    flush: bool,
) -> (Vec<String>, Aggregator) {
    let t0 = Instant::now();
    let w0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let mut agg = Aggregator::new(rules, t0, w0);
    let mut out = Vec::new();
    let run_until = |agg: &mut Aggregator, ms: u64, out: &mut Vec<String>| {
        while let Some(d) = agg.next_deadline() {
            if d > t0 + dur(ms) {
                break;
            }
            let at = (d - t0).as_millis() as u64;
            out.extend(agg.expire(d).iter().map(|a| describe(a, at)));
        }
    };
    for &(ms, rule, line) in hits {
        run_until(&mut agg, ms, &mut out);
        let b = batch(&rules[rule], rule, line, w0 + dur(ms));
        out.extend(agg.add(&b, t0 + dur(ms)).iter().map(|a| describe(a, ms)));
    }
    if flush {
        run_until(&mut agg, end, &mut out);
        out.extend(agg.flush(t0 + dur(end)).iter().map(|a| describe(a, end)));
    } else {
        run_until(&mut agg, end, &mut out);
    }
    (out, agg)
}

fn threshold(count: usize, within_ms: u64) -> Option<Threshold> {
    Some(Threshold {
        count,
        within: dur(within_ms),
    })
}

#[test]
fn table() {
    type Case<'a> = (&'a str, Rule, &'a [(u64, &'a str)], u64, &'a [&'a str]);
    let cases: Vec<Case> = vec![
        (
            "a window gathers hits from its first until it closes",
            rule(|_| {}),
            &[(0, "a x"), (50, "a x"), (150, "a x")],
            1000,
            &["100 ×2 @0", "250 ×1 @0"],
        ),
        (
            "below the threshold nothing is sent, and those hits count into the message",
            rule(|s| s.threshold = threshold(3, 1000)),
            &[
                (0, "a x"),
                (500, "a x"),
                (2000, "a x"),
                (2100, "a x"),
                (2200, "a x"),
            ],
            5000,
            &["2300 ×5 @0"],
        ),
        (
            "a threshold met again after a message opens the next window",
            rule(|s| s.threshold = threshold(2, 1000)),
            &[(0, "a x"), (10, "a x"), (200, "a x"), (300, "a x")],
            6000,
            &["110 ×2 @0", "300 ×1 @0", "400 ×1 @0"],
        ),
        (
            "a cooldown gathers hits and sends them when it ends, then cools down again",
            rule(|s| s.cooldown = Some(1000 * MS)),
            &[
                (0, "a x"),
                (50, "a x"),
                (200, "a x"),
                (300, "a x"),
                (900, "a x"),
                (2500, "a x"),
            ],
            5000,
            &["100 ×2 @0", "1100 ×3 @0", "2600 ×1 @0"],
        ),
        (
            "group_by: one stream per value, each with its own threshold and cooldown",
            rule(|s| {
                s.group_by = vec!["ip".into()];
                s.threshold = threshold(2, 1000);
                s.cooldown = Some(1000 * MS);
            }),
            &[
                (0, "a x"),
                (10, "b x"),
                (20, "a x"),
                (30, "a x"),
                (500, "a x"),
                (600, "b x"),
                (1500, "b x"),
            ],
            5000,
            &[
                "120 ×3 ip=a @0",
                "700 ×2 ip=b @0",
                "1120 ×1 ip=a @0",
                "1700 ×1 ip=b @0",
            ],
        ),
        (
            "past max_groups, new values share the other group",
            rule(|s| {
                s.group_by = vec!["ip".into()];
                s.max_groups = 2;
            }),
            &[(0, "a x"), (1, "b x"), (2, "c x"), (3, "d x"), (4, "a x")],
            1000,
            &["100 ×2 ip=a @0", "101 ×1 ip=b @0", "102 ×2 other @0"],
        ),
        (
            "groups are forgotten when they hold nothing, making room for new values",
            rule(|s| {
                s.group_by = vec!["ip".into()];
                s.max_groups = 1;
            }),
            &[(0, "a x"), (500, "b x")],
            1000,
            &["100 ×1 ip=a @0", "600 ×1 ip=b @0"],
        ),
        (
            "resolve_after: recovered once quiet that long after a message",
            rule(|s| s.resolve_after = Some(500 * MS)),
            &[(0, "a x"), (600, "a x"), (900, "a x")],
            3000,
            &[
                "100 ×1 @0",
                "500 recovered @0",
                "700 ×1 @0",
                "1000 ×1 @0",
                "1400 recovered @0",
            ],
        ),
        (
            "resolve_after with cooldown: hits in the cooldown delay the recovery",
            rule(|s| {
                s.resolve_after = Some(300 * MS);
                s.cooldown = Some(1000 * MS);
            }),
            &[(0, "a x"), (200, "a x"), (800, "a x")],
            3000,
            &["100 ×1 @0", "1100 ×2 @0", "1100 recovered @0"],
        ),
        (
            "several robots each get every alert",
            rule(|s| s.robots = vec![0, 1]),
            &[(0, "a x")],
            1000,
            &["100 ×1 @0", "100 ×1 @1"],
        ),
    ];
    for (name, rule, hits, end, want) in cases {
        let hits: Vec<(u64, RuleId, &str)> = hits.iter().map(|&(t, l)| (t, 0, l)).collect();
        let (got, agg) = play(&[rule], &hits, end, false);
        assert_eq!(got, want, "{name}");
        assert_eq!(agg.pending_hits(), 0, "{name}: nothing left pending");
    }
}

#[test]
fn a_hit_below_a_threshold_holds_its_file_only_while_the_threshold_can_reach_it() {
    let rules = [rule(|s| s.threshold = threshold(3, 1000))];
    let t0 = Instant::now();
    let w0 = SystemTime::UNIX_EPOCH;
    let mut agg = Aggregator::new(&rules, t0, w0);
    let at = |file, start| {
        let mut b = batch(&rules[0], 0, "x", w0);
        b.mark = Some(Mark { file, start });
        b
    };
    assert!(agg.add(&at(1, 0), t0).is_empty());
    assert_eq!(
        agg.take_holds(),
        (1, vec![]),
        "the first hit holds its chunk"
    );
    assert!(agg.add(&at(1, 100), t0 + dur(600)).is_empty());
    assert_eq!(agg.take_holds(), (0, vec![]));
    // the first hit leaves the threshold's reach: the hold moves on to the second
    let due = agg.next_deadline().expect("a timer to move the hold");
    assert!(agg.expire(due).is_empty());
    assert_eq!(
        agg.take_moved_holds(),
        [Mark {
            file: 1,
            start: 100
        }]
    );
    assert_eq!(agg.take_holds(), (0, vec![Mark { file: 1, start: 0 }]));
    // and once no hit is within reach, nothing is held, though the count is kept
    let due = agg.next_deadline().expect("a timer");
    agg.expire(due);
    assert_eq!(
        agg.take_holds(),
        (
            0,
            vec![Mark {
                file: 1,
                start: 100
            }]
        )
    );
    assert_eq!(agg.pending_hits(), 2);
}

#[test]
fn a_stop_of_followed_files_sends_no_absence_that_was_not_due() {
    let absent = rule(|s| {
        s.pattern = "heartbeat".into();
        s.absent_for = Some(1000 * MS);
    });
    let t0 = Instant::now();
    let mut agg = Aggregator::new(std::slice::from_ref(&absent), t0, SystemTime::UNIX_EPOCH)
        .with_absence_at_end(false);
    assert!(agg.flush(t0 + dur(500)).is_empty(), "not due yet");
    let mut agg = Aggregator::new(&[absent], t0, SystemTime::UNIX_EPOCH).with_absence_at_end(false);
    assert_eq!(agg.flush(t0 + dur(1500)).len(), 1, "due");
}

#[test]
fn absence_alerts_once_then_says_when_the_line_is_back() {
    let absent = rule(|s| {
        s.pattern = "heartbeat".into();
        s.absent_for = Some(1000 * MS);
    });
    let (got, _) = play(
        std::slice::from_ref(&absent),
        &[
            (400, 0, "heartbeat"),
            (900, 0, "heartbeat"),
            (3000, 0, "heartbeat"),
        ],
        5000,
        false,
    );
    assert_eq!(got, ["1900 absent @0", "3000 back @0", "4000 absent @0"]);

    // a regular heartbeat never alerts, nor does the end of input
    let beats: Vec<(u64, RuleId, &str)> = (0..10).map(|i| (i * 500, 0, "heartbeat")).collect();
    let (got, _) = play(std::slice::from_ref(&absent), &beats, 4800, true);
    assert!(got.is_empty(), "{got:?}");

    // at the end of input (stdin), an input without the line is absence
    let (got, _) = play(&[absent], &[], 10, true);
    assert_eq!(got, ["10 absent @0"]);
}

/// Regression: one file was named for lines from several.
#[test]
fn an_alert_names_every_source_its_lines_came_from() {
    let r = rule(|s| s.pattern = "x".into());
    let t0 = Instant::now();
    let w0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let mut agg = Aggregator::new(std::slice::from_ref(&r), t0, w0);
    for src in ["/a.log", "/b.log", "/a.log", "/c.log"] {
        let mut b = batch(&r, 0, "1 x", w0);
        b.source = src.into();
        agg.add(&b, t0);
    }
    let out = agg.expire(t0 + dur(100));
    assert_eq!(out.len(), 1);
    assert_eq!(&*out[0].source, "/c.log");
    let others: Vec<&str> = out[0].other_sources.iter().map(|s| &**s).collect();
    assert_eq!(others, ["/b.log", "/a.log"]);
    // Merging keeps every name once, bounded.
    let mut merged = out[0].clone();
    for i in 0..10 {
        let mut later = out[0].clone();
        later.source = format!("/{i}.log").into();
        later.other_sources = vec!["/a.log".into()];
        merged.merge(later);
    }
    assert_eq!(&*merged.source, "/9.log");
    assert_eq!(merged.other_sources.len(), MAX_OTHER_SOURCES + 1);
    assert!(!merged.other_sources.iter().any(|s| &**s == "/9.log"));
}

/// Regression: "back" named stdin for a line that matched again in a followed file.
#[test]
fn a_back_message_names_the_source_the_line_came_from() {
    let absent = rule(|s| {
        s.pattern = "heartbeat".into();
        s.absent_for = Some(1000 * MS);
    });
    let t0 = Instant::now();
    let w0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let mut agg = Aggregator::new(std::slice::from_ref(&absent), t0, w0);
    let absent_out = agg.expire(t0 + dur(1000));
    assert!(matches!(absent_out[0].kind, AlertKind::Absent { .. }));
    let mut b = batch(&absent, 0, "heartbeat", w0);
    b.source = "/var/log/app/worker.log".into();
    let out = agg.add(&b, t0 + dur(1500));
    assert!(matches!(out[0].kind, AlertKind::Back));
    assert_eq!(&*out[0].source, "/var/log/app/worker.log");
}

#[test]
fn flush_sends_open_windows_and_cooldowns_and_holds_back_unmet_thresholds() {
    let rules = [
        rule(|s| s.threshold = threshold(5, 1000)),
        rule(|s| s.cooldown = Some(10_000 * MS)),
    ];
    let (got, agg) = play(
        &rules,
        &[
            (0, 0, "a x"),
            (1, 0, "a x"),
            (0, 1, "b x"),
            (500, 1, "b x"),
            (600, 1, "b x"),
        ],
        700,
        true,
    );
    assert_eq!(got, ["100 ×1 @0", "700 ×2 @0"]);
    assert_eq!(agg.held_below_threshold(), [2, 0]);
    assert_eq!(agg.pending_hits(), 0);
}

#[test]
fn memory_stays_bounded_under_many_groups() {
    let r = rule(|s| {
        s.group_by = vec!["ip".into()];
        s.max_groups = 50;
        s.threshold = threshold(100, 60_000);
    });
    let t0 = Instant::now();
    let mut agg = Aggregator::new(std::slice::from_ref(&r), t0, SystemTime::UNIX_EPOCH);
    for i in 0..10_000u64 {
        let line = format!("10.0.{}.{} x", i / 256, i % 256);
        agg.add(&batch(&r, 0, &line, SystemTime::UNIX_EPOCH), t0 + dur(i));
    }
    assert_eq!(agg.groups(), 51);
    assert_eq!(agg.pending_hits(), 10_000);
}

#[test]
fn merging_adds_counts_and_keeps_samples_bounded() {
    let r = rule(|s| s.max_lines = 2);
    let mut agg = Aggregator::new(std::slice::from_ref(&r), Instant::now(), SystemTime::now());
    for l in ["1 x", "2 x", "3 x"] {
        agg.add(&batch(&r, 0, l, SystemTime::now()), Instant::now());
    }
    let mut a = agg.flush(Instant::now()).remove(0);
    agg.add(&batch(&r, 0, "4 x", SystemTime::now()), Instant::now());
    let b = agg.flush(Instant::now()).remove(0);
    assert!(a.same_stream(&b));
    a.merge(b);
    assert_eq!(a.count, 4);
    assert_eq!(a.samples.len(), 2);
    assert_eq!(a.unquoted(), 2);
}

#[test]
fn huge_lines_are_sampled_cut() {
    let s = Sample::from_line(&vec![b'x'; SAMPLE_MAX_BYTES + 1]);
    assert!(s.cut);
    assert_eq!(s.text.len(), SAMPLE_MAX_BYTES);
    assert!(!Sample::from_line(b"short").cut);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    /// The exact-count contract: whatever the hits and the rule's threshold, cooldown,
    /// grouping and window, the counts of all messages plus the hits held below an unmet
    /// threshold at the end add up to the number of hits, and without a threshold the
    /// messages alone do.
    #[test]
    fn every_hit_is_counted_exactly_once(
        gaps in prop::collection::vec((0u64..400, 0usize..6), 1..300),
        window in 1u64..300,
        thresh in prop::option::of((1usize..6, 1u64..1000)),
        cooldown in prop::option::of(1u64..2000),
        grouped in any::<bool>(),
        max_groups in 1usize..4,
        resolve in prop::option::of(1u64..1000),
        robots in 1usize..3,
    ) {
        let r = rule(|s| {
            s.window = dur(window);
            s.threshold = thresh.and_then(|(c, w)| threshold(c, w));
            s.cooldown = cooldown.map(dur);
            if grouped {
                s.group_by = vec!["ip".into()];
                s.max_groups = max_groups;
            }
            s.resolve_after = resolve.map(dur);
            s.robots = (0..robots).collect();
        });
        let t0 = Instant::now();
        let mut agg = Aggregator::new(std::slice::from_ref(&r), t0, SystemTime::UNIX_EPOCH);
        let mut now = t0;
        let mut sent = vec![0u64; robots];
        let record = |alerts: Vec<Routed>, sent: &mut Vec<u64>| {
            for a in alerts {
                sent[a.robot.unwrap()] += a.count;
            }
        };
        for (gap, who) in &gaps {
            let at = now + dur(*gap);
            while let Some(d) = agg.next_deadline().filter(|&d| d <= at) {
                record(agg.expire(d), &mut sent);
            }
            now = at;
            let line = format!("{who} x");
            record(agg.add(&batch(&r, 0, &line, SystemTime::UNIX_EPOCH), now), &mut sent);
            prop_assert!(agg.groups() <= max_groups + 1 || !grouped);
        }
        // Half the time the input ends at once; otherwise time runs on first.
        if gaps.len() % 2 == 0 {
            let later = now + Duration::from_secs(10);
            while let Some(d) = agg.next_deadline().filter(|&d| d <= later) {
                record(agg.expire(d), &mut sent);
            }
            now = later;
        }
        record(agg.flush(now), &mut sent);
        let held: u64 = agg.held_below_threshold().iter().sum();
        for s in &sent {
            prop_assert_eq!(s + held, gaps.len() as u64);
        }
        if thresh.is_none() {
            prop_assert_eq!(held, 0);
        }
        prop_assert_eq!(agg.pending_hits(), 0);
    }
}

mod streams;
