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
