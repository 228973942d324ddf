//! `escalate:` of a rule: who else is mentioned as an episode goes on (see
//! [`crate::escalate`]).
//!
//! ```yaml
//! resolve_after: 10m                       # needed: "recovered" is what ends an episode
//! escalate:
//!   - { after: 15m, mention: dba }
//!   - { after: 1h, mention: { all: true } }
//! ```

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::people::{self, People, RawMentionRef};
use super::{Checker, limits};
use crate::escalate::Step;

/// One `escalate:` step as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStep {
    /// How long into an unresolved episode this step comes.
    after: Spanned<String>,
    /// Whom it mentions: a `people:` group, a list of groups, or people written out.
    mention: Spanned<RawMentionRef>,
}

/// Checks a rule's `escalate:` steps: durations in range and distinct, mentions resolved,
/// and `resolve_after` given (`has_resolve`), since without it an episode never ends.
pub(super) fn check_escalate(
    c: &mut Checker,
    raw: &Spanned<Vec<RawStep>>,
    rule: &str,
    has_resolve: bool,
    people: &People,
) -> Vec<Step> {
    let ctx = |field: &str| format!("rule '{rule}', field '{field}'");
    if !has_resolve {
        c.problem(
            raw,
            ctx("escalate"),
            "needs resolve_after: an episode is counted from its first message until \"recovered\"",
        );
    }
    let mut steps: Vec<Step> = Vec::new();
    for (i, s) in raw.value.iter().enumerate() {
        let at = |f: &str| ctx(&format!("escalate[{}].{f}", i + 1));
        let after = c.duration(&s.after, &at("after"), limits::LONG);
        let mention = people::resolve(c, people, &s.mention, &at("mention"));
        if let Some(after) = after {
            if steps.iter().any(|x| x.after == after) {
                c.problem(&s.after, at("after"), "another step has the same `after`");
            }
            steps.push(Step { after, mention });
        }
    }
    if raw.value.is_empty() {
        c.problem(raw, ctx("escalate"), "names no step");
    }
    steps
}
