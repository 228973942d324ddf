//! Several dingtail processes sharing robots through a real Redis (`coordination:`): the shared
//! window, throttle and budget, fleet-wide digests, Redis outages, and Sentinel failover. One
//! test binary, a module per concern.

#[path = "../support/mod.rs"]
mod support;

mod digest;
mod limits;
mod outage;
mod sentinel;
