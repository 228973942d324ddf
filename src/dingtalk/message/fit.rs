//! Quoted log lines and how many of them fit: each line decoded, masked, made safe and
//! measured; then long lines are cut and, when that is not enough, fewer lines are quoted.

use super::json::{escaped_char_len, escaped_len};
use super::layout::Flavor;
use crate::alert::Sample;
use crate::pii::Pii;

/// A quoted line is never cut shorter than this many bytes (escaped) while lines can be dropped
/// instead: a handful of readable lines beats many stubs.
const MIN_LINE_BYTES: usize = 160;

/// A line ready to quote: decoded, cleaned, made safe, with its escaped size known.
pub(super) struct Quoted {
    text: String,
    /// Escaped length of `> ` + text + end of line.
    len: usize,
    /// It was cut before it got here.
    cut: bool,
}

pub(super) const PREFIX: &str = "> ";
pub(super) const ELLIPSIS: &str = "…";

impl Quoted {
    /// Personal data is masked (by `pii`) before the text is made safe and measured, so the
    /// size is that of what is sent; a cut sample's last line also loses a trailing partial
    /// number. The lines of a multi-line event each go on a line of their own, indented under
    /// the `> ` that marks one counted event.
    pub(super) fn new(sample: &Sample, flavor: Flavor, pii: &Pii) -> Quoted {
        let cut = sample.cut;
        let pieces = sample.lines().count();
        let text = sample
            .lines()
            .enumerate()
            .map(|(i, l)| {
                let l = String::from_utf8_lossy(l);
                let masked = if cut && i + 1 == pieces {
                    pii.mask_cut(&l)
                } else {
                    pii.mask(&l)
                };
                flavor.untrusted(&masked)
            })
            .collect::<Vec<_>>()
            .join(&format!("{}  ", flavor.eol()));
        let len = escaped_len(PREFIX)
            + escaped_len(&text)
            + escaped_len(flavor.eol())
            + if cut { ELLIPSIS.len() } else { 0 };
        Quoted { text, len, cut }
    }

    /// Escaped length when cut to at most `cap` bytes (prefix, ellipsis and newline included).
    pub(super) fn len_cut(&self, cap: usize) -> usize {
        self.len.min(cap)
    }

    /// Appends the quoted line, cut so that its escaped length is at most `cap`.
    pub(super) fn write_cut(&self, out: &mut String, cap: usize, flavor: Flavor) {
        out.push_str(PREFIX);
        if self.len <= cap {
            out.push_str(&self.text);
            if self.cut {
                out.push_str(ELLIPSIS);
            }
        } else {
            let room = cap
                .saturating_sub(escaped_len(PREFIX) + ELLIPSIS.len() + escaped_len(flavor.eol()));
            let mut used = 0;
            for c in self.text.chars() {
                let n = escaped_char_len(c);
                if used + n > room {
                    break;
                }
                used += n;
                out.push(c);
            }
            out.push_str(ELLIPSIS);
        }
        out.push_str(flavor.eol());
    }
}

/// Decides, for each alert, how many of its lines to quote and the per-line cap, so that all of
/// it fits in `budget` bytes: first cut long lines (down to [`MIN_LINE_BYTES`]), then drop lines,
/// always from the alert that shows the most, so every rule keeps some of its lines.
pub(super) fn fit_lines(lines: &[&[Quoted]], budget: usize) -> Vec<(usize, usize)> {
    let total = |counts: &[usize], cap: usize| -> usize {
        lines
            .iter()
            .zip(counts)
            .map(|(ls, &n)| ls[..n].iter().map(|q| q.len_cut(cap)).sum::<usize>())
            .sum()
    };
    let mut counts: Vec<usize> = lines.iter().map(|l| l.len()).collect();
    let longest = lines
        .iter()
        .flat_map(|l| l.iter())
        .map(|q| q.len)
        .max()
        .unwrap_or(0);
    if total(&counts, longest) <= budget {
        return counts.iter().map(|&n| (n, longest)).collect();
    }
    if total(&counts, MIN_LINE_BYTES) <= budget {
        // The largest cap that fits, by bisection: total() grows with the cap.
        let (mut lo, mut hi) = (MIN_LINE_BYTES, longest);
        while lo + 1 < hi {
            let mid = lo + (hi - lo) / 2;
            if total(&counts, mid) <= budget {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        return counts.iter().map(|&n| (n, lo)).collect();
    }
    // Even cut short they do not fit: quote fewer lines.
    let mut size = total(&counts, MIN_LINE_BYTES);
    while size > budget {
        let (i, _) = counts
            .iter()
            .enumerate()
            .max_by_key(|&(i, n)| (*n, std::cmp::Reverse(i)))
            .expect("at least one alert");
        if counts[i] == 0 {
            break;
        }
        counts[i] -= 1;
        size -= lines[i][counts[i]].len_cut(MIN_LINE_BYTES);
    }
    counts.iter().map(|&n| (n, MIN_LINE_BYTES)).collect()
}
