//! Integration tests: one binary, a module per area (see ripgrep's layout).

mod cli;
mod common;
mod concurrency;
mod crash_steps;
mod domain;
mod durability;
mod fixture;
mod history;
mod kill;
mod lifecycle;
mod recovery;
mod retention;
mod segments;
mod snapshots;
mod storage_faults;
