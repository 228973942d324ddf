#![allow(dead_code)]
pub mod corpus;
pub mod delivered;
pub mod emulator;
pub mod env;
pub mod files;
pub mod fleet;
pub mod listener;
pub mod problems;
pub mod redis_server;
pub mod replay;
pub mod running;
