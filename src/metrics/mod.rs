//! What a running dingtail tells Prometheus (`GET /metrics`) and Kubernetes probes (`/readyz`).
//!
//! One [`Metrics`] per process, shared (`Arc`) by the stages that feed it: the matcher thread
//! (lines, bytes, hits), each dispatcher (messages, errcodes, retries, pending, pause, latency)
//! and the reloader. The text is written by `prometheus-client` (OpenMetrics text, which
//! Prometheus and `promtool check metrics` read).
//!
//! The counters are fed from the same numbers as the run's summary line (a dispatcher publishes
//! its [`DeliveryReport`] as it changes), so a scrape after the last delivery agrees with the
//! summary exactly. Labels are rule, robot and source names: bounded by the config and the
//! followed files, never by log content.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::SystemTime;

use crate::budget::SharedBudget;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::matcher::HitBatch;

mod robot_metrics;

pub use robot_metrics::RobotMetrics;

/// A label set: a few `(name, value)` pairs.
type Labels = Vec<(&'static str, String)>;

fn labels(pairs: &[(&'static str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| (*k, (*v).to_owned())).collect()
}

/// Latency buckets: 50 ms to about 27 minutes (a throttle pause or an outage shows as the tail).
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.05, 2.0, 16))
}

/// Every metric dingtail exposes, and the readiness it derives from them.
pub struct Metrics {
    registry: Registry,
    lines_read: Family<Labels, Counter>,
    bytes_read: Family<Labels, Counter>,
    hits: Family<Labels, Counter>,
    silenced: Family<Labels, Counter>,
    messages: Family<Labels, Counter>,
    events: Family<Labels, Counter>,
    errcodes: Family<Labels, Counter>,
    retries: Family<Labels, Counter>,
    pending_alerts: Family<Labels, Gauge>,
    pending_hits: Family<Labels, Gauge>,
    paused: Family<Labels, Gauge>,
    paused_until: Family<Labels, Gauge<f64, AtomicU64>>,
    failing: Family<Labels, Gauge>,
    digest_full: Family<Labels, Gauge>,
    latency: Family<Labels, Histogram, fn() -> Histogram>,
    reloads: Family<Labels, Counter>,
    config_ok: Gauge,
    config_loaded_at: Gauge<f64, AtomicU64>,
    sources_open: Gauge,
    build_info: Family<Labels, Gauge>,
    budget_monthly: Gauge,
    budget_used: Gauge,
    budget_allowance: Gauge,
    robot_budget_used: Family<Labels, Gauge>,
    robot_budget_spent: Family<Labels, Gauge>,
    coordination_fallback: Gauge,
    /// The monthly budget, read at each scrape (its ledger is the truth; copying it into gauges
    /// on every send would be a second bookkeeping to keep in step).
    budget: Mutex<Option<SharedBudget>>,
    /// Robots failing permanently now: `/readyz` answers 503 while any is.
    failing_robots: Mutex<BTreeSet<String>>,
    /// Whether the sources are open (set when reading starts, cleared at end of input).
    reading: AtomicBool,
    /// Lines and bytes read since start, all sources (for `self_alert`'s restart news).
    lines_total: AtomicU64,
    bytes_total: AtomicU64,
    hits_total: AtomicU64,
    /// Rules that matched a line since start.
    rules_hit: Mutex<BTreeSet<String>>,
    /// Where a robot that starts (or stops) failing permanently is reported.
    trouble: Mutex<crate::trouble::Reporter>,
    files_followed: Gauge,
    checkpoint_lag: Family<Labels, Gauge>,
    /// The followed files and their checkpoints, read at each scrape.
    positions: Mutex<Option<crate::source::checkpoint::Positions>>,
    self_alerts: Family<Labels, Counter>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// All metrics registered, at zero; `build_info` says which dingtail this is.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("dingtail");
        let m = Metrics {
            lines_read: Family::default(),
            bytes_read: Family::default(),
            hits: Family::default(),
            silenced: Family::default(),
            messages: Family::default(),
            events: Family::default(),
            errcodes: Family::default(),
            retries: Family::default(),
            pending_alerts: Family::default(),
            pending_hits: Family::default(),
            paused: Family::default(),
            paused_until: Family::default(),
            failing: Family::default(),
            digest_full: Family::default(),
            latency: Family::new_with_constructor(latency_histogram as fn() -> Histogram),
            reloads: Family::default(),
            config_ok: Gauge::default(),
            config_loaded_at: Gauge::default(),
            sources_open: Gauge::default(),
            build_info: Family::default(),
            budget_monthly: Gauge::default(),
            budget_used: Gauge::default(),
            budget_allowance: Gauge::default(),
            robot_budget_used: Family::default(),
            robot_budget_spent: Family::default(),
            coordination_fallback: Gauge::default(),
            budget: Mutex::new(None),
            failing_robots: Mutex::new(BTreeSet::new()),
            reading: AtomicBool::new(false),
            lines_total: AtomicU64::new(0),
            hits_total: AtomicU64::new(0),
            bytes_total: AtomicU64::new(0),
            rules_hit: Mutex::new(BTreeSet::new()),
            trouble: Mutex::new(crate::trouble::Reporter::default()),
            files_followed: Gauge::default(),
            checkpoint_lag: Family::default(),
            positions: Mutex::new(None),
            self_alerts: Family::default(),
            registry: Registry::default(),
        };
        let r = &mut registry;
        // A gauge at 1 rather than an OpenMetrics `info`, which the classic text format lacks.
        r.register(
            "build_info",
            "Which dingtail this is (always 1)",
            m.build_info.clone(),
        );
        m.build_info
            .get_or_create(&labels(&[("version", env!("CARGO_PKG_VERSION"))]))
            .set(1);
        r.register(
            "lines_read",
            "Lines (or multi-line events) read, per source",
            m.lines_read.clone(),
        );
        r.register("bytes_read", "Bytes read, per source", m.bytes_read.clone());
        r.register(
            "hits",
            "Matching lines, per rule (silenced ones included)",
            m.hits.clone(),
        );
        r.register(
            "silenced_hits",
            "Matching lines held by a silence or mute window, per rule; each is reported when it ends",
            m.silenced.clone(),
        );
        r.register(
            "messages",
            "Messages, per robot and result (sent: errcode 0, or printed in dry-run; failed: given up on)",
            m.messages.clone(),
        );
        r.register(
            "events",
            "Matching lines accounted for in messages, per robot and result",
            m.events.clone(),
        );
        r.register(
            "dingtalk_errcodes",
            "DingTalk answers with a non-zero errcode, per robot and errcode",
            m.errcodes.clone(),
        );
        r.register(
            "retries",
            "Attempts retried after a retryable failure, per robot",
            m.retries.clone(),
        );
        r.register(
            "pending_alerts",
            "Alerts (rule and group) waiting to be sent, per robot",
            m.pending_alerts.clone(),
        );
        r.register(
            "pending_hits",
            "Matching lines waiting to be sent, per robot",
            m.pending_hits.clone(),
        );
        r.register(
            "robot_paused",
            "1 while a robot is paused after DingTalk throttled it",
            m.paused.clone(),
        );
        r.register(
            "robot_paused_until_timestamp_seconds",
            "When a robot's throttle pause ends (Unix time; 0: not paused)",
            m.paused_until.clone(),
        );
        r.register(
            "robot_failing",
            "1 while a robot fails permanently (bad token or secret, disabled robot)",
            m.failing.clone(),
        );
        r.register(
            "delivery_latency_seconds",
            "From a message's first matching line to DingTalk's errcode 0, per robot",
            m.latency.clone(),
        );
        r.register(
            "config_reloads",
            "Config reloads, per result (applied or refused)",
            m.reloads.clone(),
        );
        r.register(
            "config_last_reload_successful",
            "1 when the config in force is the newest one tried (0: the last reload was refused)",
            m.config_ok.clone(),
        );
        r.register(
            "config_last_reload_success_timestamp_seconds",
            "When the config in force was loaded (Unix time)",
            m.config_loaded_at.clone(),
        );
        r.register(
            "sources_open",
            "1 while the inputs are open and read",
            m.sources_open.clone(),
        );
        r.register(
            "budget_monthly_messages",
            "The organisation's monthly message budget (quota.monthly)",
            m.budget_monthly.clone(),
        );
        r.register(
            "budget_used_messages",
            "Messages counted against the budget this month (Asia/Shanghai), all robots",
            m.budget_used.clone(),
        );
        r.register(
            "budget_allowance_messages",
            "What the pacing allows ordinary rules to have used by now this month",
            m.budget_allowance.clone(),
        );
        r.register(
            "robot_budget_used_messages",
            "Messages counted against the budget this month, per robot",
            m.robot_budget_used.clone(),
        );
        r.register(
            "robot_budget_spent",
            "1 while a robot holds its alerts until the month turns (budget spent or quota error)",
            m.robot_budget_spent.clone(),
        );
        r.register(
            "files_followed",
            "Files followed now (each once, however many paths lead to it)",
            m.files_followed.clone(),
        );
        r.register(
            "checkpoint_lag_bytes",
            "Per followed file: bytes between its checkpoint and its end (read or not, not yet settled)",
            m.checkpoint_lag.clone(),
        );
        r.register(
            "self_alerts",
            "Messages dingtail sent about itself (self_alerts:), per kind",
            m.self_alerts.clone(),
        );
        r.register(
            "fleet_digest_full",
            "1 while the robot's fleet digest stream (coordination:) is at its stream_limit and this instance sends its alerts itself",
            m.digest_full.clone(),
        );
        r.register(
            "coordination_fallback",
            "1 while Redis (coordination:) cannot be reached and this instance sends on its own at fallback_rate",
            m.coordination_fallback.clone(),
        );
        m.config_ok.set(1);
        m.config_loaded_at.set(unix_seconds(SystemTime::now()));
        Metrics { registry, ..m }
    }

    /// Reports the monthly `budget` in the budget gauges, as it stands at each scrape.
    pub fn watch_budget(&self, budget: SharedBudget) {
        *self.budget.lock().unwrap_or_else(|e| e.into_inner()) = Some(budget);
    }

    /// Whether this instance is cut off from its fleet's Redis (see `crate::fleet`).
    pub fn set_coordination_fallback(&self, on: bool) {
        self.coordination_fallback.set(i64::from(on));
    }

    /// Brings the budget gauges up to the ledger.
    fn refresh_budget(&self) {
        let budget = self.budget.lock().unwrap_or_else(|e| e.into_inner());
        let Some(budget) = budget.as_ref() else {
            return;
        };
        let status = budget.status(SystemTime::now());
        let int = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        self.budget_monthly.set(int(status.monthly));
        self.budget_used.set(int(status.used));
        self.budget_allowance.set(int(status.allowance));
        for robot in &status.robots {
            let label = labels(&[("robot", &robot.name)]);
            self.robot_budget_used
                .get_or_create(&label)
                .set(int(robot.used));
            self.robot_budget_spent
                .get_or_create(&label)
                .set(i64::from(robot.spent.is_some()));
        }
    }

    /// Reports the followed files and their checkpoints at each scrape.
    pub fn watch_positions(&self, positions: crate::source::checkpoint::Positions) {
        *self.positions.lock().unwrap_or_else(|e| e.into_inner()) = Some(positions);
    }

    /// Brings the files gauges up to the checkpoint keeper: one series per file followed, its
    /// lag the file's size now (a `stat` of its path; 0 when another file is there now, which
    /// the next scrape shows) minus its checkpoint. Files let go lose their series.
    fn refresh_positions(&self) {
        let positions = self.positions.lock().unwrap_or_else(|e| e.into_inner());
        let Some(positions) = positions.as_ref() else {
            return;
        };
        let now = positions.current();
        self.checkpoint_lag.clear();
        self.files_followed
            .set(i64::try_from(now.len()).unwrap_or(i64::MAX));
        for p in now {
            let size = std::fs::metadata(&p.path)
                .ok()
                .filter(|m| p.is_at_path(m))
                .map_or(p.offset, |m| std::os::unix::fs::MetadataExt::size(&m));
            let lag = size.saturating_sub(p.offset);
            self.checkpoint_lag
                .get_or_create(&labels(&[("file", &p.path)]))
                .set(i64::try_from(lag).unwrap_or(i64::MAX));
        }
    }

    /// Counts a message dingtail sent about itself.
    pub fn record_self_alert(&self, kind: &str) {
        self.self_alerts
            .get_or_create(&labels(&[("kind", kind)]))
            .inc();
    }

    /// Where robots failing permanently are reported from now on.
    pub fn set_trouble(&self, reporter: crate::trouble::Reporter) {
        *self.trouble.lock().unwrap_or_else(|e| e.into_inner()) = reporter;
    }

    /// Lines and bytes read since start, all sources.
    pub fn totals(&self) -> (u64, u64) {
        (
            self.lines_total.load(Ordering::Relaxed),
            self.bytes_total.load(Ordering::Relaxed),
        )
    }

    /// Matching lines since start, all rules.
    pub fn hits_total(&self) -> u64 {
        self.hits_total.load(Ordering::Relaxed)
    }

    /// The rules that matched a line since start, by name.
    pub fn rules_hit(&self) -> Vec<String> {
        let set = self.rules_hit.lock().unwrap_or_else(|e| e.into_inner());
        set.iter().cloned().collect()
    }

    /// The OpenMetrics text of every metric.
    pub fn render(&self) -> String {
        self.refresh_budget();
        self.refresh_positions();
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }

    /// The classic Prometheus text format (0.0.4) of every metric, for scrapers and tools that
    /// do not ask for OpenMetrics (`promtool check metrics` among them). The two differ only in
    /// the names of counters in `# HELP`/`# TYPE` (OpenMetrics leaves off `_total`) and the
    /// closing `# EOF`.
    pub fn render_prometheus(&self) -> String {
        openmetrics_to_prometheus(&self.render())
    }

    /// Counts a matched chunk: its lines and bytes, and its hits per rule (`rules`: names by
    /// rule id).
    pub fn record_batch(&self, batch: &HitBatch, rules: &[String]) {
        let source = labels(&[("source", &batch.source)]);
        self.lines_read.get_or_create(&source).inc_by(batch.lines);
        self.bytes_read.get_or_create(&source).inc_by(batch.bytes);
        self.lines_total.fetch_add(batch.lines, Ordering::Relaxed);
        self.bytes_total.fetch_add(batch.bytes, Ordering::Relaxed);
        self.hits_total
            .fetch_add(batch.hits.len() as u64, Ordering::Relaxed);
        let mut per_rule: Vec<(usize, u64)> = Vec::new();
        for hit in &batch.hits {
            match per_rule.iter_mut().find(|(r, _)| *r == hit.rule) {
                Some((_, n)) => *n += 1,
                None => per_rule.push((hit.rule, 1)),
            }
        }
        if !per_rule.is_empty() {
            let mut hit = self.rules_hit.lock().unwrap_or_else(|e| e.into_inner());
            for (rule, _) in &per_rule {
                if let Some(name) = rules.get(*rule)
                    && !hit.contains(name)
                {
                    hit.insert(name.clone());
                }
            }
        }
        for (rule, n) in per_rule {
            if let Some(name) = rules.get(rule) {
                self.hits
                    .get_or_create(&labels(&[("rule", name)]))
                    .inc_by(n);
            }
        }
    }

    /// Makes every rule's series exist at zero, so dashboards see rules that never fired.
    pub fn declare_rules(&self, rules: &[String]) {
        for name in rules {
            let l = labels(&[("rule", name)]);
            let _ = self.hits.get_or_create(&l);
            let _ = self.silenced.get_or_create(&l);
        }
    }

    /// Counts hits of `rule` held by a silence or mute window.
    pub fn record_silenced(&self, rule: &str, n: u64) {
        self.silenced
            .get_or_create(&labels(&[("rule", rule)]))
            .inc_by(n);
    }

    /// A config reload: applied (`ok`) or refused.
    pub fn record_reload(&self, ok: bool) {
        let result = if ok { "applied" } else { "refused" };
        self.reloads
            .get_or_create(&labels(&[("result", result)]))
            .inc();
        self.config_ok.set(i64::from(ok));
        if ok {
            self.config_loaded_at.set(unix_seconds(SystemTime::now()));
        }
    }

    /// The inputs are open (reading) or closed (end of input, shutdown).
    pub fn set_reading(&self, open: bool) {
        self.reading.store(open, Ordering::Relaxed);
        self.sources_open.set(i64::from(open));
    }

    /// Why dingtail is not ready, or `None` when it is: its inputs are open and no robot fails
    /// permanently.
    pub fn not_ready(&self) -> Option<String> {
        if !self.reading.load(Ordering::Relaxed) {
            return Some("inputs are not open".to_owned());
        }
        let failing = self
            .failing_robots
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if !failing.is_empty() {
            let names: Vec<&str> = failing.iter().map(String::as_str).collect();
            return Some(format!("robot failing permanently: {}", names.join(", ")));
        }
        None
    }
}

/// Rewrites OpenMetrics text into the classic format; see [`Metrics::render_prometheus`].
fn openmetrics_to_prometheus(text: &str) -> String {
    let counters: BTreeSet<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(text.len() + 16 * counters.len());
    for line in text.lines() {
        if line == "# EOF" {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
            counters
                .contains(name)
                .then(|| format!("{prefix}{name}_total {tail}"))
        });
        out.push_str(renamed.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

fn unix_seconds(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::delivery_report::DeliveryReport;

    #[test]
    fn published_reports_only_ever_add_the_difference() {
        let metrics = Arc::new(Metrics::new());
        let mut robot = metrics.robot(Some("ops"));
        let mut report = DeliveryReport {
            messages_sent: 2,
            events_sent: 7,
            ..DeliveryReport::default()
        };
        robot.publish(&report);
        robot.publish(&report);
        report.messages_sent = 3;
        report.events_sent = 9;
        robot.publish(&report);
        let text = metrics.render();
        assert!(
            text.contains("dingtail_messages_total{robot=\"ops\",result=\"sent\"} 3"),
            "{text}"
        );
        assert!(
            text.contains("dingtail_events_total{robot=\"ops\",result=\"sent\"} 9"),
            "{text}"
        );
        assert!(text.contains("dingtail_build_info{version="), "{text}");
        let classic = metrics.render_prometheus();
        assert!(
            classic.contains("# TYPE dingtail_messages_total counter\n"),
            "{classic}"
        );
        assert!(
            classic.contains("# HELP dingtail_messages_total Messages"),
            "{classic}"
        );
        assert!(!classic.contains("# EOF"), "{classic}");
    }

    #[test]
    fn readiness_needs_open_inputs_and_no_failing_robot() {
        let metrics = Arc::new(Metrics::new());
        assert!(metrics.not_ready().is_some());
        metrics.set_reading(true);
        assert_eq!(metrics.not_ready(), None);
        let robot = metrics.robot(Some("ops"));
        robot.set_failing(Some("errcode 310000"));
        assert_eq!(
            metrics.not_ready().as_deref(),
            Some("robot failing permanently: ops")
        );
        robot.set_failing(None);
        assert_eq!(metrics.not_ready(), None);
    }
}
