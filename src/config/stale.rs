//! `stale:` of an input (`inputs[].stale`, `stdin.stale`): see [`crate::stale`].

use serde_saphyr::Spanned;

use super::raw::RawStdin;
use super::{Checker, RobotId, limits};
use crate::stale::StaleInput;

/// Checks every `stale:`: a duration in range (at most 30 days), and a robot to tell (the
/// default robot: `defaults.robot`, or the only one).
pub(super) fn check_stale(
    c: &mut Checker,
    inputs: &[(String, &Spanned<String>)],
    stdin: Option<&RawStdin>,
    default_robot: Option<RobotId>,
    robots: usize,
) -> Vec<StaleInput> {
    let mut out = Vec::new();
    let mut all: Vec<(String, &Spanned<String>, String)> = (inputs.iter())
        .enumerate()
        .map(|(i, (path, at))| (path.clone(), *at, format!("input {}, field 'stale'", i + 1)))
        .collect();
    if let Some(s) = stdin.and_then(|s| s.stale.as_ref()) {
        all.push(("-".to_owned(), s, "stdin, field 'stale'".to_owned()));
    }
    for (input, at, ctx) in all {
        let Some(after) = c.duration(at, &ctx, limits::LONG) else {
            continue;
        };
        if default_robot.is_none() && robots > 1 {
            c.problem(
                at,
                &ctx,
                "several robots are defined: name the one a stale input tells in defaults.robot",
            );
        }
        out.push(StaleInput { input, after });
    }
    out
}
