//! `dilly::RawFunc` decoded, prepared as a worker does, and called.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    dilly_fuzz::raw_func(data);
});
