//! Hostile bytes cost no more than they weigh: a counting global allocator measures
//! the peak memory a decode holds, and small-stack threads check that nesting is
//! bounded before the stack is.
//!
//! Each hostile input is a real value's encoding with one part replaced: a length
//! that claims far more than the input holds (1 GiB, 2^60, 63 MiB — the last
//! inside the 64 MiB input limit), or 100,000 levels of nesting. Every decoder
//! must return a typed error while holding at most [`bound`] bytes.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use dilly::{CallFrame, Error, Func, Limits, Object, RawFunc, bind};
use dilly_fixture::Tree;

/// Counts the bytes held by allocations made on the measuring thread.
struct Counting;

thread_local! {
    static MEASURING: Cell<bool> = const { Cell::new(false) };
    static HELD: Cell<usize> = const { Cell::new(0) };
    static PEAK: Cell<usize> = const { Cell::new(0) };
}

fn note_alloc(size: usize) {
    // `try_with`: allocations also happen while a thread's locals are torn down.
    let _ = MEASURING.try_with(|m| {
        if m.get() {
            let held = HELD.get() + size;
            HELD.set(held);
            PEAK.set(PEAK.get().max(held));
        }
    });
}

fn note_free(size: usize) {
    let _ = MEASURING.try_with(|m| {
        if m.get() {
            HELD.set(HELD.get().saturating_sub(size));
        }
    });
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged;
// the bookkeeping touches only const-initialised thread locals without
// destructors, which never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_alloc(layout.size());
        // SAFETY: the caller's contract for `alloc` is `System::alloc`'s.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_alloc(layout.size());
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        note_free(layout.size());
        // SAFETY: `ptr` came from `System` with this layout (every allocation above).
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_alloc(new_size);
        note_free(layout.size());
        // SAFETY: as for `dealloc`, and `new_size` is the caller's, unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Runs `f` and returns its result with the peak bytes held meanwhile (allocations
/// made inside `f` on this thread, less those it freed).
fn peak_of<T>(f: impl FnOnce() -> T) -> (T, usize) {
    HELD.set(0);
    PEAK.set(0);
    MEASURING.set(true);
    let out = f();
    MEASURING.set(false);
    (out, PEAK.get())
}

/// What one decode of `input` may hold at its peak: a fixed 64 KiB plus four bytes
/// per byte of input.
fn bound(input: &[u8]) -> usize {
    (64 << 10) + 4 * input.len()
}

/// The bytes before a portable function value's state: version, header length, the
/// 24-byte header (ID, signature fingerprint, shape hash).
const BEFORE_STATE: usize = 1 + 1 + 24;

/// Appends a varint (bincode's standard configuration) to `out`.
fn varint(out: &mut Vec<u8>, n: u64) {
    match n {
        0..=250 => out.push(n as u8),
        251..=0xffff => {
            out.push(251);
            out.extend_from_slice(&(n as u16).to_le_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(252);
            out.extend_from_slice(&(n as u32).to_le_bytes());
        }
        _ => {
            out.push(253);
            out.extend_from_slice(&n.to_le_bytes());
        }
    }
}

/// A string length claiming `claim` bytes, with nothing after it.
fn claim(claim: u64) -> Vec<u8> {
    let mut out = Vec::new();
    varint(&mut out, claim);
    out
}

/// A `Tree` nested `depth` nodes deep, encoded: one variant index per node.
fn deep_tree(depth: usize) -> Vec<u8> {
    let mut out = vec![1u8; depth];
    out.extend_from_slice(&[0, 0]);
    out
}

/// `value`'s encoding with its state replaced by `state`.
fn with_state(value: &[u8], state: &[u8]) -> Vec<u8> {
    let mut out = value[..BEFORE_STATE].to_vec();
    varint(&mut out, state.len() as u64);
    out.extend_from_slice(state);
    out
}

/// The hostile claims: just under 1 GiB, 2^60, and 63 MiB (within the
/// default input limit of 64 MiB).
const CLAIMS: [u64; 3] = [1_073_741_760, 1 << 60, 63 << 20];

fn greeting() -> Vec<u8> {
    dilly::to_bytes(&dilly_fixture::greeting_closure("hi".into())).unwrap()
}

fn tree_closure() -> Vec<u8> {
    dilly::to_bytes(&dilly_fixture::tree_closure(Tree::chain(2, "x"))).unwrap()
}

fn tree_method() -> Vec<u8> {
    let tree = Tree::chain(2, "x");
    dilly::to_bytes(&bind!(tree.depth)).unwrap()
}

/// A `Box<dyn Object>` holding a `Tree`, with the tree's bytes replaced.
fn tree_object(tree: &[u8]) -> Vec<u8> {
    let value: Box<dyn Object> = Box::new(Tree::Leaf(String::new()));
    let mut out = dilly::to_bytes(&value).unwrap();
    // Version, the header's length (16), the ID and the shape hash, then the tree.
    out.truncate(1 + 1 + 16);
    out.extend_from_slice(tree);
    out
}

/// A call frame of the function in `value` (an encoded `Func`) with `state`.
fn frame(value: &[u8], state: &[u8]) -> Vec<u8> {
    let word = |at: usize| u64::from_le_bytes(value[at..at + 8].try_into().unwrap());
    CallFrame {
        id: dilly::SymbolId::from_raw(word(2)),
        fingerprint: dilly::Fingerprint::from_raw(word(10)),
        shape: dilly::Fingerprint::from_raw(word(18)),
        state,
        args: &[0],
    }
    .encode()
    .unwrap()
}

/// Every decoder's path from the bytes of a function value to a callable, each
/// returning its error.
fn decode_func<A: 'static, R: 'static>(bytes: &[u8]) -> Vec<(&'static str, Error)> {
    let mut errors = Vec::new();
    let mut note = |decoder, result: Result<(), Error>| match result {
        Ok(()) => panic!("{decoder} accepted hostile bytes"),
        Err(err) => errors.push((decoder, err)),
    };
    note(
        "from_bytes",
        dilly::from_bytes::<Func<A, R>>(bytes).map(drop),
    );
    note(
        "from_bytes_with_limits",
        dilly::from_bytes_with_limits::<Func<A, R>>(bytes, Limits::DEFAULT).map(drop),
    );
    // The same function as a `RawFunc`, prepared as a worker does.
    let word = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap());
    let mut state = &bytes[BEFORE_STATE..];
    let len = read_varint(&mut state);
    let state = &state[..len];
    let raw = dilly::to_bytes(&RawFunc::Registered {
        id: dilly::SymbolId::from_raw(word(2)),
        fingerprint: dilly::Fingerprint::from_raw(word(10)),
        shape: dilly::Fingerprint::from_raw(word(18)),
        state: state.to_vec(),
    })
    .unwrap();
    note(
        "RawFunc",
        dilly::from_bytes::<RawFunc>(&raw).and_then(|raw| raw.prepare().map(drop)),
    );
    let frame = frame(bytes, state);
    note(
        "CallFrame",
        CallFrame::decode(&frame, Limits::DEFAULT).and_then(|frame| {
            dilly::registry::lookup_callable(frame.id, frame.fingerprint, frame.shape)?
                .prepare(frame.state)
                .map(drop)
        }),
    );
    errors
}

fn read_varint(bytes: &mut &[u8]) -> usize {
    let (first, rest) = bytes.split_first().unwrap();
    let (n, used) = match first {
        0..=250 => (u64::from(*first), 0),
        251 => (
            u64::from(u16::from_le_bytes(rest[..2].try_into().unwrap())),
            2,
        ),
        252 => (
            u64::from(u32::from_le_bytes(rest[..4].try_into().unwrap())),
            4,
        ),
        _ => (u64::from_le_bytes(rest[..8].try_into().unwrap()), 8),
    };
    *bytes = &rest[used..];
    n as usize
}

fn assert_truncated(decoder: &str, err: &Error) {
    assert!(
        matches!(err, Error::Truncated { .. }),
        "{decoder}: expected Truncated, got {err:?}"
    );
}

fn assert_too_deep(decoder: &str, err: &Error) {
    assert!(
        matches!(err, Error::TooDeep { limit: 128, .. }),
        "{decoder}: expected TooDeep at 128, got {err:?}"
    );
}

/// Decodes `bytes` with `decode`, checks the peak against [`bound`], and hands
/// back the errors.
fn measured(
    bytes: &[u8],
    decode: impl FnOnce(&[u8]) -> Vec<(&'static str, Error)>,
) -> Vec<(&'static str, Error)> {
    // The registry's index is built on the first lookup; build it outside the
    // measurement.
    let _ = dilly::registry::lookup(dilly::SymbolId::from_raw(0));
    let (errors, peak) = peak_of(|| decode(bytes));
    assert!(
        peak <= bound(bytes),
        "{} bytes of input held {peak} bytes at the peak, over the bound of {}",
        bytes.len(),
        bound(bytes)
    );
    errors
}

#[test]
fn the_counting_allocator_sees_what_is_held() {
    let (v, peak) = peak_of(|| vec![0u8; 1 << 20]);
    assert!(peak >= 1 << 20, "{peak}");
    drop(v);
    let ((), peak) = peak_of(|| drop(Vec::<u8>::with_capacity(1 << 10)));
    assert!((1 << 10..64 << 10).contains(&peak), "{peak}");
}

#[test]
fn a_closure_capturing_a_string_with_a_huge_length_is_truncated_cheaply() {
    let greeting = greeting();
    for claimed in CLAIMS {
        let bytes = with_state(&greeting, &claim(claimed));
        if claimed == CLAIMS[0] {
            // The reported 24-byte frame, with wire format 2's 8 more header bytes.
            assert_eq!(bytes.len(), 32, "the 32-byte frame");
        }
        for (decoder, err) in measured(&bytes, decode_func::<(String,), String>) {
            assert_truncated(decoder, &err);
        }
    }
}

#[test]
fn a_string_field_of_an_object_with_a_huge_length_is_truncated_cheaply() {
    for claimed in CLAIMS {
        let mut leaf = vec![0u8];
        leaf.extend_from_slice(&claim(claimed));
        let bytes = tree_object(&leaf);
        let errors = measured(&bytes, |bytes| {
            vec![(
                "Object",
                dilly::from_bytes::<Box<dyn Object>>(bytes).unwrap_err(),
            )]
        });
        for (decoder, err) in errors {
            assert_truncated(decoder, &err);
        }
    }
}

#[test]
fn a_sequence_or_byte_string_with_a_huge_length_is_truncated_cheaply() {
    for claimed in CLAIMS {
        let mut bytes = vec![dilly::VERSION];
        bytes.extend_from_slice(&claim(claimed));
        let errors = measured(&bytes, |bytes| {
            vec![
                (
                    "Vec<String>",
                    dilly::from_bytes::<Vec<String>>(bytes).unwrap_err(),
                ),
                (
                    "ByteBuf",
                    dilly::from_bytes::<serde_bytes::ByteBuf>(bytes).unwrap_err(),
                ),
                (
                    "HashMap",
                    dilly::from_bytes::<std::collections::HashMap<u64, u64>>(bytes).unwrap_err(),
                ),
                ("RawFunc", {
                    // Tag 0, a zero ID and fingerprint, then the state's length.
                    let mut raw = vec![dilly::VERSION, 0];
                    raw.extend_from_slice(&[0; 2]);
                    raw.extend_from_slice(&bytes[1..]);
                    dilly::from_bytes::<RawFunc>(&raw).unwrap_err()
                }),
            ]
        });
        for (decoder, err) in errors {
            assert_truncated(decoder, &err);
        }
    }
}

/// The nesting cases, each run on a thread with `stack` bytes of stack.
fn deep_cases(stack: usize) {
    std::thread::Builder::new()
        .stack_size(stack)
        .spawn(|| {
            let deep = deep_tree(100_000);
            // The state of a closure over a tree is the tree; so is a bound method's.
            for value in [tree_closure(), tree_method()] {
                let bytes = with_state(&value, &deep);
                for (decoder, err) in measured(&bytes, decode_func::<(u64,), u64>) {
                    assert_too_deep(decoder, &err);
                }
            }
            let bytes = tree_object(&deep);
            let err = measured(&bytes, |bytes| {
                vec![(
                    "Object",
                    dilly::from_bytes::<Box<dyn Object>>(bytes).unwrap_err(),
                )]
            });
            assert_too_deep(err[0].0, &err[0].1);
            // Functions inside functions inside functions: each level's state is
            // the next function, which shares the outer decode's budget.
            let mut nested = dilly::to_bytes(&dilly_fixture::double_value()).unwrap();
            nested.remove(0);
            let holder = nested_holder();
            for _ in 0..2_000 {
                nested = with_state(&holder, &nested)[1..].to_vec();
            }
            nested.insert(0, dilly::VERSION);
            let err = measured(&nested, |bytes| {
                vec![(
                    "nested functions",
                    dilly::from_bytes::<Func<(u64,), u64>>(bytes).unwrap_err(),
                )]
            });
            assert_too_deep(err[0].0, &err[0].1);
        })
        .unwrap()
        .join()
        .unwrap();
}

/// A closure capturing a function value, encoded.
fn nested_holder() -> Vec<u8> {
    dilly::to_bytes(&dilly_fixture::apply_closure(dilly_fixture::double_value())).unwrap()
}

#[test]
fn deep_nesting_is_too_deep_on_an_ordinary_thread() {
    deep_cases(8 << 20);
}

#[test]
fn deep_nesting_is_too_deep_on_a_small_stack() {
    deep_cases(SMALL_STACK);
}

/// A small stack: a quarter of a spawned thread's default. In a debug build, 384 KiB
/// is not enough for 128 levels of functions inside functions.
const SMALL_STACK: usize = 512 << 10;

#[test]
fn the_deepest_accepted_value_decodes_on_a_small_stack() {
    std::thread::Builder::new()
        .stack_size(SMALL_STACK)
        .spawn(|| {
            // The function value's tuple, the closure's state struct, 125 nodes
            // and the leaf: 128 levels.
            let f = dilly_fixture::tree_closure(Tree::chain(125, "x"));
            let bytes = dilly::to_bytes(&f).unwrap();
            let g: Func<(u64,), u64> = dilly::from_bytes(&bytes).unwrap();
            assert_eq!(g.call((1,)), 126);
            let f = dilly_fixture::tree_closure(Tree::chain(126, "x"));
            let err =
                dilly::from_bytes::<Func<(u64,), u64>>(&dilly::to_bytes(&f).unwrap()).unwrap_err();
            assert!(matches!(err, Error::TooDeep { .. }), "{err:?}");
        })
        .unwrap()
        .join()
        .unwrap();
}
