//! The templates seen, remembered for `for` after each was last seen, bounded in count (and so
//! in memory: a template is at most [`MAX_TEMPLATE_BYTES`](super::template::MAX_TEMPLATE_BYTES)).
//!
//! Pure: it is told the wall-clock time of each sighting (the line's read time, or in `test
//! --replay` the simulated one), never reads a clock. Times are whole seconds since the Unix
//! epoch, which is also how they are saved (`new_patterns.json`, see
//! `crate::new_pattern::template_file`).
//!
//! At the bound, the template seen longest ago is forgotten to make room (it alerts again if it
//! comes back, as it would after `for`). A template unseen for `for` is new again.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

/// How far a template's last sighting may move before the memory counts as changed (and is
/// saved again): a busy template is seen every second, and `for` is days, so saving each of
/// those would rewrite the file every second for nothing.
pub const LAST_SEEN_SLACK: u64 = 60;

/// One remembered template, as saved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Remembered {
    /// The template (see `super::template`).
    pub template: String,
    /// First sighting (Unix seconds): when it alerted.
    pub first_seen: u64,
    /// Latest sighting (Unix seconds); it is forgotten `for` after this.
    pub last_seen: u64,
    /// Lines of it seen since its first sighting (as of the last save).
    pub hits: u64,
}

/// Whether a template was known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// First sighting (or first since it was forgotten): it alerts.
    New,
    /// Seen within `for`.
    Known,
}

#[derive(Debug, Clone)]
struct Entry {
    first_seen: u64,
    last_seen: u64,
    /// `last_seen` as of the last change counted (see [`LAST_SEEN_SLACK`]).
    noted: u64,
    hits: u64,
}

/// Templates seen within `for`, at most `max` of them; see the module docs.
#[derive(Debug, Clone)]
pub struct TemplateMemory {
    entries: HashMap<Arc<str>, Entry>,
    /// `(last_seen, template)`: the first is the one to forget at the bound.
    by_age: BTreeSet<(u64, Arc<str>)>,
    max: usize,
    remember_for: u64,
    /// Bumped on every change worth saving.
    generation: u64,
    /// Templates forgotten at the bound, over the memory's life.
    evicted: u64,
}

/// Unix seconds of `t` (0 before the epoch).
pub fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl TemplateMemory {
    /// An empty memory of at most `max` templates (at least 1), each kept `remember_for` after
    /// it was last seen.
    pub fn new(max: usize, remember_for: Duration) -> TemplateMemory {
        TemplateMemory {
            entries: HashMap::new(),
            by_age: BTreeSet::new(),
            max: max.max(1),
            remember_for: remember_for.as_secs().max(1),
            generation: 0,
            evicted: 0,
        }
    }

    /// A memory holding `saved` as of `now`: templates older than `remember_for` are not
    /// taken, and of the rest at most `max`, the most recently seen.
    pub fn restore(
        saved: Vec<Remembered>,
        max: usize,
        remember_for: Duration,
        now: SystemTime,
    ) -> TemplateMemory {
        let mut m = TemplateMemory::new(max, remember_for);
        let mut saved = saved;
        saved.sort_by_key(|r| std::cmp::Reverse(r.last_seen));
        for r in saved {
            if m.entries.len() >= m.max {
                break;
            }
            if m.expired(r.last_seen, unix_secs(now)) || m.entries.contains_key(&*r.template) {
                continue;
            }
            let key: Arc<str> = Arc::from(r.template);
            m.by_age.insert((r.last_seen, key.clone()));
            m.entries.insert(
                key,
                Entry {
                    first_seen: r.first_seen,
                    last_seen: r.last_seen,
                    noted: r.last_seen,
                    hits: r.hits,
                },
            );
        }
        m
    }

    /// Takes new bounds (a reload): templates beyond `max` are forgotten, oldest first.
    pub fn set_bounds(&mut self, max: usize, remember_for: Duration) {
        self.max = max.max(1);
        self.remember_for = remember_for.as_secs().max(1);
        while self.entries.len() > self.max {
            self.evict_oldest();
        }
    }

    fn expired(&self, last_seen: u64, now: u64) -> bool {
        now >= last_seen.saturating_add(self.remember_for)
    }

    /// A sighting of `template` at `now`: [`Seen::New`] when it was not remembered (or not
    /// within `for`), and from now on it is.
    pub fn see(&mut self, template: &str, now: SystemTime) -> Seen {
        let now = unix_secs(now);
        let remember_for = self.remember_for;
        if let Some((key, e)) = self.entries.get_key_value(template) {
            let key = key.clone();
            let fresh = now < e.last_seen.saturating_add(remember_for);
            let old_last = e.last_seen;
            let e = self.entries.get_mut(template).expect("just found");
            e.hits += 1;
            let seen = if fresh {
                Seen::Known
            } else {
                // Forgotten by now: a new first sighting.
                e.first_seen = now;
                e.hits = 1;
                Seen::New
            };
            if now > old_last {
                e.last_seen = now;
                self.by_age.remove(&(old_last, key.clone()));
                self.by_age.insert((now, key));
            }
            if seen == Seen::New || now >= e.noted + LAST_SEEN_SLACK {
                e.noted = e.last_seen;
                self.generation += 1;
            }
            return seen;
        }
        while self.entries.len() >= self.max {
            self.evict_oldest();
        }
        let key: Arc<str> = Arc::from(template);
        self.by_age.insert((now, key.clone()));
        self.entries.insert(
            key,
            Entry {
                first_seen: now,
                last_seen: now,
                noted: now,
                hits: 1,
            },
        );
        self.generation += 1;
        Seen::New
    }

    fn evict_oldest(&mut self) {
        if let Some((_, key)) = self.by_age.pop_first() {
            self.entries.remove(&key);
            self.evicted += 1;
            self.generation += 1;
        }
    }

    /// Forgets the templates not seen for `for` as of `now`.
    pub fn prune(&mut self, now: SystemTime) {
        let now = unix_secs(now);
        while let Some((last, _)) = self.by_age.first() {
            if !self.expired(*last, now) {
                break;
            }
            let (_, key) = self.by_age.pop_first().expect("just seen");
            self.entries.remove(&key);
            self.generation += 1;
        }
    }

    /// Templates remembered now.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Templates forgotten to make room, so far.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// Changes so far: equal numbers mean nothing worth saving happened in between.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Whether `template` is remembered (seen within `for`, as of its last sighting).
    pub fn knows(&self, template: &str) -> bool {
        self.entries.contains_key(template)
    }

    /// Everything remembered, as saved (sorted by template, so equal memories save equal files).
    pub fn export(&self) -> Vec<Remembered> {
        let mut out: Vec<Remembered> = (self.entries.iter())
            .map(|(t, e)| Remembered {
                template: t.to_string(),
                first_seen: e.first_seen,
                last_seen: e.last_seen,
                hits: e.hits,
            })
            .collect();
        out.sort_by(|a, b| a.template.cmp(&b.template));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(86_400);

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn a_template_is_new_once_then_known_for_as_long_as_it_keeps_coming() {
        let mut m = TemplateMemory::new(10, DAY);
        assert_eq!(m.see("a <NUM>", at(1_000)), Seen::New);
        assert_eq!(m.see("a <NUM>", at(1_001)), Seen::Known);
        // seen again within `for` of its last sighting: still known, days later
        assert_eq!(m.see("a <NUM>", at(1_000 + 86_000)), Seen::Known);
        assert_eq!(m.see("a <NUM>", at(1_000 + 2 * 86_000)), Seen::Known);
        // unseen for a whole `for`: new again
        assert_eq!(m.see("a <NUM>", at(1_000 + 3 * 86_400 + 86_400)), Seen::New);
        assert_eq!(m.see("b", at(1)), Seen::New);
    }

    #[test]
    fn at_the_bound_the_template_seen_longest_ago_is_forgotten() {
        let mut m = TemplateMemory::new(3, DAY);
        m.see("a", at(10));
        m.see("b", at(20));
        m.see("c", at(30));
        m.see("a", at(40)); // a is now the freshest; b the oldest
        assert_eq!(m.see("d", at(50)), Seen::New);
        assert_eq!(m.len(), 3);
        assert!(!m.knows("b"));
        assert!(m.knows("a") && m.knows("c") && m.knows("d"));
        assert_eq!(m.evicted(), 1);
        assert_eq!(m.see("b", at(60)), Seen::New);
        assert!(!m.knows("c"));
    }

    #[test]
    fn export_and_restore_keep_what_is_within_for_and_the_bound() {
        let mut m = TemplateMemory::new(10, DAY);
        m.see("old", at(0));
        m.see("mid", at(50_000));
        m.see("new", at(90_000));
        m.see("new", at(90_100));
        let saved = m.export();
        assert_eq!(saved[0].template, "mid");
        assert_eq!(
            saved.iter().find(|r| r.template == "new").map(|r| r.hits),
            Some(2)
        );
        // a day after "old": it is gone; with room for one, only the freshest stays
        let back = TemplateMemory::restore(saved.clone(), 10, DAY, at(86_400));
        assert!(!back.knows("old") && back.knows("mid") && back.knows("new"));
        let one = TemplateMemory::restore(saved, 1, DAY, at(86_400));
        assert_eq!((one.len(), one.knows("new")), (1, true));
    }

    #[test]
    fn only_changes_worth_saving_bump_the_generation() {
        let mut m = TemplateMemory::new(10, DAY);
        m.see("a", at(100));
        let g = m.generation();
        m.see("a", at(101));
        m.see("a", at(100 + LAST_SEEN_SLACK - 1));
        assert_eq!(m.generation(), g);
        m.see("a", at(100 + LAST_SEEN_SLACK));
        assert_eq!(m.generation(), g + 1);
        m.prune(at(100 + LAST_SEEN_SLACK + 86_400));
        assert!(m.is_empty());
        assert_eq!(m.generation(), g + 2);
    }
}
