//! The shutdown `main` passes to [`crate::app::run`]: the first SIGINT or SIGTERM. A second one
//! exits at once, without delivering. Tests pass a future of their own instead.

use std::future::Future;

/// Installs the SIGINT and SIGTERM handlers now (so a signal that arrives while files are being
/// taken up is a clean stop, not the default action) and returns the future that resolves at
/// the first of them; from then on, a second signal exits the process with status 130.
///
/// # Panics
/// Outside a tokio runtime, or when the handlers cannot be installed.
pub fn on_signal() -> impl Future<Output = ()> + Send + 'static {
    let mut signals = Signals::install();
    async move {
        signals.recv().await;
        // The same handlers wait for the second signal: one that arrives before this task runs
        // is kept by them (a handler installed only now would miss it, and a quick second
        // Ctrl-C would then be lost).
        tokio::spawn(async move {
            signals.recv().await;
            eprintln!("dingtail: second signal, exiting without delivering");
            std::process::exit(130);
        });
        tracing::info!(
            "shutdown requested: flushing and delivering what is pending (again to exit at once)"
        );
    }
}

/// SIGINT and SIGTERM handlers.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> Signals {
        use tokio::signal::unix::{SignalKind, signal};
        Signals {
            term: signal(SignalKind::terminate()).expect("install SIGTERM handler"),
            int: signal(SignalKind::interrupt()).expect("install SIGINT handler"),
        }
    }

    /// The next SIGINT or SIGTERM (one that arrived since the last call, or since install).
    async fn recv(&mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
    }
}
