//! Streams beyond one per group: routes, escalation, absence per `group_by` value.

use super::*;

fn routes(spec: &[(&str, &[RobotId], &str)]) -> Vec<crate::route::RouteSpec> {
    spec.iter()
        .map(|&(when, robots, mobile)| crate::route::RouteSpec {
            name: Arc::from(when),
            when: Some(crate::where_expr::Where::parse(when).unwrap()),
            robots: robots.to_vec(),
            mention: crate::style::Mention {
                mobiles: vec![mobile.into()],
                ..Default::default()
            },
        })
        .collect()
}

#[test]
fn routes_split_streams_and_pick_robots_with_exact_counts() {
    let r = rule(|s| {
        s.routes = routes(&[("ip == 'pay'", &[1, 2], "111")]);
        s.resolve_after = Some(1000 * MS);
    });
    let (got, _) = play(
        std::slice::from_ref(&r),
        &[(0, 0, "pay x"), (10, 0, "web x"), (20, 0, "pay x")],
        5000,
        false,
    );
    // the pay hits go to robots 1 and 2 (twice two), the web hit to the rule's robot 0;
    // "recovered" goes where the alerts went
    assert_eq!(
        got,
        [
            "100 ×2 @1",
            "100 ×2 @2",
            "110 ×1 @0",
            "1010 recovered @0",
            "1020 recovered @1",
            "1020 recovered @2"
        ]
    );
}

#[test]
fn escalation_counts_from_the_first_message_and_recovery_resets_it() {
    use crate::style::Mention;
    let step = |ms: u64, m: &str| crate::escalate::Step {
        after: dur(ms),
        mention: Mention {
            mobiles: vec![m.into()],
            ..Mention::default()
        },
    };
    let r = rule(|s| {
        s.pattern = "x".into();
        s.cooldown = Some(300 * MS);
        s.resolve_after = Some(500 * MS);
        s.escalate = vec![step(1000, "dba"), step(400, "lead")];
    });
    // hits every 200 ms until 1800, then quiet; then a new episode at 4000
    let mut hits: Vec<(u64, RuleId, &str)> = (0..10).map(|i| (i * 200, 0, "x")).collect();
    hits.push((4000, 0, "x"));
    let (got, _) = play(std::slice::from_ref(&r), &hits, 6000, false);
    assert_eq!(
        got,
        [
            "100 ×1 @0",
            "400 ×1 @0",
            // 400 after the first message at 100: the lead is added
            "500 escalated @0 (3 so far, @lead)",
            "700 ×2 @0",
            "1000 ×1 @0",
            // 1000 after 100: the dba too
            "1100 escalated @0 (6 so far, @lead,dba)",
            "1300 ×2 @0",
            "1600 ×1 @0",
            "1900 ×2 @0",
            "2300 recovered @0",
            // a new episode starts from the first step again; it recovers at the moment
            // its first step would be due, so it never escalates
            "4100 ×1 @0",
            "4500 recovered @0"
        ]
    );
    // the exact counts are untouched: 11 hits, 11 counted
    let counted: u64 = got
        .iter()
        .filter_map(|g| g.split('×').nth(1)?.split(' ').next()?.parse::<u64>().ok())
        .sum();
    assert_eq!(counted, 11);
}

#[test]
fn absence_per_group_watches_each_value_seen_up_to_max_groups() {
    let r = rule(|s| {
        s.pattern = r"(?P<ip>\S+) x".into();
        s.absent_for = Some(1000 * MS);
        s.group_by = vec!["ip".into()];
        s.max_groups = 2;
    });
    let (got, agg) = play(
        std::slice::from_ref(&r),
        &[
            (0, 0, "a x"),
            (0, 0, "b x"),
            // past max_groups: c and d share the "other" absence
            (100, 0, "c x"),
            (500, 0, "a x"),
            (900, 0, "d x"),
            (1200, 0, "a x"),
            (2500, 0, "b x"),
        ],
        2600,
        false,
    );
    assert_eq!(
        got,
        [
            "1000 absent ip=b @0",
            "1900 absent other @0",
            "2200 absent ip=a @0",
            "2500 back ip=b @0"
        ]
    );
    assert_eq!(
        agg.absences.len(),
        3,
        "a, b and other: bounded by max_groups + 1"
    );
    // no timer before a value is seen: a rule with group_by and no line says nothing
    let (got, _) = play(std::slice::from_ref(&r), &[], 5000, false);
    assert!(got.is_empty(), "{got:?}");
}
