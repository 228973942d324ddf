//! The tailer thread's wake-up inbox: waits for a message or a timeout, the timeout measured
//! relative to the moment of waiting.
//!
//! Why not `std::sync::mpsc::Receiver::recv_timeout`: on Linux std parks the thread with an
//! *absolute* `CLOCK_MONOTONIC` deadline handed straight to the kernel (`FUTEX_WAIT_BITSET`),
//! computed from a user-space reading of the clock. Where that reading is shifted — libfaketime
//! fakes `CLOCK_MONOTONIC` as well as the wall clock unless `FAKETIME_DONT_FAKE_MONOTONIC=1`, so
//! under `faketime '2031-07-15 12:00:00'` it reads ~1.9e9 s against the kernel's uptime — the
//! deadline lies decades ahead and the wait never times out: the multi-line timeout and the
//! wait before a deleted file is let go never fire. Here the wait is a small current-thread tokio
//! runtime with its I/O driver on, whose park is `epoll_wait` with a relative timeout, so the
//! tailer's timers run at any clock offset. (Without the I/O driver tokio would park on a std
//! condvar, with the same absolute deadline.)

use std::io;
use std::time::Duration;

use tokio::sync::mpsc;

/// The sending side: any thread, no runtime needed.
pub(crate) type Outbox<T> = mpsc::UnboundedSender<T>;

/// The senders are all gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Disconnected;

/// The receiving side, owned by one thread that is not inside a tokio runtime.
pub(crate) struct Inbox<T> {
    rx: mpsc::UnboundedReceiver<T>,
    rt: tokio::runtime::Runtime,
}

/// A new inbox and its first sender.
pub(crate) fn inbox<T>() -> io::Result<(Outbox<T>, Inbox<T>)> {
    let (tx, rx) = mpsc::unbounded_channel();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()?;
    Ok((tx, Inbox { rx, rt }))
}

impl<T> Inbox<T> {
    /// The next message, or `None` once `wait` has passed without one.
    ///
    /// Panics if called from inside a tokio runtime (it blocks the thread).
    pub(crate) fn recv_for(&mut self, wait: Duration) -> Result<Option<T>, Disconnected> {
        let rx = &mut self.rx;
        // The timer is made inside the runtime: it needs its time driver.
        match self
            .rt
            .block_on(async { tokio::time::timeout(wait, rx.recv()).await })
        {
            Ok(Some(m)) => Ok(Some(m)),
            Ok(None) => Err(Disconnected),
            Err(_elapsed) => Ok(None),
        }
    }

    /// The messages already waiting, without blocking.
    pub(crate) fn try_iter(&mut self) -> impl Iterator<Item = T> + '_ {
        std::iter::from_fn(|| self.rx.try_recv().ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_waiting_is_received_and_an_empty_inbox_times_out() {
        let (tx, mut rx) = inbox::<u32>().unwrap();
        tx.send(7).unwrap();
        tx.send(8).unwrap();
        assert_eq!(rx.recv_for(Duration::from_secs(3600)), Ok(Some(7)));
        assert_eq!(rx.try_iter().collect::<Vec<_>>(), vec![8]);
        assert_eq!(rx.recv_for(Duration::from_millis(1)), Ok(None));
        drop(tx);
        assert_eq!(rx.recv_for(Duration::from_secs(3600)), Err(Disconnected));
    }

    #[test]
    fn a_message_sent_from_another_thread_wakes_the_wait() {
        let (tx, mut rx) = inbox::<u32>().unwrap();
        let t = std::thread::spawn(move || tx.send(1).unwrap());
        assert_eq!(rx.recv_for(Duration::from_secs(3600)), Ok(Some(1)));
        t.join().unwrap();
    }
}
