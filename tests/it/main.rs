//! Integration tests: one binary, a module per area (see ripgrep's layout).

mod cli;
mod command_model;
mod common;
mod concurrency;
mod domain;
mod fixture;
mod fuzz_corpus;
mod kill;
mod lifecycle;
mod recovery;
mod storage_faults;
