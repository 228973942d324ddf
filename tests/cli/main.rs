//! The commands as a user types them, through the real binary: `check`, `test` and `send`,
//! `init`, what `run` says at start, output on a terminal, careless configs, every file in
//! rules/, and the Kubernetes example. One test binary, a module per concern.

#[path = "../support/mod.rs"]
mod support;

mod commands;
mod config_fuzz;
mod deploy;
mod init;
mod rules_dir;
mod startup;
mod terminal;
