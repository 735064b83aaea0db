//! `dilly::from_bytes` (default limits) on every kind of value in the fuzzed set.
#![no_main]

libfuzzer_sys::fuzz_target!(init: dilly_fuzz::warm_up(), |data: &[u8]| {
    dilly_fuzz::values(data, dilly::Limits::DEFAULT);
});
