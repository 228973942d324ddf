//! What the aggregator hands on: [`Routed`] alerts, one copy per robot, built from a group's
//! pending hits ([`hits_alert`]) and fanned out to the robots of the rule or its route
//! ([`fan_out`]).

use std::sync::Arc;

use super::{Alert, AlertKind, Key, Pending};
use crate::ids::RobotId;
use crate::rules::Rule;
use crate::source::Mark;

/// An [`Alert`] on its way to one robot, with the file positions it holds until it is settled
/// (delivered, or reported undelivered). Reads as the alert it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routed {
    /// What the message says.
    pub alert: Alert,
    /// Where it goes (`None` when the config has no robot: dry-run). A rule with several robots
    /// yields one alert per robot.
    pub robot: Option<RobotId>,
    /// Per followed file, the start of the first chunk this alert counts a hit from: until the
    /// alert is settled (delivered, or reported undelivered) the file's checkpoint stays at or
    /// before it. One entry per file, not per hit, because later hits of the same file lie after
    /// it anyway; merging keeps the earliest per file and hands back the others to be settled
    /// ([`Routed::merge`]), so this never grows with the number of alerts merged.
    pub holds: Vec<Mark>,
}

impl Routed {
    /// Folds a later alert of the same stream into this one ([`Alert::merge`]). Holds stay one per
    /// file, the earliest: the later ones are returned, to be settled at once (the earlier hold
    /// keeps the file's checkpoint before them anyway), so however many alerts merge while
    /// DingTalk is down, an alert holds at most one position per file.
    pub fn merge(&mut self, later: Routed) -> Vec<Mark> {
        self.alert.merge(later.alert);
        let mut surplus = Vec::new();
        for h in later.holds {
            match self.holds.iter_mut().find(|m| m.file == h.file) {
                Some(m) => {
                    surplus.push((*m).max(h));
                    *m = (*m).min(h);
                }
                None => self.holds.push(h),
            }
        }
        surplus
    }
}

impl std::ops::Deref for Routed {
    type Target = Alert;
    fn deref(&self) -> &Alert {
        &self.alert
    }
}

impl std::ops::DerefMut for Routed {
    fn deref_mut(&mut self) -> &mut Alert {
        &mut self.alert
    }
}

impl AsRef<Alert> for Routed {
    fn as_ref(&self) -> &Alert {
        &self.alert
    }
}

/// The alert that a group's pending hits become when its window closes (or its rule goes), and
/// the file positions it holds.
pub(super) fn hits_alert(
    key: Key,
    rule_name: Arc<str>,
    rule: &Rule,
    p: Pending,
) -> (Alert, Vec<Mark>) {
    let alert = Alert {
        rule: key.0,
        rule_name,
        group: (!rule.group_by.is_empty()).then_some(key.1),
        kind: AlertKind::Hits,
        count: p.count,
        first: p.first,
        last: p.last,
        source: p.source,
        other_sources: p.other_sources,
        samples: p.samples,
        max_lines: rule.max_lines,
        captures: p.captures,
        style: rule.style_for(key.2).clone(),
        route: key.2,
        silenced: 0,
    };
    (alert, p.holds)
}

/// One copy of the alert per robot it goes to (the rule's, or its route's), each holding
/// `holds` (each copy is settled on its own).
pub(super) fn fan_out(alert: Alert, holds: Vec<Mark>, robots: &[RobotId], out: &mut Vec<Routed>) {
    match robots {
        [] => out.push(Routed {
            alert,
            robot: None,
            holds,
        }),
        [only] => out.push(Routed {
            alert,
            robot: Some(*only),
            holds,
        }),
        many => out.extend(many.iter().map(|&r| Routed {
            alert: alert.clone(),
            robot: Some(r),
            holds: holds.clone(),
        })),
    }
}
