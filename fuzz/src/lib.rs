//! What every fuzz target does with the bytes it is given: decode them as each
//! kind of value a receiver decodes, call what decodes, and check the decoded value
//! survives a round trip. A panic, an abort, a stack overflow or an allocation over
//! libFuzzer's `-malloc_limit_mb` is a failure; errors are the expected outcome.
//!
//! The registered items in the fuzzed set come from `dilly-fixture`: free and
//! nested functions, bound methods, closures over a `Vec<String>` and a `u64`, over
//! a struct and a `HashMap`, over a `String` (`greeting_closure`), over a recursive
//! `Tree` (`tree_closure`, and `Tree::depth` bound to a tree), over a function
//! value (`apply_closure`), and the `Point`, `Shape`, `Tree` and `Scale` objects.

use std::collections::HashMap;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

use dilly::{Func, Limits, Object, RawFunc};

// Link the fixture's registry entries.
pub use dilly_fixture as fixture;

/// Builds what a process builds once, on first use, whatever its input: the
/// registry's index, and this executable's build ID (a same-build value's first
/// decode reads the executable file, tens of MB for a fuzz build). Every target
/// calls it before its first input, outside libFuzzer's malloc limit.
pub fn warm_up() {
    let _ = dilly::registry::lookup(dilly::SymbolId::from_raw(0));
    let _ = dilly::same_build::this_build();
}

/// Argument tuples, encoded, for each signature in the fuzzed set.
const ARGS: [&[u8]; 4] = [&[21], &[3, 7], &[2, b'h', b'i'], &[1, b'k', 5]];

/// Runs `call`, which runs a registered function on decoded arguments. The
/// function may panic (the fixture's arithmetic overflows on large arguments, with
/// the overflow checks fuzz builds have), as a task may in a worker, where the pool
/// reports it as `TaskError::Panicked`; that is not the decoder's failure. Any
/// other panic still aborts the run, as libFuzzer's own hook makes every panic do.
fn call_user_code(call: impl FnOnce()) {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let libfuzzer_hook = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            let in_fixture = info
                .location()
                .is_some_and(|at| at.file().contains("tests/fixture/"));
            if !in_fixture {
                libfuzzer_hook(info);
                std::process::abort();
            }
        }));
    });
    let _ = panic::catch_unwind(AssertUnwindSafe(call));
}

/// Decodes `bytes` as a function value of signature `A -> R` with `decode`; if it
/// decodes, calls it on each argument tuple and checks it re-encodes and decodes.
fn func<A: 'static, R: 'static>(bytes: &[u8], decode: impl Fn(&[u8]) -> dilly::Result<Func<A, R>>) {
    if let Ok(f) = decode(bytes) {
        for args in ARGS {
            call_user_code(|| drop(f.erased().call_bytes(args)));
        }
        let again = dilly::to_bytes(&f).expect("a decoded function value encodes");
        decode(&again).expect("a decoded function value's encoding decodes");
    }
}

/// Decodes `bytes` as every kind of value in the fuzzed set.
pub fn values(bytes: &[u8], limits: Limits) {
    func::<(u64,), u64>(bytes, |b| dilly::from_bytes_with_limits(b, limits));
    func::<(u64, u64), u64>(bytes, |b| dilly::from_bytes_with_limits(b, limits));
    func::<(String,), String>(bytes, |b| dilly::from_bytes_with_limits(b, limits));
    func::<(String, u64), u64>(bytes, |b| dilly::from_bytes_with_limits(b, limits));
    objects(bytes, limits);
    let _ = dilly::from_bytes_with_limits::<dilly_fixture::Tree>(bytes, limits);
    let _ = dilly::from_bytes_with_limits::<Vec<String>>(bytes, limits);
    let _ = dilly::from_bytes_with_limits::<HashMap<String, u64>>(bytes, limits);
    let _ = dilly::from_bytes_with_limits::<serde_bytes::ByteBuf>(bytes, limits);
}

/// Decodes `bytes` as type-erased objects.
pub fn objects(bytes: &[u8], limits: Limits) {
    if let Ok(value) = dilly::from_bytes_with_limits::<Box<dyn Object>>(bytes, limits) {
        let again = dilly::to_bytes(&value).expect("a decoded object encodes");
        dilly::from_bytes_with_limits::<Box<dyn Object>>(&again, limits)
            .expect("a decoded object's encoding decodes");
    }
    let _ = dilly::from_bytes_with_limits::<Vec<Box<dyn Object>>>(bytes, limits);
    let _ = dilly::from_bytes_with_limits::<Option<(Box<dyn Object>, u64)>>(bytes, limits);
}

/// Decodes `bytes` as a [`RawFunc`], prepares it as a worker does and calls it.
pub fn raw_func(bytes: &[u8]) {
    if let Ok(raw) = dilly::from_bytes::<RawFunc>(bytes)
        && let Ok(f) = raw.prepare()
    {
        for args in ARGS {
            call_user_code(|| drop(f.call_bytes(args)));
        }
    }
}

/// Reads `bytes` as a call frame, prepares its function and calls it on the
/// frame's arguments.
pub fn call_frame(bytes: &[u8]) {
    if let Ok(frame) = dilly::CallFrame::decode(bytes, Limits::DEFAULT)
        && let Ok(entry) =
            dilly::registry::lookup_callable(frame.id, frame.fingerprint, frame.shape)
        && let Ok(f) = entry.prepare(frame.state)
    {
        call_user_code(|| drop(f.call_bytes(frame.args)));
    }
}

/// Limits chosen by the input's first byte (depths from 0 to 255, sometimes a
/// small input limit), and the rest of the input.
pub fn split_limits(bytes: &[u8]) -> (Limits, &[u8]) {
    match bytes.split_first() {
        Some((&first, rest)) => {
            let limits = Limits::DEFAULT.with_max_depth(usize::from(first));
            if first % 7 == 0 {
                (
                    Limits {
                        max_len: rest.len() / 2,
                        ..limits
                    },
                    rest,
                )
            } else {
                (limits, rest)
            }
        }
        None => (Limits::DEFAULT, bytes),
    }
}
