//! dingtail's HTTP listener (`--listen 127.0.0.1:0`) seen from a test: a plain GET, the
//! metrics it serves, one sample of them, and waiting for a scrape to show something.

use super::env::poll_until;
use super::running::Running;

/// `GET url`: (status, body), whatever the status.
pub fn http_get(url: &str) -> (u16, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut resp = agent
        .get(url)
        .call()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = resp.status().as_u16();
    (status, resp.body_mut().read_to_string().unwrap())
}

/// The metrics text served at `addr` (`GET /metrics`).
pub fn scrape(addr: &str) -> String {
    http_get(&format!("http://{addr}/metrics")).1
}

/// The value of one sample (`name{labels}` exactly as written) in a metrics text; panics,
/// showing the text, when there is none.
pub fn sample(text: &str, series: &str) -> f64 {
    try_sample(text, series).unwrap_or_else(|| panic!("no {series} in\n{text}"))
}

/// One sample (`name{labels}` exactly as written) of the metrics served at `addr`; `None`
/// while the listener does not answer or has no such sample yet.
pub fn metric(addr: &str, series: &str) -> Option<f64> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let text = agent
        .get(&format!("http://{addr}/metrics"))
        .call()
        .ok()?
        .body_mut()
        .read_to_string()
        .ok()?;
    try_sample(&text, series)
}

impl Running {
    /// Waits until a scrape of its listener (`--listen 127.0.0.1:0`) satisfies `ok`, and
    /// returns that scrape; panics with the last scrape and what dingtail said after the wait
    /// limit.
    pub fn wait_for_metrics(&self, ok: impl Fn(&str) -> bool) -> String {
        let addr = self.listen_addr();
        let mut text = String::new();
        let done = poll_until(|| {
            text = scrape(&addr);
            ok(&text)
        });
        assert!(done, "{text}\n{}", self.stderr());
        text
    }

    /// Waits until the matcher has counted `n` lines of standard input (the listener's
    /// `dingtail_lines_read_total`).
    pub fn wait_for_lines_read(&self, n: u64) {
        let addr = self.listen_addr();
        let read = || metric(&addr, "dingtail_lines_read_total{source=\"-\"}").unwrap_or(0.0);
        let mut last = 0.0;
        assert!(
            poll_until(|| {
                last = read();
                last >= n as f64
            }),
            "{last} of {n} lines read:\n{}",
            self.stderr()
        );
    }
}

/// The value of one sample in a metrics text, `None` when there is none (yet).
pub fn try_sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))?
        .trim()
        .parse()
        .ok()
}
