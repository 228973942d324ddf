//! What an instance puts into its robot's digest stream: one closed alert (matching lines of one
//! rule and group, counted exactly, with a few example lines), named with the instance's host,
//! as JSON; and how the sender turns the entries of many instances back into alerts, one per
//! rule and group, that remember which hosts contributed how much ([`HostCounts`]).
//!
//! Only what the instance alone knows travels: counts, times, host, example lines, captures.
//! The look of a message (severity, template, mentions) is the sender's own config for the rule
//! ([`FleetRules`]): a fleet runs one config. An entry of a rule the sender does not know (a
//! config rolled out to half the fleet) is still sent, plainly, never dropped.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::aggregate::Routed;
use crate::alert::{Alert, AlertKind, Sample};
use crate::rules::Rule;
use crate::style::Style;

/// The hosts a message names in each header at most; the others are counted (`+N more`).
pub const HOSTS_NAMED: usize = 5;

/// One closed alert in the stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetEntry {
    /// The instance's host name (`DINGTAIL_HOST`, else the machine's).
    pub host: String,
    /// The rule's name (names, not ids, are shared by a fleet).
    pub rule: String,
    /// The `group_by` value, if any.
    pub group: Option<String>,
    /// The route the hits took (`None`: the rule's own robots).
    pub route: Option<usize>,
    /// Matching lines, exact.
    pub count: u64,
    /// First and last hit, ms since the epoch.
    pub first_ms: u64,
    /// Last hit, ms since the epoch.
    pub last_ms: u64,
    /// Source of the latest hit.
    pub source: String,
    /// Example lines (lossy UTF-8: they are shown, never parsed) and whether each was cut.
    pub samples: Vec<(String, bool)>,
    /// The rule's `max_lines` where it was counted.
    pub max_lines: usize,
    /// Named captures of the latest hit.
    pub captures: Vec<String>,
    /// Hits covered by a silence meanwhile (not in `count`).
    pub silenced: u64,
}

fn ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64
}

fn time(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

impl FleetEntry {
    /// The entry for an alert counted on `host`.
    pub fn of(alert: &Alert, host: &str) -> FleetEntry {
        FleetEntry {
            host: host.to_owned(),
            rule: alert.rule_name.to_string(),
            group: alert.group.as_deref().map(str::to_owned),
            route: alert.route,
            count: alert.count,
            first_ms: ms(alert.first),
            last_ms: ms(alert.last),
            source: alert.source.to_string(),
            samples: alert
                .samples
                .iter()
                .map(|s| (String::from_utf8_lossy(&s.text).into_owned(), s.cut))
                .collect(),
            max_lines: alert.max_lines,
            captures: alert.captures.clone(),
            silenced: alert.silenced,
        }
    }

    /// The alert again, styled by the sender's config for its rule (see [`FleetRules`]).
    pub fn to_alert(&self, rules: &FleetRules) -> Alert {
        let (rule, style) = rules.lookup(&self.rule, self.route);
        Alert {
            rule,
            rule_name: Arc::from(self.rule.as_str()),
            group: self.group.as_deref().map(Arc::from),
            kind: AlertKind::Hits,
            count: self.count,
            first: time(self.first_ms),
            last: time(self.last_ms),
            source: Arc::from(self.source.as_str()),
            other_sources: Vec::new(),
            samples: self
                .samples
                .iter()
                .map(|(text, cut)| Sample {
                    text: Bytes::copy_from_slice(text.as_bytes()),
                    cut: *cut,
                })
                .collect(),
            max_lines: self.max_lines,
            captures: self.captures.clone(),
            style,
            route: self.route,
            silenced: self.silenced,
        }
    }
}

/// A rule's id, its own style, and its routes' styles.
type RuleLook = (usize, Arc<Style>, Vec<Arc<Style>>);

/// The rules as the sender's config has them: id and style by name (and route).
#[derive(Debug, Default, Clone)]
pub struct FleetRules {
    by_name: HashMap<String, RuleLook>,
}

impl FleetRules {
    /// From the config's rules.
    pub fn new(rules: &[Rule]) -> FleetRules {
        FleetRules {
            by_name: rules
                .iter()
                .enumerate()
                .map(|(id, r)| {
                    let routes = (0..r.routes.len())
                        .map(|i| r.style_for(Some(i)).clone())
                        .collect();
                    (r.name.clone(), (id, r.style.clone(), routes))
                })
                .collect(),
        }
    }

    /// Id and style of a rule; an unknown rule gets an id past every known one and the plain
    /// style.
    fn lookup(&self, name: &str, route: Option<usize>) -> (usize, Arc<Style>) {
        match self.by_name.get(name) {
            Some((id, style, routes)) => {
                let s = route.and_then(|i| routes.get(i)).unwrap_or(style);
                (*id, s.clone())
            }
            None => (usize::MAX, Arc::new(Style::default())),
        }
    }

    /// Whether `alert` looks exactly as the config's rule does, so the sender renders it the
    /// same (an escalated alert carries wider mentions: it is sent by its own instance).
    pub fn plain(&self, alert: &Alert) -> bool {
        matches!(alert.kind, AlertKind::Hits)
            && self
                .by_name
                .get(&*alert.rule_name)
                .is_some_and(|(_, style, routes)| {
                    let s = alert.route.and_then(|i| routes.get(i)).unwrap_or(style);
                    Arc::ptr_eq(s, &alert.style) || **s == *alert.style
                })
    }
}

/// How many matching lines each host contributed to one merged alert.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostCounts(Vec<(String, u64)>);

impl HostCounts {
    /// Adds `count` lines from `host`.
    pub fn add(&mut self, host: &str, count: u64) {
        match self.0.iter_mut().find(|(h, _)| h == host) {
            Some((_, n)) => *n += count,
            None => self.0.push((host.to_owned(), count)),
        }
    }

    /// How many hosts.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// No host yet.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// What the header says instead of one host name: the host itself when alone, else
    /// `on 48 hosts: web-3 ×1200, web-7 ×800 +46 more` (most lines first, then by name).
    pub fn text(&self) -> String {
        match &self.0[..] {
            [] => String::new(),
            [(host, _)] => host.clone(),
            all => {
                let mut top = all.to_vec();
                top.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
                let named: Vec<String> = top
                    .iter()
                    .take(HOSTS_NAMED)
                    .map(|(h, n)| format!("{h} ×{n}"))
                    .collect();
                let mut text = format!("on {} hosts: {}", all.len(), named.join(", "));
                if all.len() > HOSTS_NAMED {
                    text.push_str(&format!(" +{} more", all.len() - HOSTS_NAMED));
                }
                text
            }
        }
    }
}

/// Stream entries merged by rule and group, oldest first, each alert with its hosts and the
/// ids of the entries it holds.
#[derive(Debug, Default)]
pub struct Merged {
    /// The alerts, in the order their rule and group first appear in the stream.
    pub alerts: Vec<Routed>,
    /// Per alert: its hosts.
    pub hosts: Vec<HostCounts>,
    /// Per alert: the stream ids it holds.
    pub ids: Vec<Vec<String>>,
}

impl Merged {
    /// Merges `(id, entry)` pairs (in stream order).
    pub fn of(entries: &[(String, FleetEntry)], rules: &FleetRules) -> Merged {
        let mut m = Merged::default();
        // Rule, group and route: what makes two entries one alert (all are matching lines).
        let mut index: HashMap<(&str, Option<&str>, Option<usize>), usize> = HashMap::new();
        for (id, entry) in entries {
            let alert = entry.to_alert(rules);
            let key = (entry.rule.as_str(), entry.group.as_deref(), entry.route);
            match index.get(&key).copied() {
                Some(i) => {
                    m.alerts[i].alert.merge(alert);
                    m.hosts[i].add(&entry.host, entry.count);
                    m.ids[i].push(id.clone());
                }
                None => {
                    index.insert(key, m.alerts.len());
                    let mut hosts = HostCounts::default();
                    hosts.add(&entry.host, entry.count);
                    m.alerts.push(Routed {
                        alert,
                        robot: None,
                        holds: Vec::new(),
                    });
                    m.hosts.push(hosts);
                    m.ids.push(vec![id.clone()]);
                }
            }
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(host: &str, rule: &str, count: u64) -> FleetEntry {
        FleetEntry {
            host: host.into(),
            rule: rule.into(),
            group: None,
            route: None,
            count,
            first_ms: 1_000,
            last_ms: 2_000,
            source: "-".into(),
            samples: vec![(format!("{host} line"), false)],
            max_lines: 2,
            captures: Vec::new(),
            silenced: 0,
        }
    }

    #[test]
    fn entries_of_one_rule_from_many_hosts_merge_with_their_hosts_counted() {
        let entries: Vec<(String, FleetEntry)> = (0..8)
            .map(|i| (format!("{i}-0"), entry(&format!("web-{i}"), "5xx", i + 1)))
            .chain([("9-0".to_owned(), entry("web-1", "slow", 4))])
            .chain([("10-0".to_owned(), entry("web-7", "5xx", 10))])
            .collect();
        let m = Merged::of(&entries, &FleetRules::default());
        assert_eq!(m.alerts.len(), 2);
        assert_eq!(m.alerts[0].alert.count, (1..=8).sum::<u64>() + 10);
        assert_eq!(m.alerts[0].alert.samples.len(), 2, "max_lines kept");
        assert_eq!(m.ids[0].len(), 9);
        assert_eq!(m.hosts[0].len(), 8);
        assert_eq!(
            m.hosts[0].text(),
            "on 8 hosts: web-7 ×18, web-6 ×7, web-5 ×6, web-4 ×5, web-3 ×4 +3 more"
        );
        assert_eq!(m.hosts[1].text(), "web-1");
    }

    #[test]
    fn an_entry_survives_json_and_becomes_the_same_alert() {
        let e = entry("web-1", "5xx", 3);
        let back: FleetEntry = serde_json::from_str(&serde_json::to_string(&e).unwrap()).unwrap();
        assert_eq!(back, e);
        let a = back.to_alert(&FleetRules::default());
        assert_eq!(a.count, 3);
        assert_eq!(&*a.samples[0].text, b"web-1 line");
        assert_eq!(FleetEntry::of(&a, "web-1"), e);
    }
}
