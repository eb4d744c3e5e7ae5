//! `log_decode`: see `ticketlog::testing::fuzz::log_decode` for the property checked. The
//! checking code lives in the library so that `cargo test` replays the
//! committed corpus and regressions through exactly this code.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ticketlog::testing::fuzz::log_decode::check_bytes(data);
});
