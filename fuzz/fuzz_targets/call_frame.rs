//! `dilly::CallFrame::decode`, then the frame's function prepared and called.
#![no_main]

libfuzzer_sys::fuzz_target!(init: dilly_fuzz::warm_up(), |data: &[u8]| {
    dilly_fuzz::call_frame(data);
});
