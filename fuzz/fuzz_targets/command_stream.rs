//! `command_stream`: see `ticketlog::testing::fuzz::command_stream` for the property checked. The
//! checking code lives in the library so that `cargo test` replays the
//! committed corpus and regressions through exactly this code.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ticketlog::testing::fuzz::command_stream::check_bytes(data);
});
