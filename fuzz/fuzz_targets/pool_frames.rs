//! The pool's frame readers on a byte stream, as the parent and a worker read
//! their sockets, with every frame's body decoded as each message it could be.
//! The payload limit is the default `ProcessPoolBuilder::max_len` (64 MiB): a frame's length may
//! claim up to that, and the readers must still allocate only what arrives.
#![no_main]

libfuzzer_sys::fuzz_target!(init: dilly_fuzz::warm_up(), |data: &[u8]| {
    dilly_pool::__fuzz::read_stream(data, dilly::Limits::DEFAULT.max_len as u64);
});
