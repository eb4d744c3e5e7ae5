//! Integration tests: one binary, a module per area (see ripgrep's layout).

mod cli;
mod common;
mod concurrency;
mod crash_test;
mod damage;
mod domain;
mod driver;
mod durability;
mod fixture;
mod io_sweep;
mod kill;
mod lifecycle;
mod model;
mod power_cut;
mod recovery;
mod repair;
mod sim;
mod sim_storage;
mod storage_faults;
