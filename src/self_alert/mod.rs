//! dingtail about itself (`self_alerts: { robot: NAME }`): it tells a robot when it is in
//! trouble, so that a silent dingtail is never taken for a quiet system.
//!
//! ```text
//! tailer, dispatchers' metrics, reloader ─Trouble─▶ self-alert task ─Notice─▶ aggregator task ─▶ dispatcher
//! budget ledger, heartbeat file ──────────────────▲
//! ```
//!
//! What is told, each at most once per [`MIN_INTERVAL`] per subject (the ones held back are
//! counted and the next message says how many), and then rate-limited like every message by
//! the robot's dispatcher:
//! - a followed file unreadable for `unreadable_for` (5 minutes), and when it is read again;
//! - a robot failing permanently, through *another* robot (the failing one's fallback, else the
//!   first other robot that works), and when it delivers again;
//! - a config reload refused, with its problems (the old config stays in force);
//! - a start after a gap: the state directory's `heartbeat.json`, rewritten every
//!   [`HEARTBEAT_EVERY`] while dingtail runs and at a clean stop, says when it was last alive;
//!   a start more than `restart_gap` later says "down 14:02–14:09", then, once the backlog (the
//!   bytes between the checkpoints and the files' ends at start) is read, how many lines that
//!   took and which rules fired;
//! - the monthly budget passing `budget_low` (80%) of `quota.monthly`, once a month (the month
//!   told is kept in `heartbeat.json`, so a restart does not tell it again).
//!
//! Secrets never appear: the texts are dingtail's own, what DingTalk answered and config
//! problems (which never quote a secret), and every robot's webhook, token and secret is
//! replaced by `***` before anything leaves, in case one slipped in.
//!
//! Edges: the settings are those at start (a reload that changes `self_alerts:` says so in
//! the log); without a state directory (or in `--dry-run` or `--once`) there is no heartbeat and
//! no restart news; messages go out only while the pipeline runs (news at the very end of input
//! are in the log only).

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::mpsc;

use crate::alert::Alert;
use crate::budget::SharedBudget;
use crate::config::{Config, SelfAlerts};
use crate::metrics::Metrics;
use crate::timezone::Zone;
use crate::trouble::Trouble;

mod heartbeat;
mod text;

pub use heartbeat::{HEARTBEAT_FILE, Heartbeat, write_stopped};
pub use text::scrub;
use text::{bytes_text, notice, round, thousands, unix};

/// News about one subject (a path, a robot, reloads, restarts, the budget) at most this often.
pub const MIN_INTERVAL: Duration = Duration::from_secs(600);
/// How often `heartbeat.json` is rewritten while running.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(10);
/// The restart news waits at most this long for the backlog to be read.
pub const BACKLOG_WAIT: Duration = Duration::from_secs(120);
/// Lines of problems a refused reload quotes.
const MAX_PROBLEMS: usize = 10;

/// A message about dingtail itself, for the robot named (resolved by the aggregator task with
/// the config in force).
#[derive(Debug)]
pub struct Notice {
    /// The robot it goes to.
    pub robot: String,
    /// The message, an [`AlertKind::Notice`].
    pub alert: Alert,
}

/// What the task needs to know.
pub struct Setup {
    /// `self_alerts:`.
    pub cfg: SelfAlerts,
    /// Every robot by name, with its fallback's name.
    pub robots: Vec<(String, Option<String>)>,
    /// The zone times are written in.
    pub zone: Zone,
    /// Texts that must never appear in a message (webhooks, tokens, secrets).
    pub secrets: Vec<String>,
    /// The state directory for the heartbeat (`None`: no heartbeat, no restart news).
    pub state_dir: Option<PathBuf>,
    /// Bytes between the checkpoints and the files' ends at start.
    pub backlog_bytes: u64,
    /// The monthly budget (`None` in dry-run).
    pub budget: Option<SharedBudget>,
    /// Lines read and rules hit since start come from here.
    pub metrics: Arc<Metrics>,
}

impl Setup {
    /// The setup for `config` (`None` without `self_alerts:`).
    pub fn for_config(config: &Config, metrics: Arc<Metrics>) -> Option<Setup> {
        let cfg = config.self_alerts.clone()?;
        let robots = config
            .robots
            .iter()
            .map(|r| {
                let fallback = r.fallback.map(|f| config.robots[f].name.clone());
                (r.name.clone(), fallback)
            })
            .collect();
        let mut secrets = Vec::new();
        for r in &config.robots {
            let webhook = r.endpoint.webhook.expose();
            secrets.push(webhook.to_owned());
            if let Some((_, query)) = webhook.split_once('?') {
                for pair in query.split('&') {
                    if let Some(v) = pair.split_once('=').map(|(_, v)| v) {
                        secrets.push(v.to_owned());
                    }
                }
            }
            if let Some(s) = &r.endpoint.secret {
                secrets.push(s.expose().to_owned());
            }
            if let Some(p) = &r.endpoint.proxy {
                secrets.push(p.expose().to_owned());
            }
        }
        // Longest first, so a webhook is replaced whole before its token is looked for.
        secrets.retain(|s| s.len() >= 4);
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        Some(Setup {
            cfg,
            robots,
            zone: config.timezone,
            secrets,
            state_dir: None,
            backlog_bytes: 0,
            budget: None,
            metrics,
        })
    }
}

/// The task's state: what was told and when.
struct Teller {
    setup: Setup,
    notices_tx: mpsc::Sender<Notice>,
    /// Per subject: when last told, and how many were held back since.
    told: HashMap<String, (Instant, u64)>,
    /// Robots failing now.
    failing: BTreeSet<String>,
    heartbeat: Heartbeat,
    /// A restart to tell about: down from, down to.
    restart: Option<(SystemTime, SystemTime, bool)>,
    started: Instant,
}

/// Runs until the aggregator stops taking notices (end of input).
pub async fn run(
    setup: Setup,
    mut trouble_rx: mpsc::UnboundedReceiver<Trouble>,
    notices_tx: mpsc::Sender<Notice>,
) {
    let now = SystemTime::now();
    let last = setup.state_dir.as_deref().and_then(Heartbeat::read);
    let restart = last.as_ref().and_then(|h| {
        let (at, clean) = match h.stopped_at {
            Some(s) => (s, true),
            None => (h.alive_at, false),
        };
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(at);
        let gap = now.duration_since(at).unwrap_or_default();
        (gap >= setup.cfg.restart_gap).then_some((at, now, clean))
    });
    let mut t = Teller {
        heartbeat: Heartbeat {
            alive_at: unix(now),
            stopped_at: None,
            budget_told: last.and_then(|h| h.budget_told),
        },
        setup,
        notices_tx,
        told: HashMap::new(),
        failing: BTreeSet::new(),
        restart,
        started: Instant::now(),
    };
    t.beat();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_beat = Instant::now();
    let mut troubles_open = true;
    // Only to learn when the aggregator is gone (a sender does not keep a channel open).
    let watch_tx = t.notices_tx.clone();
    loop {
        tokio::select! {
            () = watch_tx.closed() => return,
            trouble = trouble_rx.recv(), if troubles_open => match trouble {
                Some(trouble) => t.trouble(trouble).await,
                None => troubles_open = false,
            },
            _ = tick.tick() => {
                if last_beat.elapsed() >= HEARTBEAT_EVERY {
                    t.beat();
                    last_beat = Instant::now();
                }
                // The ledger is in memory: looking every second costs nothing.
                t.budget().await;
                t.restarted().await;
            }
        }
    }
}

impl Teller {
    /// Rewrites the heartbeat.
    fn beat(&mut self) {
        let Some(dir) = &self.setup.state_dir else {
            return;
        };
        self.heartbeat.alive_at = unix(SystemTime::now());
        if let Err(e) = self.heartbeat.write(dir) {
            tracing::warn!(dir = %dir.display(), "cannot write {HEARTBEAT_FILE}: {e}");
        }
    }

    async fn trouble(&mut self, trouble: Trouble) {
        match trouble {
            Trouble::Unreadable {
                path,
                problem,
                since,
            } => {
                let text = vec![
                    format!(
                        "cannot read {path} for {}: {problem}",
                        humantime::format_duration(round(since))
                    ),
                    "still retrying it; its lines are not watched meanwhile".to_owned(),
                ];
                self.tell(
                    "unreadable",
                    &format!("path {path}"),
                    "file unreadable",
                    text,
                    None,
                )
                .await;
            }
            Trouble::Readable { path } => {
                let text = vec![format!("{path} is read again")];
                self.tell(
                    "readable",
                    &format!("path {path} ok"),
                    "file readable again",
                    text,
                    None,
                )
                .await;
            }
            Trouble::RobotFailing { robot, reason } => {
                self.failing.insert(robot.clone());
                let text = vec![
                    format!(
                        "robot {robot} fails permanently: {}",
                        reason
                            .strip_prefix(&format!("robot {robot}: "))
                            .unwrap_or(&reason)
                    ),
                    format!(
                        "its alerts are held and retried; fix its webhook, secret or keyword (a reload applies it)"
                    ),
                ];
                self.tell(
                    "robot_failing",
                    &format!("robot {robot}"),
                    "robot failing",
                    text,
                    Some(&robot),
                )
                .await;
            }
            Trouble::RobotWorks { robot } => {
                self.failing.remove(&robot);
                let text = vec![format!("robot {robot} delivers again")];
                self.tell(
                    "robot_works",
                    &format!("robot {robot} ok"),
                    "robot delivers again",
                    text,
                    Some(&robot),
                )
                .await;
            }
            Trouble::FleetFallback => {
                let text = vec![
                    "coordination: Redis cannot be reached; this instance sends on its own at `fallback_rate`".to_owned(),
                    "its alerts are kept and sent, its counts added to Redis's ledger when it is back".to_owned(),
                ];
                self.tell("fleet_fallback", "fleet", "fleet fallback", text, None)
                    .await;
            }
            Trouble::FleetRejoined => {
                let text = vec![
                    "coordination: Redis is back; this instance rejoined the fleet".to_owned(),
                ];
                self.tell("fleet_rejoined", "fleet ok", "fleet rejoined", text, None)
                    .await;
            }
            Trouble::FleetDigestFull { robot } => {
                let text = vec![
                    format!("coordination: robot {robot}'s fleet digest stream is full: its sender cannot post (robot blocked or failing, DingTalk down, or budget spent)"),
                    "this instance keeps its alerts and sends them itself, through the shared window and budget".to_owned(),
                ];
                self.tell(
                    "fleet_digest_full",
                    &format!("digest {robot}"),
                    "fleet digest full",
                    text,
                    None,
                )
                .await;
            }
            Trouble::FleetDigestRoom { robot } => {
                let text = vec![format!(
                    "coordination: robot {robot}'s fleet digest stream has room again"
                )];
                self.tell(
                    "fleet_digest_room",
                    &format!("digest {robot} ok"),
                    "fleet digest has room",
                    text,
                    None,
                )
                .await;
            }
            Trouble::ReloadRefused { why, problems } => {
                let mut text = vec![format!(
                    "config reload ({why}) refused: still running on the config loaded before"
                )];
                text.extend(problems.iter().take(MAX_PROBLEMS).cloned());
                if problems.len() > MAX_PROBLEMS {
                    text.push(format!("… {} more problems", problems.len() - MAX_PROBLEMS));
                }
                self.tell(
                    "reload_refused",
                    "reload",
                    "config reload refused",
                    text,
                    None,
                )
                .await;
            }
        }
    }

    /// The restart news, once the backlog is read (or [`BACKLOG_WAIT`] has passed).
    async fn restarted(&mut self) {
        let Some((down, up, clean)) = self.restart else {
            return;
        };
        let (lines, bytes) = self.setup.metrics.totals();
        let read_all = bytes >= self.setup.backlog_bytes;
        if !read_all && self.started.elapsed() < BACKLOG_WAIT {
            return;
        }
        self.restart = None;
        let zone = self.setup.zone;
        let same_day = zone.naive(down).date() == zone.naive(up).date();
        let (a, b) = if same_day {
            (
                zone.format(down, "%Y-%m-%d %H:%M:%S"),
                zone.format(up, "%H:%M:%S"),
            )
        } else {
            (
                zone.format(down, "%Y-%m-%d %H:%M:%S"),
                zone.format(up, "%Y-%m-%d %H:%M:%S"),
            )
        };
        let gap = up.duration_since(down).unwrap_or_default();
        let fired = self.setup.metrics.rules_hit();
        let mut text = vec![format!(
            "down {a}–{b} ({}{})",
            humantime::format_duration(round(gap)),
            if clean {
                ""
            } else {
                "; not a clean stop: last seen alive then"
            }
        )];
        let rules = if fired.is_empty() {
            "no rule fired".to_owned()
        } else {
            format!(
                "{} rule{} fired: {}",
                fired.len(),
                if fired.len() == 1 { "" } else { "s" },
                fired.join(", ")
            )
        };
        text.push(if read_all {
            format!(
                "{} lines of backlog read ({}), {rules}",
                thousands(lines),
                bytes_text(self.setup.backlog_bytes)
            )
        } else {
            format!(
                "backlog not read yet after {}: {} of {} read, {} lines, {rules} so far",
                humantime::format_duration(BACKLOG_WAIT),
                bytes_text(bytes),
                bytes_text(self.setup.backlog_bytes),
                thousands(lines)
            )
        });
        self.tell("restart", "restart", "restarted after a gap", text, None)
            .await;
    }

    /// The budget news, once a month.
    async fn budget(&mut self) {
        let Some(budget) = &self.setup.budget else {
            return;
        };
        let s = budget.status(SystemTime::now());
        let pct = u64::from(self.setup.cfg.budget_low_percent);
        if s.monthly == 0 || s.used * 100 < pct * s.monthly {
            return;
        }
        if self.heartbeat.budget_told.as_deref() == Some(s.month.as_str()) {
            return;
        }
        self.heartbeat.budget_told = Some(s.month.clone());
        self.beat();
        let text = vec![
            format!(
                "monthly budget running low: {} of {} messages used in {} ({}%)",
                thousands(s.used),
                thousands(s.monthly),
                s.month,
                s.used * 100 / s.monthly
            ),
            format!(
                "{} kept for critical rules; ordinary rules are paced to what is left",
                thousands(s.reserve)
            ),
        ];
        self.tell(
            "budget_low",
            "budget",
            "monthly budget running low",
            text,
            None,
        )
        .await;
    }

    /// Sends one notice about `subject` unless one went out within [`MIN_INTERVAL`] (then it
    /// is counted, and the next one says so). `about` is a robot it must not go through.
    async fn tell(
        &mut self,
        kind: &str,
        subject: &str,
        title: &str,
        mut text: Vec<String>,
        about: Option<&str>,
    ) {
        let now = Instant::now();
        for line in &text {
            tracing::warn!(kind, "self-alert: {line}");
        }
        if let Some((at, held)) = self.told.get_mut(subject)
            && now.duration_since(*at) < MIN_INTERVAL
        {
            *held += 1;
            return;
        }
        let held = self
            .told
            .insert(subject.to_owned(), (now, 0))
            .map_or(0, |(_, n)| n);
        if held > 0 {
            text.push(format!(
                "({held} more like this within {} were not sent)",
                humantime::format_duration(MIN_INTERVAL)
            ));
        }
        let Some(robot) = self.target(about) else {
            tracing::warn!(kind, "self-alert: no working robot to tell");
            return;
        };
        let alert = notice(title, &text, &self.setup.secrets);
        self.setup.metrics.record_self_alert(kind);
        let _ = self.notices_tx.send(Notice { robot, alert }).await;
    }

    /// The robot to tell: `self_alerts.robot`, unless the news is about it or it fails; then its
    /// fallback, else the first other robot that works.
    fn target(&self, about: Option<&str>) -> Option<String> {
        let bad = |r: &str| about == Some(r) || self.failing.contains(r);
        let main = &self.setup.cfg.robot;
        if !bad(main) {
            return Some(main.clone());
        }
        let fallback = self
            .setup
            .robots
            .iter()
            .find(|(n, _)| n == main)
            .and_then(|(_, f)| f.clone());
        fallback
            .into_iter()
            .chain(self.setup.robots.iter().map(|(n, _)| n.clone()))
            .find(|r| !bad(r))
    }
}
