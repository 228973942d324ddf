//! Standard input as a source: a blocking thread that reads blocks and sends whole-line chunks,
//! through the same [`EventReader`] as every other source.
//!
//! A thread rather than a task: reading stdin blocks, and a dedicated thread keeps the reads large
//! (256 KiB) and off the async workers. End of input finishes the last partial line and closes the
//! channel, which is how the rest of the pipeline learns the input is over. If the receiver is gone
//! (shutdown), the thread stops at its next read.

use std::io::{self, Read, Write};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Instant, SystemTime};

use tokio::sync::mpsc;

use super::{Chunk, EventBlock, EventReader};

/// Bytes per read.
pub const BLOCK: usize = 256 * 1024;

/// What the stdin reader saw.
#[derive(Debug, Clone, Copy, Default)]
pub struct StdinStats {
    /// Bytes read.
    pub bytes: u64,
    /// Lines cut because they were longer than the limit.
    pub cut_lines: u64,
}

/// Starts the reader thread. With `tee`, every block is copied unchanged to stdout before it is
/// matched, so dingtail can sit in the middle of a pipe; if stdout goes away, teeing stops with a
/// warning and reading goes on.
pub fn spawn(
    chunk_tx: mpsc::Sender<Chunk>,
    max_line: usize,
    tee: bool,
) -> JoinHandle<io::Result<StdinStats>> {
    std::thread::Builder::new()
        .name("stdin".into())
        .spawn(move || read_all(io::stdin().lock(), chunk_tx, max_line, tee))
        .expect("spawn the stdin thread")
}

fn read_all(
    mut input: impl Read,
    chunk_tx: mpsc::Sender<Chunk>,
    max_line: usize,
    mut tee: bool,
) -> io::Result<StdinStats> {
    let source: Arc<str> = Arc::from("-");
    let mut reader = EventReader::new(max_line, None);
    let mut buf = vec![0u8; BLOCK];
    let mut stdout = io::stdout();
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
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if tee && let Err(e) = stdout.write_all(&buf[..n]).and_then(|()| stdout.flush()) {
            tracing::warn!("stdout closed ({e}); --tee stops copying, matching goes on");
            tee = false;
        }
        if !send(reader.push(&buf[..n], Instant::now())) {
            break;
        }
    }
    send(reader.finish());
    Ok(StdinStats {
        bytes: reader.offset(),
        cut_lines: reader.cut_lines(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_everything_into_whole_line_chunks() {
        let (tx, mut rx) = mpsc::channel(64);
        let input: Vec<u8> = b"one\ntwo\nthree".to_vec();
        let stats = read_all(&input[..], tx, 1024, false).unwrap();
        let mut all = Vec::new();
        while let Ok(c) = rx.try_recv() {
            all.extend_from_slice(&c.data);
        }
        assert_eq!(all, b"one\ntwo\nthree\n");
        assert_eq!(stats.bytes, 13);
    }
}
