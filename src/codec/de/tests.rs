//! This reader against bincode's own, on bincode's encodings of many types and
//! on arbitrary and mutated bytes: it reads back every value bincode wrote, and
//! never accepts bytes bincode refuses, nor reads them as another value.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;

use proptest::prelude::*;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::*;

const DEPTH: Depth = Depth {
    left: 128,
    limit: 128,
};

fn ours<T: DeserializeOwned>(bytes: &[u8]) -> Result<(T, usize), DeError> {
    let mut de = Deserializer::new(bytes, DEPTH);
    let value = T::deserialize(&mut de)?;
    Ok((value, bytes.len() - de.rest().len()))
}

fn theirs<T: DeserializeOwned>(bytes: &[u8]) -> Option<(T, usize)> {
    // A small limit keeps bincode from allocating what mutated lengths claim.
    let config = bincode::config::standard().with_limit::<{ 1 << 20 }>();
    bincode::serde::decode_from_slice(bytes, config).ok()
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    bincode::serde::encode_to_vec(value, bincode::config::standard()).unwrap()
}

/// Values are compared by their `Debug` text, so that a NaN equals itself.
fn same<T: Debug>(a: &T, b: &T) -> bool {
    format!("{a:?}") == format!("{b:?}")
}

/// Decodes `bytes` with both readers: if this one succeeds, bincode must too,
/// with the same value and the same number of bytes used.
fn agree<T: DeserializeOwned + Debug>(bytes: &[u8]) -> Result<(), TestCaseError> {
    if let Ok((value, used)) = ours::<T>(bytes) {
        let Some((expected, expected_used)) = theirs::<T>(bytes) else {
            return Err(TestCaseError::fail(format!(
                "accepted {bytes:?} as {value:?}, which bincode refuses"
            )));
        };
        prop_assert!(same(&value, &expected), "{value:?} != {expected:?}");
        prop_assert_eq!(used, expected_used);
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Kind {
    Unit,
    Newtype(i16),
    Tuple(u16, char),
    Struct { flag: bool, name: String },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Unit;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Wrapper(u32);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Tree {
    Leaf(u8),
    Node(Box<Tree>, Box<Tree>),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Everything {
    a: u8,
    b: u16,
    c: u32,
    d: u64,
    e: u128,
    f: i8,
    g: i16,
    h: i32,
    i: i64,
    j: i128,
    k: f32,
    l: f64,
    m: bool,
    n: char,
    o: String,
    p: Vec<u8>,
    #[serde(with = "serde_bytes")]
    q: Vec<u8>,
    r: Option<Box<Everything>>,
    s: (u8, Option<i64>, Unit),
    t: Vec<Kind>,
    u: BTreeMap<String, Vec<u32>>,
    v: Wrapper,
    w: usize,
    x: isize,
    y: (),
    z: Tree,
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        Just(Kind::Unit),
        any::<i16>().prop_map(Kind::Newtype),
        (any::<u16>(), any::<char>()).prop_map(|(a, b)| Kind::Tuple(a, b)),
        (any::<bool>(), ".{0,12}").prop_map(|(flag, name)| Kind::Struct { flag, name }),
    ]
}

fn tree() -> impl Strategy<Value = Tree> {
    any::<u8>()
        .prop_map(Tree::Leaf)
        .prop_recursive(6, 32, 2, |inner| {
            (inner.clone(), inner).prop_map(|(a, b)| Tree::Node(Box::new(a), Box::new(b)))
        })
}

/// Integers near the varint's marker boundaries as often as anywhere else.
fn wide_u64() -> impl Strategy<Value = u64> {
    prop_oneof![
        any::<u64>(),
        0u64..300,
        prop::sample::select(vec![
            250,
            251,
            u64::from(u16::MAX),
            1 << 16,
            u64::from(u32::MAX),
            1 << 32,
            u64::MAX
        ]),
    ]
}

fn flat() -> impl Strategy<Value = Everything> {
    (
        (
            any::<u8>(),
            any::<u16>(),
            any::<u32>(),
            wide_u64(),
            any::<u128>(),
            any::<i8>(),
            any::<i16>(),
            any::<i32>(),
            any::<i64>(),
            any::<i128>(),
        ),
        (
            any::<f32>(),
            any::<f64>(),
            any::<bool>(),
            any::<char>(),
            ".{0,40}",
            prop::collection::vec(any::<u8>(), 0..300),
            prop::collection::vec(any::<u8>(), 0..300),
        ),
        (
            (any::<u8>(), any::<Option<i64>>()),
            prop::collection::vec(kind(), 0..5),
            prop::collection::btree_map(".{0,5}", prop::collection::vec(any::<u32>(), 0..4), 0..4),
            any::<u32>(),
            any::<usize>(),
            any::<isize>(),
            tree(),
        ),
    )
        .prop_map(
            |((a, b, c, d, e, f, g, h, i, j), (k, l, m, n, o, p, q), (s, t, u, v, w, x, z))| {
                Everything {
                    a,
                    b,
                    c,
                    d,
                    e,
                    f,
                    g,
                    h,
                    i,
                    j,
                    k,
                    l,
                    m,
                    n,
                    o,
                    p,
                    q,
                    r: None,
                    s: (s.0, s.1, Unit),
                    t,
                    u,
                    v: Wrapper(v),
                    w,
                    x,
                    y: (),
                    z,
                }
            },
        )
}

fn everything() -> impl Strategy<Value = Everything> {
    (flat(), prop::option::of(flat())).prop_map(|(mut outer, inner)| {
        outer.r = inner.map(Box::new);
        outer
    })
}

fn mutate(bytes: &mut Vec<u8>, edits: &[(usize, u8, u8)]) {
    for &(at, op, value) in edits {
        if bytes.is_empty() {
            return;
        }
        let at = at % bytes.len();
        match op % 4 {
            0 => bytes[at] = value,
            1 => bytes[at] ^= 1 << (value % 8),
            2 => bytes.truncate(at),
            _ => bytes.insert(at, value),
        }
    }
}

proptest! {
    // 512 cases each unless PROPTEST_CASES says otherwise.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(512),
        ..ProptestConfig::default()
    })]

    #[test]
    fn reads_back_what_bincode_wrote(value in everything()) {
        let bytes = encode(&value);
        let (back, used) = ours::<Everything>(&bytes).unwrap();
        prop_assert!(same(&back, &value));
        prop_assert_eq!(used, bytes.len());
        // Every strict prefix is truncated, as bincode says too.
        for cut in [0, bytes.len() / 3, bytes.len() / 2, bytes.len() - 1] {
            let truncated = matches!(ours::<Everything>(&bytes[..cut]), Err(DeError::Truncated { .. }));
            prop_assert!(truncated, "a prefix of {} bytes", cut);
            prop_assert!(theirs::<Everything>(&bytes[..cut]).is_none());
        }
    }

    #[test]
    fn reads_back_maps_and_sequences(
        map in prop::collection::hash_map(".{0,8}", any::<u64>(), 0..20),
        nested in prop::collection::vec(prop::collection::vec(".{0,4}", 0..4), 0..6),
        words in prop::collection::vec(any::<String>(), 0..6),
    ) {
        let value = (map, nested, words);
        let bytes = encode(&value);
        let (back, used) = ours::<(HashMap<String, u64>, Vec<Vec<String>>, Vec<String>)>(&bytes).unwrap();
        prop_assert_eq!(back, value);
        prop_assert_eq!(used, bytes.len());
    }

    #[test]
    fn never_accepts_what_bincode_refuses(
        value in everything(),
        edits in prop::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 1..5),
    ) {
        let mut bytes = encode(&value);
        mutate(&mut bytes, &edits);
        agree::<Everything>(&bytes)?;
        agree::<Kind>(&bytes)?;
        agree::<Tree>(&bytes)?;
        agree::<(String, Vec<u64>, Option<char>)>(&bytes)?;
        agree::<HashMap<u16, (i32, bool)>>(&bytes)?;
    }

    #[test]
    fn agrees_with_bincode_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        agree::<Everything>(&bytes)?;
        agree::<Kind>(&bytes)?;
        agree::<Tree>(&bytes)?;
        agree::<(u16, u32, u64, u128, i16, i32, i64, i128)>(&bytes)?;
        agree::<(char, char, f32, f64, bool)>(&bytes)?;
        agree::<(String, serde_bytes::ByteBuf, Vec<u16>)>(&bytes)?;
        agree::<BTreeMap<i64, Option<String>>>(&bytes)?;
    }
}

#[test]
fn a_length_claim_beyond_the_input_is_truncated_before_allocating() {
    // A string claiming 2^60 bytes, with 3 bytes behind the claim.
    let mut bytes = vec![U64_BYTE];
    bytes.extend_from_slice(&(1u64 << 60).to_le_bytes());
    bytes.extend_from_slice(b"abc");
    for result in [
        ours::<String>(&bytes).map(drop),
        ours::<serde_bytes::ByteBuf>(&bytes).map(drop),
        ours::<Vec<u8>>(&bytes).map(drop),
        ours::<HashMap<u8, u8>>(&bytes).map(drop),
    ] {
        assert!(
            matches!(
                result,
                Err(DeError::Truncated {
                    needed: 0x1000_0000_0000_0000,
                    available: 3
                })
            ),
            "{result:?}"
        );
    }
}

#[test]
fn nesting_past_the_budget_is_too_deep() {
    let mut tree = Tree::Leaf(1);
    for _ in 0..200 {
        tree = Tree::Node(Box::new(tree), Box::new(Tree::Leaf(0)));
    }
    let bytes = encode(&tree);
    let err = ours::<Tree>(&bytes).unwrap_err();
    assert!(matches!(err, DeError::TooDeep { limit: 128 }), "{err:?}");
    // Each node is two levels (the enum, its tuple variant), the leaf one.
    let budget = |n| Depth { left: n, limit: n };
    let mut de = Deserializer::new(&bytes, budget(401));
    assert_eq!(Tree::deserialize(&mut de).unwrap(), tree);
    let mut de = Deserializer::new(&bytes, budget(400));
    let err = Tree::deserialize(&mut de).unwrap_err();
    assert!(matches!(err, DeError::TooDeep { limit: 400 }), "{err:?}");
}

#[test]
fn self_describing_requests_are_refused() {
    let err = ours::<serde_json::Value>(&[0]).unwrap_err();
    assert!(matches!(err, DeError::Message(_)), "{err:?}");
}
