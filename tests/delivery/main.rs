//! `dingtail run` delivering to the DingTalk emulator: windows and rate limits, DingTalk's
//! worst days (outages, throttling, permanent errors), servers that echo secrets, the monthly
//! budget, stale input and dingtail's alerts about itself. One test binary, a module per
//! concern.

#[path = "../support/mod.rs"]
mod support;

mod budget;
mod echo;
mod run;
mod self_alerts;
mod stale;
mod worst_days;
