//! Hostile input: random and mutated bytes fed to every decoder. Each must return
//! an error or a value — never panic, never allocate what the input merely claims.

use dilly::{CallFrame, Func, Limits, Object, bind};
use dilly_fixture::Transformer;
use proptest::prelude::*;

fn valid_payloads() -> Vec<Vec<u8>> {
    let t = Transformer {
        factor: 2,
        label: "t".into(),
    };
    let method = bind!(t.process_data);
    let names = vec!["alpha".to_string(), "beta".into()];
    let closure = dilly_fixture::counting_closure(names, 10);
    let weights = std::collections::HashMap::from([("k".to_string(), 1u64)]);
    let struct_closure = dilly_fixture::struct_closure(t.clone(), weights);
    let args = method.encode_args(&(3, 7)).unwrap();
    vec![
        dilly::to_bytes(&dilly_fixture::double_value()).unwrap(),
        dilly::to_bytes(&method).unwrap(),
        dilly::to_bytes(&closure).unwrap(),
        dilly::to_bytes(&struct_closure).unwrap(),
        dilly::to_bytes(&(Box::new(dilly_fixture::Point { x: 1, y: 2 }) as Box<dyn Object>))
            .unwrap(),
        CallFrame {
            id: method.id(),
            fingerprint: method.fingerprint(),
            shape: method.shape(),
            state: method.state(),
            args: &args,
        }
        .encode()
        .unwrap(),
    ]
}

/// Runs every decoder on `bytes`; each may fail but none may panic. Decoded
/// functions are called, since state and arguments are decoded lazily there.
fn decode_everything(bytes: &[u8]) {
    if let Ok(f) = dilly::from_bytes::<Func<(u64,), u64>>(bytes) {
        let _ = f.erased().call_bytes(&[21]);
    }
    if let Ok(f) = dilly::from_bytes::<Func<(u64, u64), u64>>(bytes) {
        let _ = f.erased().call_bytes(&[3, 7]);
    }
    let _ = dilly::from_bytes::<Func<(String, u64), u64>>(bytes);
    let _ = dilly::from_bytes::<Box<dyn Object>>(bytes);
    let _ = dilly::from_bytes::<Vec<Box<dyn Object>>>(bytes);
    if let Ok(frame) = CallFrame::decode(bytes, Limits::DEFAULT)
        && let Ok(entry) =
            dilly::registry::lookup_callable(frame.id, frame.fingerprint, frame.shape)
        && let Ok(f) = entry.prepare(frame.state)
    {
        let _ = f.call_bytes(frame.args);
    }
    if let Ok(text) = std::str::from_utf8(bytes) {
        let _ = serde_json::from_str::<Func<(u64,), u64>>(text);
        let _ = serde_json::from_str::<Box<dyn Object>>(text);
    }
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip { at: usize, bit: u8 },
    Set { at: usize, value: u8 },
    Truncate { len: usize },
    Insert { at: usize, value: u8 },
    Remove { at: usize },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(at, bit)| Mutation::Flip { at, bit }),
        (any::<usize>(), any::<u8>()).prop_map(|(at, value)| Mutation::Set { at, value }),
        any::<usize>().prop_map(|len| Mutation::Truncate { len }),
        (any::<usize>(), any::<u8>()).prop_map(|(at, value)| Mutation::Insert { at, value }),
        any::<usize>().prop_map(|at| Mutation::Remove { at }),
    ]
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    if bytes.is_empty() {
        return;
    }
    let n = bytes.len();
    match *m {
        Mutation::Flip { at, bit } => bytes[at % n] ^= 1 << bit,
        Mutation::Set { at, value } => bytes[at % n] = value,
        Mutation::Truncate { len } => bytes.truncate(len % n),
        Mutation::Insert { at, value } => bytes.insert(at % (n + 1), value),
        Mutation::Remove { at } => {
            bytes.remove(at % n);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..96)) {
        decode_everything(&bytes);
        let mut versioned = vec![dilly::VERSION];
        versioned.extend_from_slice(&bytes);
        decode_everything(&versioned);
    }

    #[test]
    fn mutated_valid_payloads_never_panic(
        which in 0usize..6,
        mutations in proptest::collection::vec(mutation(), 1..4),
    ) {
        let mut bytes = valid_payloads().swap_remove(which);
        for m in &mutations {
            apply(&mut bytes, m);
        }
        decode_everything(&bytes);
    }
}

#[test]
fn huge_claimed_lengths_are_refused_without_allocating() {
    // A closure whose state claims a Vec of 2^60 strings.
    let closure = dilly_fixture::counting_closure(vec![], 1);
    let mut bytes = dilly::to_bytes(&closure).unwrap();
    // Replace the state: length-prefixed bytes holding a varint 2^60 vec length.
    let state_start = 1 + 1 + 24; // version, header length, header
    bytes.truncate(state_start);
    let hostile_state = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0x10, 10];
    bytes.push(hostile_state.len() as u8);
    bytes.extend_from_slice(&hostile_state);
    let err = dilly::from_bytes::<Func<(u64,), u64>>(&bytes).unwrap_err();
    assert!(err.is_bad_input(), "{err}");

    // A frame claiming a 4 GiB state.
    let mut frame = vec![dilly::VERSION];
    frame.extend_from_slice(&[0; 24]);
    frame.extend_from_slice(&u32::MAX.to_le_bytes());
    let err = CallFrame::decode(&frame, Limits::DEFAULT).unwrap_err();
    assert!(matches!(err, dilly::Error::TooLarge { .. }), "{err}");
}

#[test]
fn every_prefix_of_every_valid_payload_is_an_error_not_a_panic() {
    for payload in valid_payloads() {
        for cut in 0..payload.len() {
            decode_everything(&payload[..cut]);
            assert!(
                dilly::from_bytes::<Func<(u64,), u64>>(&payload[..cut]).is_err(),
                "a strict prefix must not decode"
            );
        }
    }
}

#[test]
fn a_truncated_object_is_truncated_with_one_message() {
    let value: Box<dyn Object> = Box::new(dilly_fixture::Tree::chain(2, "leaf"));
    let bytes = dilly::to_bytes(&value).unwrap();
    // Every cut after the type ID falls inside the value, read through erased-serde.
    for cut in 11..bytes.len() {
        let err = dilly::from_bytes::<Box<dyn Object>>(&bytes[..cut]).unwrap_err();
        assert!(
            matches!(&err, dilly::Error::Truncated { what, .. } if what == "value"),
            "cut at {cut}: {err:?}"
        );
        let message = err.to_string();
        assert_eq!(message.matches("truncated").count(), 1, "{message}");
    }
}

#[test]
fn nesting_past_the_limit_is_too_deep_in_every_readable_place() {
    let limits = Limits::DEFAULT.with_max_depth(8);
    let tree = dilly_fixture::Tree::chain(20, "x");
    let closure = dilly::to_bytes(&dilly_fixture::tree_closure(tree.clone())).unwrap();
    let err = dilly::from_bytes_with_limits::<Func<(u64,), u64>>(&closure, limits).unwrap_err();
    assert!(
        matches!(err, dilly::Error::TooDeep { limit: 8, .. }),
        "{err:?}"
    );
    let method = dilly::to_bytes(&bind!(tree.depth)).unwrap();
    let err = dilly::from_bytes_with_limits::<Func<(u64,), u64>>(&method, limits).unwrap_err();
    assert!(
        matches!(err, dilly::Error::TooDeep { limit: 8, .. }),
        "{err:?}"
    );
    let object = dilly::to_bytes(&(Box::new(tree) as Box<dyn Object>)).unwrap();
    let err = dilly::from_bytes_with_limits::<Box<dyn Object>>(&object, limits).unwrap_err();
    assert!(
        matches!(err, dilly::Error::TooDeep { limit: 8, .. }),
        "{err:?}"
    );
    assert!(err.is_bad_input());
    // The default limit decodes all three.
    assert!(dilly::from_bytes::<Func<(u64,), u64>>(&closure).is_ok());
    assert!(dilly::from_bytes::<Func<(u64,), u64>>(&method).is_ok());
    assert!(dilly::from_bytes::<Box<dyn Object>>(&object).is_ok());
}
