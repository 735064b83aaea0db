//! The table of serde data-model cases that `tests/serde_model.rs` and the
//! Redis round trip in `redis/tests/serde_model.rs` both run: values that
//! serde_json round-trips (and composite map keys, which JSON cannot write).
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Row {
    pub(crate) id: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Middle {
    pub(crate) a: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) b: Option<u32>,
    pub(crate) c: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Skipped {
    pub(crate) kept: u8,
    #[serde(skip)]
    pub(crate) cache: Vec<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Tags {
    pub(crate) name: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) tags: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct Defaults {
    pub(crate) retries: u32,
    pub(crate) label: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Inner {
    pub(crate) x: i32,
    pub(crate) y: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct FlatStruct {
    pub(crate) id: u64,
    #[serde(flatten)]
    pub(crate) inner: Inner,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct FlatMap {
    pub(crate) id: u64,
    #[serde(flatten)]
    pub(crate) rest: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct FlatOption {
    pub(crate) id: u64,
    #[serde(flatten)]
    pub(crate) inner: Option<Inner>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub(crate) enum Untagged {
    Num(u64),
    Text(String),
    Pair { a: bool, b: Vec<i8> },
    Keys(BTreeMap<(u8, u8), String>),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub(crate) enum Internal {
    Point { x: i64, y: i64 },
    Wrapped(Inner),
    Empty,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t", content = "c")]
pub(crate) enum Adjacent {
    Num(u64),
    Pair(String, bool),
    Named { z: f64 },
    Unit,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) enum WithUntaggedVariant {
    Known(u8),
    #[serde(untagged)]
    Other(String),
}

pub(crate) mod as_text {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(n: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(n)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct WithModules {
    #[serde(with = "as_text")]
    pub(crate) count: u64,
    #[serde(serialize_with = "as_bytes", deserialize_with = "from_bytes")]
    pub(crate) blob: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Renamed {
    pub(crate) first_name: String,
    #[serde(rename = "LAST")]
    pub(crate) last_name: String,
    #[serde(alias = "years")]
    pub(crate) age_years: u8,
    pub(crate) kind: RenamedKind,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub(crate) enum RenamedKind {
    FirstKind,
    SecondKind { inner_value: u8 },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub(crate) struct Meters(pub(crate) f64);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Strict {
    pub(crate) a: u8,
    pub(crate) b: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub(crate) struct Email(pub(crate) String);

impl TryFrom<String> for Email {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        if s.contains('@') {
            Ok(Email(s))
        } else {
            Err(format!("{s} is not an email address"))
        }
    }
}

impl From<Email> for String {
    fn from(e: Email) -> String {
        e.0
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) enum Tree {
    Leaf(u64),
    Node(Box<Tree>, Box<Tree>),
}

pub(crate) fn tree(depth: u32) -> Tree {
    if depth == 0 {
        Tree::Leaf(7)
    } else {
        Tree::Node(
            Box::new(tree(depth - 1)),
            Box::new(Tree::Leaf(u64::from(depth))),
        )
    }
}

pub(crate) fn nested_json(depth: u32) -> serde_json::Value {
    (0..depth).fold(serde_json::json!(1), |v, _| serde_json::json!([v]))
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) enum VariantSkip {
    V {
        a: u8,
        #[serde(skip_serializing_if = "Option::is_none")]
        b: Option<u8>,
    },
}

/// A field never written (`skip_serializing`) but read back as `None`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct WriteOnlyOption {
    pub(crate) id: u64,
    #[serde(skip_serializing)]
    pub(crate) secret: Option<String>,
    pub(crate) tail: String,
}

/// A field never written (`skip_serializing`) but read back as its default, last.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct WriteOnlyDefault {
    pub(crate) name: String,
    #[serde(skip_serializing, default)]
    pub(crate) hits: u32,
}

/// `skip_serializing` on a struct variant's field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) enum WriteOnlyVariant {
    Plain(u8),
    Named {
        a: u8,
        #[serde(skip_serializing, default)]
        cached: Vec<u64>,
        z: i16,
    },
}

/// A field written but never read (`skip_deserializing`, so `Deserialize` reads
/// one field fewer than `Serialize` writes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ReadOnlyDefault {
    pub(crate) a: u8,
    #[serde(skip_deserializing)]
    pub(crate) derived: u32,
    pub(crate) b: String,
}

/// `skip_serializing` in a recursive type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) enum Branches {
    Leaf,
    Fork {
        kids: Vec<Branches>,
        #[serde(skip_serializing, default)]
        cache: Option<u64>,
    },
}

/// `skip_serializing` in a tuple struct and a tuple variant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct WriteOnlyPair(
    pub(crate) u8,
    #[serde(skip_serializing, default)] pub(crate) Option<String>,
);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) enum WriteOnlyTuple {
    Pair(u8, #[serde(skip_serializing, default)] u32),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Generic<T> {
    pub(crate) items: Vec<T>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) first: Option<T>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Everyday {
    pub(crate) unit: (),
    pub(crate) tuple: (u8, String, [u16; 2]),
    pub(crate) set: BTreeSet<char>,
    pub(crate) map: HashMap<String, Vec<Option<bool>>>,
    pub(crate) float: f32,
}

pub(crate) fn as_bytes<S: serde::Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_bytes(b)
}

pub(crate) fn from_bytes<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    struct V;
    impl<'de> serde::de::Visitor<'de> for V {
        type Value = Vec<u8>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("bytes")
        }
        fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
            Ok(v.to_vec())
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
            let mut out = Vec::new();
            while let Some(b) = seq.next_element()? {
                out.push(b);
            }
            Ok(out)
        }
    }
    d.deserialize_bytes(V)
}

/// Calls `$cb!($arg, name, Type, value)` for every case, collecting the results
/// in a `Vec`.
macro_rules! serde_cases {
    ($cb:ident, $arg:expr) => {{
        use std::borrow::Cow;
        use std::collections::{BTreeMap, BTreeSet, HashMap};
        use std::net::{IpAddr, Ipv6Addr, SocketAddr};
        use std::path::PathBuf;
        use std::time::Duration;
        use $crate::serde_cases::*;
        vec![
            $cb!($arg, "skip_serializing_if None", Row, Row { id: 2, note: None }),
            $cb!($arg, "skip_serializing_if Some", Row, Row { id: 2, note: Some("n".into()) }),
            $cb!($arg, "skip_serializing_if None, middle field", Middle, Middle { a: 1, b: None, c: "z".into() }),
            $cb!($arg, "skip_serializing_if on a variant field", VariantSkip, VariantSkip::V { a: 1, b: None }),
            $cb!($arg, "skip_serializing_if in a generic struct", Generic<u16>, Generic { items: vec![1, 2], first: None }),
            $cb!($arg, "skip_serializing, Option in a middle field", WriteOnlyOption, WriteOnlyOption { id: 4, secret: None, tail: "t".into() }),
            $cb!($arg, "skip_serializing + default, last field", WriteOnlyDefault, WriteOnlyDefault { name: "n".into(), hits: 0 }),
            $cb!($arg, "skip_serializing in a Vec", Vec<WriteOnlyOption>, vec![WriteOnlyOption { id: 1, secret: None, tail: "a".into() }, WriteOnlyOption { id: 2, secret: None, tail: "b".into() }]),
            $cb!($arg, "skip_serializing in an Option", Option<WriteOnlyOption>, Some(WriteOnlyOption { id: 1, secret: None, tail: "a".into() })),
            $cb!($arg, "skip_serializing in a map value", BTreeMap<String, WriteOnlyDefault>, BTreeMap::from([("k".into(), WriteOnlyDefault { name: "n".into(), hits: 0 })])),
            $cb!($arg, "skip_serializing in a recursive enum", Branches, Branches::Fork { kids: vec![Branches::Leaf, Branches::Fork { kids: vec![], cache: None }], cache: None }),
            $cb!($arg, "skip_serializing in a struct variant", WriteOnlyVariant, WriteOnlyVariant::Named { a: 1, cached: Vec::new(), z: -2 }),
            $cb!($arg, "skip_serializing in an enum, other variant", WriteOnlyVariant, WriteOnlyVariant::Plain(9)),
            $cb!($arg, "skip_serializing in a tuple struct", WriteOnlyPair, WriteOnlyPair(3, None)),
            $cb!($arg, "skip_serializing in a tuple variant", WriteOnlyTuple, WriteOnlyTuple::Pair(3, 0)),
            $cb!($arg, "skip_deserializing + default, middle field", ReadOnlyDefault, ReadOnlyDefault { a: 1, derived: 0, b: "b".into() }),
            $cb!($arg, "skip + default", Skipped, Skipped { kept: 3, cache: Vec::new() }),
            $cb!($arg, "default + skip_serializing_if Vec::is_empty", Tags, Tags { name: "t".into(), tags: vec![] }),
            $cb!($arg, "default + skip_serializing_if, present", Tags, Tags { name: "t".into(), tags: vec!["a".into()] }),
            $cb!($arg, "container default", Defaults, Defaults { retries: 3, label: "l".into() }),
            $cb!($arg, "flatten of a struct", FlatStruct, FlatStruct { id: 1, inner: Inner { x: -4, y: "y".into() } }),
            $cb!($arg, "flatten of a map", FlatMap, FlatMap { id: 1, rest: BTreeMap::from([("k".into(), 9), ("l".into(), 300)]) }),
            $cb!($arg, "flatten of an Option (Some)", FlatOption, FlatOption { id: 1, inner: Some(Inner { x: 1, y: "y".into() }) }),
            $cb!($arg, "flatten of an Option (None)", FlatOption, FlatOption { id: 1, inner: None }),
            $cb!($arg, "untagged enum, number", Untagged, Untagged::Num(5)),
            $cb!($arg, "untagged enum, string", Untagged, Untagged::Text("t".into())),
            $cb!($arg, "untagged enum, struct", Untagged, Untagged::Pair { a: true, b: vec![-1, 2] }),
            $cb!($arg, "internally tagged, struct variant", Internal, Internal::Point { x: -3, y: 4 }),
            $cb!($arg, "internally tagged, newtype variant", Internal, Internal::Wrapped(Inner { x: 0, y: "w".into() })),
            $cb!($arg, "internally tagged, unit variant", Internal, Internal::Empty),
            $cb!($arg, "adjacently tagged, newtype", Adjacent, Adjacent::Num(300)),
            $cb!($arg, "adjacently tagged, tuple", Adjacent, Adjacent::Pair("p".into(), false)),
            $cb!($arg, "adjacently tagged, struct", Adjacent, Adjacent::Named { z: 1.5 }),
            $cb!($arg, "adjacently tagged, unit", Adjacent, Adjacent::Unit),
            $cb!($arg, "untagged variant, known", WithUntaggedVariant, WithUntaggedVariant::Known(4)),
            $cb!($arg, "untagged variant, other", WithUntaggedVariant, WithUntaggedVariant::Other("o".into())),
            $cb!($arg, "serde_json::Value", serde_json::Value, serde_json::json!({"a": [1, -2, 2.5, null, true, "s"], "b": {"c": {}}})),
            $cb!($arg, "Option<serde_json::Value>", Option<serde_json::Value>, Some(serde_json::json!(["x", 1]))),
            $cb!($arg, "with = modules", WithModules, WithModules { count: 12345, blob: vec![0, 255, 7] }),
            $cb!($arg, "rename_all, rename, alias", Renamed, Renamed { first_name: "a".into(), last_name: "b".into(), age_years: 9, kind: RenamedKind::SecondKind { inner_value: 2 } }),
            $cb!($arg, "transparent", Meters, Meters(2.5)),
            $cb!($arg, "deny_unknown_fields", Strict, Strict { a: 1, b: None }),
            $cb!($arg, "try_from / into", Email, Email("a@b".into())),
            $cb!($arg, "Cow<str>", Cow<'static, str>, Cow::Owned("cow".into())),
            $cb!($arg, "i128 and u128", (i128, u128), (i128::MIN, u128::MAX)),
            $cb!($arg, "char", (char, char), ('a', '\u{1F600}')),
            $cb!($arg, "Option<Option<T>> None", Option<Option<u64>>, None),
            $cb!($arg, "Option<Option<T>> Some(Some)", Option<Option<u64>>, Some(Some(3))),
            $cb!($arg, "composite map keys", BTreeMap<(u32, String), Vec<u8>>, BTreeMap::from([((1, "a".into()), vec![1]), ((2, "b".into()), vec![])])),
            $cb!($arg, "composite keys inside an untagged enum", Untagged, Untagged::Keys(BTreeMap::from([((1, 2), "v".into())]))),
            $cb!($arg, "Duration", Duration, Duration::new(5, 123_456_789)),
            $cb!($arg, "SocketAddr v4", SocketAddr, "127.0.0.1:8080".parse().unwrap()),
            $cb!($arg, "SocketAddr v6", SocketAddr, "[::1]:9".parse().unwrap()),
            $cb!($arg, "IpAddr", IpAddr, IpAddr::V6(Ipv6Addr::LOCALHOST)),
            $cb!($arg, "PathBuf", PathBuf, PathBuf::from("/tmp/some dir/file.txt")),
            $cb!($arg, "deep recursive enum", Tree, tree(40)),
            $cb!($arg, "deep serde_json::Value", serde_json::Value, nested_json(40)),
            $cb!($arg, "everyday std types", Everyday, Everyday { unit: (), tuple: (1, "t".into(), [2, 3]), set: BTreeSet::from(['x', 'y']), map: HashMap::from([("k".into(), vec![Some(true), None])]), float: 0.5 }),
        ]
    }};
}
