//! `Box<dyn dilly::Object>` (alone, in a `Vec`, in a tuple) decoded and re-encoded.
#![no_main]

libfuzzer_sys::fuzz_target!(init: dilly_fuzz::warm_up(), |data: &[u8]| {
    dilly_fuzz::objects(data, dilly::Limits::DEFAULT);
});
