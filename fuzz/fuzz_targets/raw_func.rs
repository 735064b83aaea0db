//! `dilly::RawFunc` decoded, prepared as a worker does, and called.
#![no_main]

libfuzzer_sys::fuzz_target!(init: dilly_fuzz::warm_up(), |data: &[u8]| {
    dilly_fuzz::raw_func(data);
});
