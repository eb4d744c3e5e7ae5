//! The fuzzing properties on stable: the proptest state machine of the
//! command-stream model, and the replay of every committed fuzz input.
//!
//! A test binary of its own, apart from `tests/it`, because these tests close
//! and at once reopen stores hundreds of times, and `tests/it` spawns the
//! `ticketlog` binary from many threads: a child between `fork` and `exec`
//! holds a copy of every descriptor the test process has open, the directory
//! lock's included, so a reopen racing with a spawn in another test can see
//! the lock as held. No test here spawns a process.

#[path = "../it/common.rs"]
mod common;

mod command_model;
mod fuzz_corpus;
