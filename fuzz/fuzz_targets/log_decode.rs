//! `log_decode`: see `ticketlog::fuzzing::log_decode` for the property checked. The
//! checking code lives in the library so that `cargo test` replays the
//! committed corpus and regressions through exactly this code.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ticketlog::fuzzing::log_decode::check_bytes(data);
});
