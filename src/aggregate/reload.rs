//! Hot reload: [`Aggregator::retire`] and [`Aggregator::reconfigure`] take the rules of a new
//! config without losing what the aggregator holds.

use std::sync::Arc;

use tokio::time::Instant;

use super::{Absence, Aggregator, Key, Routed, fan_out, hits_alert, whole};
use crate::ids::RuleId;
use crate::rules::{OTHER_GROUP, Rule};

/// Hot reload: the aggregator takes the rules of a new config without losing what it holds.
impl Aggregator {
    /// The names of the rules, by `RuleId`.
    pub fn rule_names(&self) -> &[Arc<str>] {
        &self.names
    }

    /// A rule that is gone from `rules` (by name, or turned from a hit rule into an absence rule
    /// or back) delivers now what it holds: every pending hit of every group becomes an alert,
    /// threshold met or not, routed by the old rule's robots. Call before [`Self::reconfigure`],
    /// and route the alerts with the routes of the old config.
    pub fn retire(&mut self, rules: &[Rule]) -> Vec<Routed> {
        let rules = &[rules, &self.stale_rules[..]].concat()[..];
        let kept = |old: &Rule| {
            rules
                .iter()
                .any(|r| r.name == old.name && r.absent_for.is_some() == old.absent_for.is_some())
        };
        let gone: Vec<Key> = self
            .groups
            .keys()
            .filter(|k| !kept(&self.rules[k.0]))
            .cloned()
            .collect();
        let mut out = Vec::new();
        for key in gone {
            let group = self.groups.remove(&key).expect("listed");
            if let Some(at) = group.scheduled {
                self.deadlines.remove(&(at, key.clone()));
            }
            let Some(p) = group.pending else {
                continue;
            };
            let rule = &self.rules[key.0];
            let (alert, holds) = hits_alert(key.clone(), self.names[key.0].clone(), rule, p);
            fan_out(alert, holds, rule.targets(key.2), &mut out);
        }
        let gone_absences: Vec<Key> = self
            .absences
            .keys()
            .filter(|k| !kept(&self.rules[k.0]))
            .cloned()
            .collect();
        for key in gone_absences {
            if let Some(at) = self.absences.remove(&key).and_then(|w| w.scheduled) {
                self.deadlines.remove(&(at, key));
            }
        }
        out
    }

    /// Takes the rules of a reloaded config. Rules that keep their name keep their pending hits,
    /// open windows, cooldowns, threshold history and absence timers (new durations apply from
    /// the next timer on); new absence rules start their timer now. Call [`Self::retire`] first:
    /// state of rules that are gone is dropped here.
    pub fn reconfigure(&mut self, rules: &[Rule], now: Instant) {
        // stale inputs' rules stay (inputs are read at start); their ids move after the new rules
        let rules = &[rules, &self.stale_rules[..]].concat()[..];
        let first_stale = rules.len() - self.stale_rules.len();
        for (i, (id, _)) in self.stale.iter_mut().enumerate() {
            *id = first_stale + i;
        }
        let kept = std::mem::replace(&mut self.kept, vec![0; rules.len()]);
        let new_id = |name: &str| rules.iter().position(|r| r.name == name);
        let old_rules = std::mem::replace(&mut self.rules, rules.to_vec());
        let map: Vec<Option<RuleId>> = old_rules.iter().map(|r| new_id(&r.name)).collect();
        let groups = std::mem::take(&mut self.groups);
        let absences = std::mem::take(&mut self.absences);
        self.absence_counts = vec![0; rules.len()];
        let held = std::mem::replace(&mut self.held, vec![0; rules.len()]);
        self.names = rules.iter().map(|r| Arc::from(r.name.as_str())).collect();
        self.deadlines.clear();
        self.group_counts = vec![0; rules.len()];
        for (old, n) in held.into_iter().enumerate() {
            if let Some(new) = map[old] {
                self.held[new] += n;
            }
        }
        for (old, n) in kept.into_iter().enumerate() {
            if let Some(new) = map[old] {
                self.kept[new] += n;
            }
        }
        // A route is kept by position: a reload that reorders `routes:` sends a group's next
        // message by the route now at its place (its hits were counted all the same).
        let route_kept =
            |route: Option<usize>, new: RuleId| route.filter(|&i| i < rules[new].routes.len());
        for ((old, text, route), mut group) in groups {
            let Some(new) = map[old] else { continue };
            group.scheduled = None;
            if !text.is_empty() && text.as_ref() != OTHER_GROUP {
                self.group_counts[new] += 1;
            }
            self.groups
                .insert((new, text, route_kept(route, new)), group);
        }
        for ((old, text, _), mut absence) in absences {
            let Some(new) = map[old] else { continue };
            // a rule that gained or lost group_by starts its absences afresh
            if text.is_empty() != rules[new].group_by.is_empty() {
                continue;
            }
            if !text.is_empty() && text.as_ref() != OTHER_GROUP {
                self.absence_counts[new] += 1;
            }
            absence.route = route_kept(absence.route, new);
            let key = (new, text, None);
            if let Some(at) = absence.scheduled {
                self.deadlines.insert((at, key.clone()));
            }
            self.absences.insert(key, absence);
        }
        for (id, rule) in rules.iter().enumerate() {
            if let Some(silence) = rule.absent_for
                && rule.group_by.is_empty()
                && !self.absences.contains_key(&whole(id))
            {
                let at = now + silence;
                self.deadlines.insert((at, whole(id)));
                self.absences.insert(whole(id), Absence::new(now, Some(at)));
            }
        }
        let keys: Vec<Key> = self.groups.keys().cloned().collect();
        for key in keys {
            self.reschedule(&key, now);
        }
    }
}
