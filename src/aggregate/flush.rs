//! The end of input or a stop: [`Aggregator::flush`] sends what would be sent at its time,
//! carries what a saved state keeps for the next run, and reports absence that is due.

use tokio::time::Instant;

use super::{Aggregator, Key, Routed};

impl Aggregator {
    /// End of input (or shutdown) at `now`: sends everything that would be sent at its time
    /// (open windows, hits gathered in cooldowns) and checks absence rules; hits below a
    /// threshold that was not met are not sent but added to [`Self::held_below_threshold`].
    /// Pending "recovered" messages are not sent: nobody knows yet whether it stays quiet.
    pub fn flush(&mut self, now: Instant) -> Vec<Routed> {
        let mut due: Vec<(Instant, Key)> = Vec::new();
        let mut carry: Vec<Key> = Vec::new();
        for (key, g) in &self.groups {
            if let Some(p) = &g.pending {
                match (g.closes_at, g.cooldown_until) {
                    (Some(t), _) => due.push((t, key.clone())),
                    // (a routed stream is not saved, see persist.rs: sent now instead)
                    (None, Some(_)) if self.keep_pending && key.2.is_none() => {
                        self.kept[key.0] += p.count;
                        carry.push(key.clone());
                    }
                    (None, Some(t)) => due.push((t, key.clone())),
                    (None, None) => {
                        self.held[key.0] += p.count;
                        carry.push(key.clone());
                    }
                }
            }
        }
        for key in carry {
            let g = self.groups.get_mut(&key).expect("listed");
            let mut p = g.pending.take().expect("listed with pending hits");
            // Counted here, carried by the snapshot: the holds go once it is saved (below a
            // threshold without a saved state, the lines are simply done with).
            let copies = self.rules[key.0].targets(key.2).len().max(1);
            let holds = std::mem::take(&mut p.holds);
            // A routed stream is not saved (see persist.rs): its lines below the threshold are
            // simply done with.
            let saved = key.2.is_none();
            let to = if self.keep_pending && saved {
                &mut self.carried_holds
            } else {
                &mut self.released
            };
            for _ in 0..copies {
                to.extend(&holds);
            }
            if saved {
                self.carried.push((key, p));
            }
        }
        due.sort();
        let mut out = Vec::new();
        for (at, key) in due {
            if let Some(g) = self.groups.get_mut(&key) {
                // Due now: make the open window (or cooldown) end.
                if g.closes_at.is_some() {
                    g.closes_at = Some(now.min(at));
                } else {
                    g.cooldown_until = Some(now.min(at));
                }
                let at = now.min(at);
                self.group_due(&key, at, &mut out);
            }
        }
        let mut absent: Vec<Key> = self.absences.keys().cloned().collect();
        absent.sort_unstable();
        for key in absent {
            let absence = &self.absences[&key];
            let silence = self.rules[key.0].absent_for.expect("an absence rule");
            let since = absence.last_seen.map_or(absence.since, |(t, _)| t);
            // Only what is due: a stop (every deploy) must not page for a line that simply
            // had not had its `for:` yet.
            // (an input that wrote nothing at all before its end is not stale: it ended)
            let stale_input = self.stale.iter().any(|&(id, _)| id == key.0);
            let silent = (self.absence_at_end && absence.last_seen.is_none() && !stale_input)
                || now >= since + silence;
            if !absence.alerted && silent {
                self.absence_due(&key, now, &mut out);
            }
        }
        // No timer runs after the end; what the groups still know (cooldowns, open alerts,
        // threshold history) stays for the snapshot.
        self.deadlines.clear();
        for g in self.groups.values_mut() {
            g.scheduled = None;
        }
        for w in self.absences.values_mut() {
            w.scheduled = None;
        }
        out
    }

    /// Whether [`Self::flush`] keeps hits gathered in a cooldown for the next run instead of
    /// sending them: yes when followed files are stopped and the alert state is saved (a deploy
    /// must not send what is cooling down), no for stdin (its end is final).
    pub fn with_pending_kept(mut self, yes: bool) -> Aggregator {
        self.keep_pending = yes;
        self
    }

    /// Per rule: hits gathered in a cooldown that [`Self::flush`] kept for the next run.
    pub fn kept_for_next_run(&self) -> &[u64] {
        &self.kept
    }

    /// The snapshot carrying the kept hits is saved: their holds are released (through
    /// [`Self::take_holds`]). Not called when the save failed, so the checkpoint stays before
    /// those lines and the next run reads them again.
    pub fn release_carried(&mut self) {
        self.released.append(&mut self.carried_holds);
    }

    /// Whether the end of input (a [`Self::flush`]) reports absence rules whose line was never
    /// seen though their `for:` has not passed: true by default (a finite input read to its
    /// end), false for followed files, where the end is a stop (a deploy) and must not page.
    pub fn with_absence_at_end(mut self, yes: bool) -> Aggregator {
        self.absence_at_end = yes;
        self
    }
}
