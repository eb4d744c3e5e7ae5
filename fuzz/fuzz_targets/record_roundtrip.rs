//! `record_roundtrip`: see `ticketlog::testing::fuzz::record_roundtrip` for the property checked. The
//! checking code lives in the library so that `cargo test` replays the
//! committed corpus and regressions through exactly this code.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ticketlog::testing::fuzz::record_roundtrip::check_bytes(data);
});
