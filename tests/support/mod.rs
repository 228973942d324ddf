#![allow(dead_code)]
pub mod emulator;
pub mod env;
