//! The writer task of a state file ([`StateWriter`]): saves off the async threads, in order,
//! one save in flight.
//!
//! The owner offers content periodically ([`StateWriter::offer`]); an offer that finds the
//! writer busy is dropped, because the next one carries everything. At the stop
//! [`StateWriter::finish`] sends the final content and waits for it to be written, so the
//! caller can tell whether what it carries over is safe. A failing disk is one warning for a run
//! of failed periodic saves (again after a save succeeds), never an error: the final save's
//! outcome goes to the caller instead.

use std::io;

use tokio::sync::{mpsc, oneshot};

use super::json_file::{JsonFile, JsonState};

/// A request to the writer task.
#[derive(Debug)]
struct Save<T> {
    content: T,
    /// Told the outcome (the final save at a stop waits for it).
    done: Option<oneshot::Sender<io::Result<()>>>,
}

/// The owner's handle on the writer task of one [`JsonFile`].
#[derive(Debug)]
pub struct StateWriter<T> {
    tx: mpsc::Sender<Save<T>>,
    task: tokio::task::JoinHandle<()>,
}

impl<T: JsonState> StateWriter<T> {
    /// Starts the writer task for `file`.
    pub fn spawn(file: JsonFile<T>) -> StateWriter<T> {
        // One in flight: an offer that finds the writer busy is skipped.
        let (tx, rx) = mpsc::channel(1);
        let task = tokio::spawn(write_all(file, rx));
        StateWriter { tx, task }
    }

    /// Offers content to write; false when the writer is busy (nothing is queued then).
    pub fn offer(&self, content: T) -> bool {
        self.tx
            .try_send(Save {
                content,
                done: None,
            })
            .is_ok()
    }

    /// Writes the final content and waits for the writer to finish.
    pub async fn finish(self, content: T) -> io::Result<()> {
        let (done_tx, done_rx) = oneshot::channel();
        let sent = self
            .tx
            .send(Save {
                content,
                done: Some(done_tx),
            })
            .await;
        drop(self.tx);
        let stopped = || io::Error::other(format!("{} writer stopped", T::WHAT));
        let result = match sent {
            Ok(()) => done_rx.await.unwrap_or_else(|_| Err(stopped())),
            Err(_) => Err(stopped()),
        };
        let _ = self.task.await;
        result
    }
}

/// The writer task: writes what it is given, in order, skipping a periodic save
/// [`JsonState::UNCHANGED`] calls unchanged against the last one written.
async fn write_all<T: JsonState>(file: JsonFile<T>, mut rx: mpsc::Receiver<Save<T>>) {
    let mut last: Option<T> = None;
    let mut warned = false;
    while let Some(Save { content, done }) = rx.recv().await {
        if let (Some(unchanged), Some(last)) = (T::UNCHANGED, &last)
            && done.is_none()
            && unchanged(&content, last)
        {
            continue;
        }
        let file2 = file.clone();
        // The content goes to the blocking thread and comes back: no copy for `last`.
        let (content, result) = match tokio::task::spawn_blocking(move || {
            let result = file2.save(&content);
            (content, result)
        })
        .await
        {
            Ok((content, result)) => (Some(content), result),
            Err(e) => (None, Err(io::Error::other(e.to_string()))),
        };
        match &result {
            Ok(()) => {
                if T::UNCHANGED.is_some() {
                    last = content;
                }
                warned = false;
            }
            Err(e) if !warned && done.is_none() => {
                warned = true;
                tracing::warn!(
                    "cannot write {} {}: {e}; retrying",
                    T::WHAT,
                    file.path().display()
                );
            }
            Err(_) => {}
        }
        if let Some(done) = done {
            let _ = done.send(result);
        }
    }
}
