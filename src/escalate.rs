//! `escalate:`: an alert still firing after a while reaches more people.
//!
//! ```yaml
//! escalate: [{ after: 15m, mention: dba }, { after: 1h, mention: { all: true } }]
//! ```
//!
//! An *episode* of a rule (or of one of its groups, or routes) starts with its first message and
//! ends with "recovered" (`resolve_after`, which `escalate` needs: without it an episode would
//! never end). Step `i` is reached once the episode has lasted `after`: the aggregator then
//! sends a message of its own (`【rule】escalated`, no line, so counts stay exact) mentioning the
//! step's people, and every later message of the episode mentions everyone of the steps
//! reached. "recovered" ends the episode; the next one starts again from the first step.
//!
//! Pure: the aggregator keeps each episode's start and the steps reached, and asks here who to
//! mention.

use std::sync::Arc;
use std::time::Duration;

use crate::style::{Mention, Style};

/// One `escalate:` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// How long after the episode's first message.
    pub after: Duration,
    /// Who is added from then on.
    pub mention: Mention,
}

/// How many of `steps` (sorted by `after`) an episode that has lasted `elapsed` has reached.
pub fn reached(steps: &[Step], elapsed: Duration) -> usize {
    steps.iter().take_while(|s| s.after <= elapsed).count()
}

/// `style` with the mentions of the first `level` steps added (the same `Arc` at level 0, so
/// alerts of an episode that never escalated share the rule's style).
pub fn styled(style: &Arc<Style>, steps: &[Step], level: usize) -> Arc<Style> {
    if level == 0 || steps.is_empty() {
        return style.clone();
    }
    let mut s = Style::clone(style);
    for step in &steps[..level.min(steps.len())] {
        s.mention.absorb(&step.mention);
    }
    Arc::new(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(mins: u64, mobile: &str, all: bool) -> Step {
        Step {
            after: Duration::from_secs(mins * 60),
            mention: Mention {
                mobiles: if mobile.is_empty() {
                    Vec::new()
                } else {
                    vec![mobile.into()]
                },
                all,
                ..Mention::default()
            },
        }
    }

    #[test]
    fn steps_reached_and_people_added() {
        let steps = [step(15, "13800000001", false), step(60, "", true)];
        let min = |m: u64| Duration::from_secs(m * 60);
        assert_eq!(reached(&steps, min(0)), 0);
        assert_eq!(reached(&steps, min(14)), 0);
        assert_eq!(reached(&steps, min(15)), 1);
        assert_eq!(reached(&steps, min(60)), 2);
        assert_eq!(reached(&steps, min(6000)), 2);
        let base = Arc::new(Style::default());
        assert!(Arc::ptr_eq(&styled(&base, &steps, 0), &base));
        let one = styled(&base, &steps, 1);
        assert_eq!(one.mention.mobiles, ["13800000001"]);
        assert!(!one.mention.all);
        assert!(styled(&base, &steps, 2).mention.all);
    }
}
