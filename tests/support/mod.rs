#![allow(dead_code)]
pub mod corpus;
pub mod emulator;
pub mod env;
pub mod redis_server;
pub mod running;
