//! Where and how to post one robot's messages: what the config builds for a robot and the HTTP
//! client takes, so the DingTalk code needs nothing else of the config.

use std::time::Duration;

use crate::secret::Secret;

/// A robot's webhook, signing secret, proxy and timeouts. The webhook (it carries the access
/// token), the secret and the proxy (it may carry credentials) are [`Secret`]s, so no `Debug`,
/// log line or error can print them.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// Full webhook URL including `access_token`; never contains `timestamp`/`sign`.
    pub webhook: Secret,
    /// The `SEC…` signing secret, when the robot uses 加签.
    pub secret: Option<Secret>,
    /// A proxy for this robot only (else `HTTPS_PROXY`/`NO_PROXY` apply); may hold credentials.
    pub proxy: Option<Secret>,
    /// TCP/TLS connect timeout.
    pub connect_timeout: Duration,
    /// Whole-request timeout.
    pub request_timeout: Duration,
}
