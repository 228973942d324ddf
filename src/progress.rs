//! A progress bar on stderr for long reads (`dingtail test` over a large file): bytes, lines per
//! second and hits. Only when stderr is a terminal and the file is large enough to take a moment;
//! never in a pipe, a log or CI, where it would be noise.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Files smaller than this finish before a bar would help.
pub const MIN_BYTES: u64 = 1 << 20;

/// A bar over `total` bytes, or `None` when stderr is not a terminal or the work is small.
pub fn bar(total: Option<u64>) -> Option<ProgressBar> {
    let total = total.filter(|&t| t >= MIN_BYTES)?;
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {binary_bytes}/{binary_total_bytes} · {msg}",
        )
        .expect("the template is valid"),
    );
    Some(bar)
}

/// The bar's message: lines per second and hits so far.
pub fn message(lines: u64, hits: u64, elapsed_secs: f64) -> String {
    let rate = if elapsed_secs > 0.0 {
        lines as f64 / elapsed_secs
    } else {
        0.0
    };
    format!("{lines} lines ({rate:.0}/s) · {hits} hits")
}

/// A bar for `run --once` or `--from-beginning` over followed files: `total` bytes to read (the
/// files' sizes, or what lies past their checkpoints), kept up to the metrics' counts ten times
/// a second by a task; `None` (and no task) when stderr is not a terminal or the work is small.
/// The bar is cleared once `total` is read, or when the returned handle is finished.
pub fn follow(total: u64, metrics: std::sync::Arc<crate::metrics::Metrics>) -> Option<Follow> {
    let bar = bar(Some(total))?;
    let started = std::time::Instant::now();
    let shown = bar.clone();
    let task = tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_millis(100));
        loop {
            tick.tick().await;
            let (lines, bytes) = metrics.totals();
            shown.set_position(bytes.min(total));
            shown.set_message(message(
                lines,
                metrics.hits_total(),
                started.elapsed().as_secs_f64(),
            ));
            if bytes >= total {
                shown.finish_and_clear();
                return;
            }
        }
    });
    Some(Follow { bar, task })
}

/// The bar of [`follow`] and the task that moves it.
pub struct Follow {
    bar: ProgressBar,
    task: tokio::task::JoinHandle<()>,
}

impl Follow {
    /// Reading is over: the bar goes, before the summary is printed.
    pub fn finish(self) {
        self.task.abort();
        self.bar.finish_and_clear();
    }
}
