//! Tests of the test harness itself (tests/support/), so that the integration tests can trust
//! it: the DingTalk emulator does what DingTalk does, and the processes a test starts
//! (dingtail, redis-server) die with the test, however it ends.

#[path = "../support/mod.rs"]
mod support;

mod emulator;
mod processes;
