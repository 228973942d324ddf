//! The aggregator task: hits in, alerts out to each robot's dispatcher, on time (windows,
//! cooldowns, quiet hours), through silences and mute windows, telling the checkpoint keeper
//! what each chunk's alerts hold.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};

use super::dispatchers::Routes;
use crate::aggregate::{Aggregator, Routed};
use crate::config::{Config, RobotId};
use crate::dispatch::DeliveryReport;
use crate::hush::Hush;
use crate::reload::{Fleet, Matched};
use crate::self_alert::Notice;
use crate::source::Mark;
use crate::source::checkpoint::PositionUpdate;
use crate::state::alert_state::{AlertSaver, SAVE_EVERY};

/// The aggregator task and what it links: the matcher thread before it, the dispatchers after
/// it, and beside the pipeline the checkpoint keeper, the self-alert task and the alert state.
pub(super) struct AggregatorTask {
    /// The state machine (restored from the alert state when there was one).
    pub(super) agg: Aggregator,
    /// `new_patterns:`: sifts its hits down to new templates before the aggregator sees them.
    pub(super) new_patterns: super::new_patterns::NewPatterns,
    /// Matched chunks, and reloads, from the matcher thread.
    pub(super) hit_rx: mpsc::Receiver<Matched>,
    /// Each robot's dispatcher.
    pub(super) routes: Routes,
    /// The dispatchers by robot name, which a reload moves to the new config's robots.
    pub(super) fleet: Fleet,
    /// Silences, mute windows and quiet hours.
    pub(super) hush: Hush,
    /// The checkpoint keeper, when files are followed.
    pub(super) progress_tx: Option<mpsc::UnboundedSender<PositionUpdate>>,
    /// dingtail's own news from the self-alert task (with `self_alerts:`).
    pub(super) notices_rx: Option<mpsc::Receiver<Notice>>,
    /// The robots by `RobotId` ([`robot_names`]): a notice names its robot.
    pub(super) robots: Vec<String>,
    /// Writes the alert state, when there is a state directory.
    pub(super) saver: Option<AlertSaver>,
}

/// What the aggregator task hands back when its input has ended.
pub(super) struct AggregatorEnd {
    /// Hits held below a threshold at the end, per rule.
    pub(super) held_below_threshold: Vec<(String, u64)>,
    /// The dispatchers reloads started, to be awaited with the others.
    pub(super) added: Vec<tokio::task::JoinHandle<DeliveryReport>>,
    /// Alerts silenced, per rule.
    pub(super) silenced: Vec<(String, u64)>,
    /// Hits carried to the next run in the alert state, per rule.
    pub(super) kept: Vec<(String, u64)>,
}

/// The aggregator task: counts hits, closes windows on time, routes alerts to dispatchers; on end
/// of input closes every window and lets the dispatchers finish.
///
/// With a `saver` it offers a snapshot of the aggregator every `SAVE_EVERY` and writes a last
/// one at the end; when that last write fails the hits it would carry stay held, so the next run
/// reads them again.
///
/// For chunks of followed files it tells the checkpoint keeper (`progress_tx`) that the chunk is
/// counted and how many alerts hold it, before any of those alerts can be routed.
pub(super) async fn aggregate(task: AggregatorTask) -> AggregatorEnd {
    let AggregatorTask {
        mut agg,
        mut new_patterns,
        mut hit_rx,
        mut routes,
        mut fleet,
        mut hush,
        progress_tx,
        mut notices_rx,
        mut robots,
        saver,
    } = task;
    let mut save_tick = tokio::time::interval(SAVE_EVERY);
    save_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        // Quiet hours ending is a deadline too (on the wall clock).
        let quiet_end = hush
            .next_deadline()
            .map(|t| Instant::now() + t.duration_since(SystemTime::now()).unwrap_or_default());
        let deadline = [agg.next_deadline(), quiet_end].into_iter().flatten().min();
        let far = Instant::now() + Duration::from_secs(86_400 * 365);
        tokio::select! {
            Some(notice) = next_notice(&mut notices_rx) => {
                // dingtail's own news: straight to its robot (by name, in the config in force).
                let robot = robots.iter().position(|r| *r == notice.robot);
                if robot.is_some() || robots.is_empty() {
                    let routed = Routed {
                        alert: notice.alert,
                        robot,
                        holds: Vec::new(),
                    };
                    route(vec![routed], &routes).await;
                }
            }
            batch = hit_rx.recv() => match batch {
                Some(Matched::Batch(mut b)) => {
                    let now = Instant::now();
                    // `new_patterns:` hits stay only for new templates (see crate::new_pattern).
                    new_patterns.sift(&mut b, now);
                    let alerts = agg.add(&b, now);
                    // Registered before any alert holding this chunk can reach a dispatcher.
                    report_progress(&mut agg, &progress_tx, b.mark.map(|m| (m, b.end_offset)));
                    let alerts = hushed(&mut hush, alerts, &progress_tx, false);
                    route(alerts, &routes).await;
                }
                Some(Matched::Reload(config)) => {
                    // Rules that are gone deliver what they hold, by the old routes.
                    let alerts = agg.retire(&config.rules);
                    report_progress(&mut agg, &progress_tx, None);
                    let alerts = hushed(&mut hush, alerts, &progress_tx, false);
                    route(alerts, &routes).await;
                    match fleet.apply(&config) {
                        Ok(new_routes) => routes = new_routes,
                        Err(e) => tracing::error!("robots not reloaded, keeping the old ones: {e:#}"),
                    }
                    agg.reconfigure(&config.rules, Instant::now());
                    new_patterns.reconfigure(&config);
                    robots = robot_names(&config);
                    hush.reconfigure(config.mutes.clone(), config.quiet_hours.clone(), config.timezone);
                }
                None => break,
            },
            () = sleep_until(deadline.unwrap_or(far)), if deadline.is_some() => {
                let alerts = hushed(&mut hush, agg.expire(Instant::now()), &progress_tx, false);
                report_progress(&mut agg, &progress_tx, None);
                route(alerts, &routes).await;
            }
            _ = save_tick.tick(), if saver.is_some() || new_patterns.saves() => {
                if let Some(s) = &saver {
                    s.offer(agg.snapshot(Instant::now(), SystemTime::now()));
                }
                new_patterns.offer();
            }
        }
    }
    let alerts = agg.flush(Instant::now());
    new_patterns.finish().await;
    if let Some(saver) = saver {
        match saver
            .finish(agg.snapshot(Instant::now(), SystemTime::now()))
            .await
        {
            Ok(()) => agg.release_carried(),
            // The hits it would carry stay held: the next run reads them again.
            Err(e) => tracing::error!(
                "cannot save the alert state: {e}; cooldowns and open alerts are forgotten, hits not sent are read again by the next run"
            ),
        }
    }
    report_progress(&mut agg, &progress_tx, None);
    let alerts = hushed(&mut hush, alerts, &progress_tx, true);
    route(alerts, &routes).await;
    let held = agg
        .rule_names()
        .iter()
        .map(|n| n.to_string())
        .zip(agg.held_below_threshold().iter().copied())
        .filter(|(_, n)| *n > 0)
        .collect();
    let kept = agg
        .rule_names()
        .iter()
        .map(|n| n.to_string())
        .zip(agg.kept_for_next_run().iter().copied())
        .filter(|(_, n)| *n > 0)
        .collect();
    AggregatorEnd {
        held_below_threshold: held,
        added: fleet.finish(),
        silenced: hush.silenced(),
        kept,
    }
}

/// The next notice of the self-alert task (never, without one).
async fn next_notice(rx: &mut Option<mpsc::Receiver<Notice>>) -> Option<Notice> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// The names of the config's robots, by `RobotId`: a notice names its robot.
pub(super) fn robot_names(config: &Config) -> Vec<String> {
    config.robots.iter().map(|r| r.name.clone()).collect()
}

/// Passes alerts through silences, mute windows and quiet hours (see `hush.rs`): returns those
/// to send now, with those whose quiet hours ended (all of them at end of input, `all`); the
/// holds of silenced alerts are released.
fn hushed(
    hush: &mut Hush,
    alerts: Vec<Routed>,
    progress_tx: &Option<mpsc::UnboundedSender<PositionUpdate>>,
    all: bool,
) -> Vec<Routed> {
    let now = SystemTime::now();
    let (mut send, released) = hush.filter(alerts, now);
    if let Some(tx) = progress_tx
        && !released.is_empty()
    {
        let _ = tx.send(PositionUpdate::Released(released));
    }
    send.extend(hush.due(now, all));
    send
}

/// Tells the checkpoint keeper about a counted chunk (`chunk`: its mark and end) and the holds
/// the aggregator took or dropped meanwhile.
fn report_progress(
    agg: &mut Aggregator,
    progress_tx: &Option<mpsc::UnboundedSender<PositionUpdate>>,
    chunk: Option<(Mark, u64)>,
) {
    let moved = agg.take_moved_holds();
    let (holds, released) = agg.take_holds();
    let Some(tx) = progress_tx else {
        return;
    };
    if !moved.is_empty() {
        let _ = tx.send(PositionUpdate::Held(moved));
    }
    if let Some((mark, end)) = chunk {
        let _ = tx.send(PositionUpdate::Progress { mark, end, holds });
    }
    if !released.is_empty() {
        let _ = tx.send(PositionUpdate::Released(released));
    }
}

/// Sends alerts to their robots' dispatchers, one batch per robot, so alerts closed together
/// can be merged into one message.
async fn route(alerts: Vec<Routed>, routes: &Routes) {
    let mut by_robot: HashMap<Option<RobotId>, Vec<Routed>> = HashMap::new();
    for a in alerts {
        by_robot.entry(a.robot).or_default().push(a);
    }
    for (robot, alerts) in by_robot {
        let Some(tx) = routes.get(&robot) else {
            tracing::error!(?robot, "no dispatcher for robot (a dingtail bug)");
            continue;
        };
        if tx.send(alerts).await.is_err() {
            tracing::error!(?robot, "dispatcher stopped early (a dingtail bug)");
        }
    }
}
