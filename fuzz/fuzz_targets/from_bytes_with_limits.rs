//! `dilly::from_bytes_with_limits` with limits taken from the first byte, on every
//! kind of value in the fuzzed set.
#![no_main]

libfuzzer_sys::fuzz_target!(init: dilly_fuzz::warm_up(), |data: &[u8]| {
    let (limits, rest) = dilly_fuzz::split_limits(data);
    dilly_fuzz::values(rest, limits);
});
