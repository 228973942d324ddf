//! One robot's view of [`Metrics`]: what its dispatcher feeds (messages, errcodes, retries,
//! pending alerts, pauses, permanent failures, latency).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

use super::{Labels, Metrics, labels, unix_seconds};
use crate::delivery_report::DeliveryReport;

impl Metrics {
    /// The handle a dispatcher feeds (`None`: the dry-run dispatcher of a config without robots).
    pub fn robot(self: &Arc<Self>, robot: Option<&str>) -> RobotMetrics {
        let name = robot.unwrap_or("(none)").to_owned();
        let m = RobotMetrics {
            metrics: self.clone(),
            label: labels(&[("robot", &name)]),
            name,
            published: DeliveryReport::default(),
        };
        // Series at zero from the start.
        for result in ["sent", "failed"] {
            let _ = m.metrics.messages.get_or_create(&m.with("result", result));
            let _ = m.metrics.events.get_or_create(&m.with("result", result));
        }
        let _ = m.metrics.retries.get_or_create(&m.label);
        let _ = m.metrics.latency.get_or_create(&m.label);
        m.set_pending(0, 0);
        m.set_paused(None);
        m.set_failing(None);
        m
    }
}

/// One robot's view of [`Metrics`], held by its dispatcher.
pub struct RobotMetrics {
    metrics: Arc<Metrics>,
    label: Labels,
    name: String,
    /// What of the dispatcher's report is already counted.
    published: DeliveryReport,
}

impl RobotMetrics {
    fn with(&self, key: &'static str, value: &str) -> Labels {
        let mut l = self.label.clone();
        l.push((key, value.to_owned()));
        l
    }

    /// Brings the counters up to the dispatcher's report (they only grow).
    pub fn publish(&mut self, report: &DeliveryReport) {
        let m = &self.metrics;
        let p = &self.published;
        let failed_events = report.events_failed_total();
        let inc = |f: &Family<Labels, Counter>, l: Labels, now: u64, before: u64| {
            if now > before {
                f.get_or_create(&l).inc_by(now - before);
            }
        };
        inc(
            &m.messages,
            self.with("result", "sent"),
            report.messages_sent,
            p.messages_sent,
        );
        inc(
            &m.messages,
            self.with("result", "failed"),
            report.messages_failed,
            p.messages_failed,
        );
        inc(
            &m.events,
            self.with("result", "sent"),
            report.events_sent,
            p.events_sent,
        );
        inc(
            &m.events,
            self.with("result", "failed"),
            failed_events,
            p.events_failed_total(),
        );
        inc(
            &m.events,
            self.with("result", "forwarded"),
            report.events_forwarded,
            p.events_forwarded,
        );
        self.published = report.clone();
    }

    /// Alerts and matching lines waiting for this robot.
    pub fn set_pending(&self, alerts: usize, hits: u64) {
        let m = &self.metrics;
        m.pending_alerts
            .get_or_create(&self.label)
            .set(i64::try_from(alerts).unwrap_or(i64::MAX));
        m.pending_hits
            .get_or_create(&self.label)
            .set(i64::try_from(hits).unwrap_or(i64::MAX));
    }

    /// The robot is paused until `until` (DingTalk throttled it), or not paused (`None`).
    pub fn set_paused(&self, until: Option<SystemTime>) {
        let m = &self.metrics;
        m.paused
            .get_or_create(&self.label)
            .set(i64::from(until.is_some()));
        m.paused_until
            .get_or_create(&self.label)
            .set(until.map_or(0.0, unix_seconds));
    }

    /// The robot fails permanently, for this reason (or works again: `None`). A change is
    /// reported as [`Trouble`](crate::trouble::Trouble) (to `self_alerts:`).
    pub fn set_failing(&self, failing: Option<&str>) {
        use crate::trouble::Trouble;
        let m = &self.metrics;
        m.failing
            .get_or_create(&self.label)
            .set(i64::from(failing.is_some()));
        let mut set = m.failing_robots.lock().unwrap_or_else(|e| e.into_inner());
        let changed = match failing {
            Some(_) => set.insert(self.name.clone()),
            None => set.remove(&self.name),
        };
        drop(set);
        if changed {
            let robot = self.name.clone();
            let trouble = match failing {
                Some(reason) => Trouble::RobotFailing {
                    robot,
                    reason: reason.to_owned(),
                },
                None => Trouble::RobotWorks { robot },
            };
            m.trouble
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .report(trouble);
        }
    }

    /// The robot's fleet digest stream is at its limit (`true`) and this instance keeps its
    /// alerts, or has room again; a change is also reported as [`Trouble`](crate::trouble::Trouble)
    /// (to `self_alerts:`).
    pub fn set_digest_full(&self, full: bool) {
        use crate::trouble::Trouble;
        let was = self
            .metrics
            .digest_full
            .get_or_create(&self.label)
            .set(i64::from(full));
        if (was != 0) == full {
            return;
        }
        let robot = self.name.clone();
        self.metrics
            .trouble
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .report(if full {
                Trouble::FleetDigestFull { robot }
            } else {
                Trouble::FleetDigestRoom { robot }
            });
    }

    /// DingTalk answered with a non-zero errcode.
    pub fn record_errcode(&self, errcode: i64) {
        self.metrics
            .errcodes
            .get_or_create(&self.with("errcode", &errcode.to_string()))
            .inc();
    }

    /// An attempt is retried.
    pub fn record_retry(&self) {
        self.metrics.retries.get_or_create(&self.label).inc();
    }

    /// A message was accepted `latency` after its first matching line.
    pub fn record_latency(&self, latency: Duration) {
        self.metrics
            .latency
            .get_or_create(&self.label)
            .observe(latency.as_secs_f64());
    }
}
