//! The keeper task: applies what the tailer, the aggregator and the dispatchers say to the
//! [`Keeper`] and writes the state file at most once a second, at once when a file is taken up
//! or left, and once more at the end.

use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::{Keeper, PositionUpdate, Store};
use crate::source::Mark;

/// How often the state file is rewritten while things move.
const WRITE_EVERY: Duration = Duration::from_secs(1);

/// Runs the keeper until `finish_rx` fires (or is dropped), then applies what is queued, writes
/// once more and returns. Without a store (`--dry-run`), it keeps books and writes nothing.
pub async fn keep(
    store: Option<Store>,
    mut keeper: Keeper,
    mut updates_rx: mpsc::UnboundedReceiver<PositionUpdate>,
    mut settled_rx: mpsc::UnboundedReceiver<Vec<Mark>>,
    mut finish_rx: oneshot::Receiver<()>,
) {
    let mut tick = tokio::time::interval(WRITE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut updates_open = true;
    let mut settled_open = true;
    loop {
        tokio::select! {
            e = updates_rx.recv(), if updates_open => match e {
                Some(e) => {
                    // A file taken up or left is written at once, not within the second: a
                    // crash right after a rotation must find the new file's identity.
                    let structural = matches!(e, PositionUpdate::Opened { .. } | PositionUpdate::Closed { .. });
                    keeper.apply(e);
                    if structural {
                        while let Ok(e) = updates_rx.try_recv() {
                            keeper.apply(e);
                        }
                        save(&store, &mut keeper).await;
                    }
                }
                None => updates_open = false,
            },
            s = settled_rx.recv(), if settled_open => match s {
                Some(s) => keeper.settled(&s),
                None => settled_open = false,
            },
            _ = tick.tick() => if keeper.dirty { save(&store, &mut keeper).await },
            _ = &mut finish_rx => break,
        }
    }
    // Registrations before releases, so nothing counts as settled before it was held.
    while let Ok(e) = updates_rx.try_recv() {
        keeper.apply(e);
    }
    while let Ok(s) = settled_rx.try_recv() {
        keeper.settled(&s);
    }
    keeper.dirty = true;
    save(&store, &mut keeper).await;
}

async fn save(store: &Option<Store>, keeper: &mut Keeper) {
    keeper.publish();
    let Some(store) = store.clone() else {
        keeper.dirty = false;
        return;
    };
    keeper.dirty = false;
    let entries = keeper.entries();
    let result = tokio::task::spawn_blocking(move || store.save(entries)).await;
    match result {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            keeper.dirty = true;
            tracing::warn!("cannot write the checkpoint file: {e}; retrying");
        }
        Err(e) => tracing::error!("checkpoint writer panicked: {e}"),
    }
}
