//! Integration tests: one binary, a module per area (see ripgrep's layout).

mod cli;
mod common;
mod concurrency;
mod domain;
mod fixture;
mod kill;
mod lifecycle;
mod recovery;
mod storage_faults;
