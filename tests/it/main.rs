//! Integration tests: one binary, a module per area (see ripgrep's layout).

mod cli;
mod command_model;
mod common;
mod concurrency;
mod crash_steps;
mod crash_test;
mod damage;
mod domain;
mod driver;
mod durability;
mod fixture;
mod fuzz_corpus;
mod history;
mod inspect;
mod io_sweep;
#[cfg(feature = "jetstream")]
mod jetstream;
#[cfg(feature = "jetstream")]
mod jetstream_common;
#[cfg(feature = "jetstream")]
mod jetstream_faults;
#[cfg(feature = "jetstream")]
mod jetstream_serve;
#[cfg(feature = "jetstream")]
mod jetstream_snapshots;
mod kill;
mod lifecycle;
mod oracle;
mod power_cut;
mod recovery;
mod repair;
mod retention;
#[cfg(feature = "jetstream")]
mod route_proxy;
mod segments;
mod serve;
mod serve_events;
mod sim;
mod sim_storage;
mod snapshots;
mod storage_faults;
mod subscriptions;
mod tidy;
