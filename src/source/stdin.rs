//! Standard input as a source: whole-line (or whole-event) chunks, through the same
//! [`EventReader`] as every other source.
//!
//! Two threads rather than a task: reading stdin blocks, and dedicated threads keep the reads
//! large (256 KiB) and off the async workers. The `stdin` thread only reads (and tees); the
//! `stdin-events` thread frames what it reads, gathers `multiline` events and sends chunks. They
//! are apart so that a multi-line event still ends `multiline.timeout` after its last line while
//! the read waits for more input (a stack trace written by `tail -f app.log | dingtail run` is
//! sent without waiting for the next line). Without `multiline` nothing ever times out and the
//! second thread only frames. The reads travel in an `Inbox` (`source::inbox`), whose timed
//! wait works at any clock offset (a std `recv_timeout` never times out under faketime), and at
//! most `BUFFERS` (3) read buffers exist: when all are in flight the `stdin` thread waits for one
//! to come back, so memory stays bounded however fast the input comes.
//!
//! End of input finishes the last partial line and the pending event, and closes the channel,
//! which is how the rest of the pipeline learns the input is over. If the receiver is gone
//! (shutdown), the threads stop at their next read.

use std::io::{self, Read, Write};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::thread::JoinHandle;
use std::time::{Instant, SystemTime};

use tokio::sync::mpsc;

use super::inbox::{Disconnected, Inbox, Outbox, inbox};
use super::multiline::Multiline;
use super::{Chunk, EventBlock, EventReader};

/// Bytes per read.
pub const BLOCK: usize = 256 * 1024;

/// Read buffers at most: reads on their way from the `stdin` thread to the `stdin-events`
/// thread, and the one being read into; they go back to be read into again, and the `stdin`
/// thread waits for one when all are in flight (so memory stays bounded however fast the
/// input comes).
const BUFFERS: usize = 3;

/// How long the `stdin-events` thread waits for a read when no event is pending (it then
/// simply waits again).
const IDLE_WAIT: std::time::Duration = std::time::Duration::from_secs(3600);

/// What the stdin reader saw.
#[derive(Debug, Clone, Copy, Default)]
pub struct StdinStats {
    /// Bytes read.
    pub bytes: u64,
    /// Lines cut because they were longer than the limit.
    pub cut_lines: u64,
}

/// Starts the reader threads; `multiline` gathers lines into events (`stdin.multiline`). With
/// `tee`, every block is copied unchanged to stdout before it is matched, so dingtail can sit in
/// the middle of a pipe; if stdout goes away, teeing stops with a warning and reading goes on.
/// The handle is the `stdin-events` thread's: it ends after the `stdin` thread.
pub fn spawn(
    chunk_tx: mpsc::Sender<Chunk>,
    max_line: usize,
    multiline: Option<Multiline>,
    tee: bool,
) -> JoinHandle<io::Result<StdinStats>> {
    std::thread::Builder::new()
        .name("stdin-events".into())
        .spawn(move || {
            let reader = EventReader::new(max_line, multiline.as_ref());
            read_all(io::stdin(), chunk_tx, reader, tee)
        })
        .expect("spawn the stdin-events thread")
}

/// Reads `input` to its end on a thread of its own and sends its events as chunks. When nobody
/// takes chunks any more, the reading thread is left behind: a shutdown must not wait for a
/// read that may never return.
fn read_all(
    input: impl Read + Send + 'static,
    chunk_tx: mpsc::Sender<Chunk>,
    reader: EventReader,
    tee: bool,
) -> io::Result<StdinStats> {
    // The reads arrive in an `Inbox`: its timed wait works at any clock offset (a std
    // `recv_timeout` never times out under faketime; see `inbox`).
    let (read_tx, read_rx) = inbox()?;
    let (spare_tx, spare_rx) = std::sync::mpsc::channel();
    let reading = std::thread::Builder::new()
        .name("stdin".into())
        .spawn(move || read_blocks(input, read_tx, spare_rx, tee))
        .expect("spawn the stdin thread");
    let (stats, input_ended) = gather(read_rx, spare_tx, chunk_tx, reader);
    if input_ended {
        reading
            .join()
            .map_err(|_| io::Error::other("the stdin thread panicked"))??;
    }
    Ok(stats)
}

/// The `stdin` thread: reads blocks (into spare buffers when there are) and hands them on.
fn read_blocks(
    mut input: impl Read,
    read_tx: Outbox<(Vec<u8>, usize)>,
    spare_rx: Receiver<Vec<u8>>,
    mut tee: bool,
) -> io::Result<()> {
    let mut stdout = io::stdout();
    let mut buffers = 0;
    loop {
        let mut buf = match spare_rx.try_recv() {
            Ok(b) => b,
            Err(TryRecvError::Empty) if buffers < BUFFERS => {
                buffers += 1;
                vec![0u8; BLOCK]
            }
            // every buffer is in flight: wait for one to come back
            Err(TryRecvError::Empty) => match spare_rx.recv() {
                Ok(b) => b,
                Err(_) => return Ok(()),
            },
            // the `stdin-events` thread is gone: nobody takes the reads any more
            Err(TryRecvError::Disconnected) => return Ok(()),
        };
        let n = match input.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if tee && let Err(e) = stdout.write_all(&buf[..n]).and_then(|()| stdout.flush()) {
            tracing::warn!("stdout closed ({e}); --tee stops copying, matching goes on");
            tee = false;
        }
        if read_tx.send((buf, n)).is_err() {
            return Ok(());
        }
    }
}

/// The `stdin-events` thread: frames the reads and gathers events, ending a pending event when
/// it times out while no read comes. Returns when the reads end (after sending the last line
/// and event: `true`) or nobody takes chunks any more (`false`).
fn gather(
    mut read_rx: Inbox<(Vec<u8>, usize)>,
    spare_tx: std::sync::mpsc::Sender<Vec<u8>>,
    chunk_tx: mpsc::Sender<Chunk>,
    mut reader: EventReader,
) -> (StdinStats, bool) {
    let source: Arc<str> = Arc::from("-");
    let send = |block: EventBlock| {
        block.data.is_empty()
            || chunk_tx
                .blocking_send(Chunk {
                    source: source.clone(),
                    data: block.data,
                    end_offset: block.end_offset,
                    read_at: SystemTime::now(),
                    mark: None,
                    line_joins: block.line_joins,
                })
                .is_ok()
    };
    let stats = |reader: &EventReader| StdinStats {
        bytes: reader.offset(),
        cut_lines: reader.cut_lines(),
    };
    loop {
        let wait = reader.deadline().map_or(IDLE_WAIT, |due| {
            due.saturating_duration_since(Instant::now())
        });
        let block = match read_rx.recv_for(wait) {
            Ok(Some((buf, n))) => {
                let block = reader.push(&buf[..n], Instant::now());
                let _ = spare_tx.send(buf);
                block
            }
            Ok(None) => match reader.flush_due(Instant::now()) {
                Some(block) => block,
                None => continue,
            },
            Err(Disconnected) => break,
        };
        if !send(block) {
            return (stats(&reader), false);
        }
    }
    send(reader.finish());
    (stats(&reader), true)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// Everything the chunks of `input` hold, as events of lines (lossy text).
    fn events_of(rx: &mut mpsc::Receiver<Chunk>) -> Vec<Vec<String>> {
        let mut all = Vec::new();
        while let Ok(c) = rx.try_recv() {
            let block = EventBlock {
                data: c.data,
                line_joins: c.line_joins,
                ..EventBlock::default()
            };
            for e in block.event_lines() {
                all.push(
                    e.iter()
                        .map(|l| String::from_utf8_lossy(l).into_owned())
                        .collect(),
                );
            }
        }
        all
    }

    fn multiline(start: &str, timeout: Duration) -> Multiline {
        Multiline {
            start: crate::rules::regex_builder(start).build().unwrap(),
            max_lines: 500,
            timeout,
        }
    }

    /// One case: the multi-line setting, the input, the events expected (their lines) and the
    /// bytes read.
    type Case<'m> = (
        Option<&'m Multiline>,
        &'static [u8],
        Vec<Vec<&'static str>>,
        u64,
    );

    #[test]
    fn reads_everything_into_whole_line_and_whole_event_chunks() {
        let ml = multiline(r"^\d{4}-", Duration::from_secs(3600));
        let trace =
            b"2024-01-01 ERROR boom\n\tat a.B(C.java:1)\n\tat c.D(E.java:2)\n2024-01-01 INFO ok";
        let table: [Case<'_>; 4] = [
            (
                None,
                b"one\ntwo\nthree",
                vec![vec!["one"], vec!["two"], vec!["three"]],
                13,
            ),
            (
                None,
                trace,
                vec![
                    vec!["2024-01-01 ERROR boom"],
                    vec!["\tat a.B(C.java:1)"],
                    vec!["\tat c.D(E.java:2)"],
                    vec!["2024-01-01 INFO ok"],
                ],
                trace.len() as u64,
            ),
            (
                Some(&ml),
                trace,
                vec![
                    vec![
                        "2024-01-01 ERROR boom",
                        "\tat a.B(C.java:1)",
                        "\tat c.D(E.java:2)",
                    ],
                    vec!["2024-01-01 INFO ok"],
                ],
                trace.len() as u64,
            ),
            // lines before the first start line are an event of their own
            (
                Some(&ml),
                b"  orphan\n2024- a\n b\n",
                vec![vec!["  orphan"], vec!["2024- a", " b"]],
                20,
            ),
        ];
        for (ml, input, want, bytes) in table {
            let (tx, mut rx) = mpsc::channel(64);
            let stats = read_all(input, tx, EventReader::new(1024, ml), false).unwrap();
            assert_eq!(
                events_of(&mut rx),
                want,
                "{}",
                String::from_utf8_lossy(input)
            );
            assert_eq!(stats.bytes, bytes);
        }
    }

    /// Input that gives `first`, then waits (as a pipe from `tail -f` does) until `go` says so.
    struct Paused {
        first: Option<&'static [u8]>,
        go: Option<std::sync::mpsc::Receiver<()>>,
    }

    impl Read for Paused {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if let Some(first) = self.first.take() {
                buf[..first.len()].copy_from_slice(first);
                return Ok(first.len());
            }
            if let Some(go) = self.go.take() {
                let _ = go.recv();
            }
            Ok(0)
        }
    }

    #[test]
    fn a_pending_event_is_sent_when_it_times_out_while_the_read_waits() {
        let ml = multiline("^S", Duration::from_millis(20));
        let (go_tx, go_rx) = std::sync::mpsc::channel();
        let input = Paused {
            first: Some(b"S one\n more\n"),
            go: Some(go_rx),
        };
        let (tx, mut rx) = mpsc::channel(64);
        let events = std::thread::spawn(move || {
            read_all(input, tx, EventReader::new(1024, Some(&ml)), false)
        });
        // The event arrives while the input is still open: by its timeout, not by its end.
        let chunk = rx
            .blocking_recv()
            .expect("the event, before the input ends");
        assert_eq!(&chunk.data[..], b"S one\r more\n");
        assert_eq!(chunk.line_joins, [5]);
        go_tx.send(()).unwrap();
        let stats = events.join().unwrap().unwrap();
        assert_eq!(stats.bytes, 12);
        assert!(rx.blocking_recv().is_none(), "nothing more, and closed");
    }
}
