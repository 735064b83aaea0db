//! The serde data model through dilly: every case below is a value that serde_json
//! round-trips (or a case serde_json cannot write that dilly's compact format can),
//! and each travels through `to_bytes`/`from_bytes`, as a closure's captured state,
//! and as the argument, captured state and result of a real process pool's `map`.
//!
//! Run with `--nocapture` to print each case's size against serde_json's.

#![allow(dead_code)]

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Debug;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use dilly::{Func, closure};
use dilly_pool::{Executor, ProcessPool};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Row {
    id: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Middle {
    a: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    b: Option<u32>,
    c: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Skipped {
    kept: u8,
    #[serde(skip)]
    cache: Vec<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Tags {
    name: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    tags: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
struct Defaults {
    retries: u32,
    label: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Inner {
    x: i32,
    y: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct FlatStruct {
    id: u64,
    #[serde(flatten)]
    inner: Inner,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct FlatMap {
    id: u64,
    #[serde(flatten)]
    rest: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct FlatOption {
    id: u64,
    #[serde(flatten)]
    inner: Option<Inner>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
enum Untagged {
    Num(u64),
    Text(String),
    Pair { a: bool, b: Vec<i8> },
    Keys(BTreeMap<(u8, u8), String>),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
enum Internal {
    Point { x: i64, y: i64 },
    Wrapped(Inner),
    Empty,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t", content = "c")]
enum Adjacent {
    Num(u64),
    Pair(String, bool),
    Named { z: f64 },
    Unit,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum WithUntaggedVariant {
    Known(u8),
    #[serde(untagged)]
    Other(String),
}

mod as_text {
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
struct WithModules {
    #[serde(with = "as_text")]
    count: u64,
    #[serde(with = "serde_bytes")]
    blob: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Renamed {
    first_name: String,
    #[serde(rename = "LAST")]
    last_name: String,
    #[serde(alias = "years")]
    age_years: u8,
    kind: RenamedKind,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
enum RenamedKind {
    FirstKind,
    SecondKind { inner_value: u8 },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
struct Meters(f64);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Strict {
    a: u8,
    b: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
struct Email(String);

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
enum Tree {
    Leaf(u64),
    Node(Box<Tree>, Box<Tree>),
}

fn tree(depth: u32) -> Tree {
    if depth == 0 {
        Tree::Leaf(7)
    } else {
        Tree::Node(
            Box::new(tree(depth - 1)),
            Box::new(Tree::Leaf(u64::from(depth))),
        )
    }
}

fn nested_json(depth: u32) -> serde_json::Value {
    (0..depth).fold(serde_json::json!(1), |v, _| serde_json::json!([v]))
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum VariantSkip {
    V {
        a: u8,
        #[serde(skip_serializing_if = "Option::is_none")]
        b: Option<u8>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Generic<T> {
    items: Vec<T>,
    #[serde(skip_serializing_if = "Option::is_none")]
    first: Option<T>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Everyday {
    unit: (),
    tuple: (u8, String, [u16; 2]),
    set: BTreeSet<char>,
    map: HashMap<String, Vec<Option<bool>>>,
    float: f32,
}

/// What one case measured.
struct Outcome {
    name: &'static str,
    dilly: usize,
    json: Option<usize>,
    described: bool,
}

/// Runs one case through the codec, a closure capture and the pool.
fn run<T>(
    name: &'static str,
    value: T,
    pool: &ProcessPool,
    make: impl Fn(T) -> Func<(T,), (bool, T)>,
) -> Outcome
where
    T: Serialize + DeserializeOwned + PartialEq + Debug + Clone + Send + 'static,
{
    // The codec.
    let bytes = dilly::to_bytes(&value).unwrap_or_else(|e| panic!("{name}: to_bytes: {e}"));
    let back: T = dilly::from_bytes(&bytes).unwrap_or_else(|e| panic!("{name}: from_bytes: {e}"));
    assert_eq!(back, value, "{name}: through the codec");

    // A closure's captured state, sent as a whole function value.
    let f = make(value.clone());
    let sent = dilly::to_bytes(&f).unwrap_or_else(|e| panic!("{name}: closure to_bytes: {e}"));
    let g: Func<(T,), (bool, T)> =
        dilly::from_bytes(&sent).unwrap_or_else(|e| panic!("{name}: closure from_bytes: {e}"));
    assert_eq!(
        g.call((value.clone(),)),
        (true, value.clone()),
        "{name}: captured state"
    );

    // Argument, captured state and result through a worker process.
    let out = pool
        .map(&f, [value.clone(), value.clone()])
        .unwrap_or_else(|e| panic!("{name}: pool map: {e}"));
    assert_eq!(
        out,
        [(true, value.clone()), (true, value.clone())],
        "{name}: pool"
    );

    // serde_json, for comparison (composite map keys are not JSON).
    let json = serde_json::to_vec(&value).ok();
    if let Some(json) = &json {
        let back: T = serde_json::from_slice(json).unwrap();
        assert_eq!(
            back, value,
            "{name}: the case round-trips through serde_json"
        );
    }
    let body = &bytes[1..];
    Outcome {
        name,
        dilly: body.len(),
        json: json.map(|j| j.len()),
        described: body.starts_with(&[0xff, 0x01]),
    }
}

/// One case: a name, a type and a value; the closure is made for that type.
macro_rules! cases {
    ($pool:expr; $($name:literal : $ty:ty = $value:expr;)*) => {
        vec![$(
            run::<$ty>($name, $value, $pool, |v: $ty| {
                closure!([v: $ty] move |x: $ty| (x == v, v.clone()))
            }),
        )*]
    };
}

#[test]
fn every_case_travels_by_every_path() {
    let pool = ProcessPool::builder().workers(1).build().unwrap();
    let outcomes = cases! { &pool;
        "skip_serializing_if None": Row = Row { id: 2, note: None };
        "skip_serializing_if Some": Row = Row { id: 2, note: Some("n".into()) };
        "skip_serializing_if None, middle field": Middle = Middle { a: 1, b: None, c: "z".into() };
        "skip_serializing_if on a variant field": VariantSkip = VariantSkip::V { a: 1, b: None };
        "skip_serializing_if in a generic struct": Generic<u16> = Generic { items: vec![1, 2], first: None };
        "skip + default": Skipped = Skipped { kept: 3, cache: Vec::new() };
        "default + skip_serializing_if Vec::is_empty": Tags = Tags { name: "t".into(), tags: vec![] };
        "default + skip_serializing_if, present": Tags = Tags { name: "t".into(), tags: vec!["a".into()] };
        "container default": Defaults = Defaults { retries: 3, label: "l".into() };
        "flatten of a struct": FlatStruct = FlatStruct { id: 1, inner: Inner { x: -4, y: "y".into() } };
        "flatten of a map": FlatMap = FlatMap { id: 1, rest: BTreeMap::from([("k".into(), 9), ("l".into(), 300)]) };
        "flatten of an Option (Some)": FlatOption = FlatOption { id: 1, inner: Some(Inner { x: 1, y: "y".into() }) };
        "flatten of an Option (None)": FlatOption = FlatOption { id: 1, inner: None };
        "untagged enum, number": Untagged = Untagged::Num(5);
        "untagged enum, string": Untagged = Untagged::Text("t".into());
        "untagged enum, struct": Untagged = Untagged::Pair { a: true, b: vec![-1, 2] };
        "internally tagged, struct variant": Internal = Internal::Point { x: -3, y: 4 };
        "internally tagged, newtype variant": Internal = Internal::Wrapped(Inner { x: 0, y: "w".into() });
        "internally tagged, unit variant": Internal = Internal::Empty;
        "adjacently tagged, newtype": Adjacent = Adjacent::Num(300);
        "adjacently tagged, tuple": Adjacent = Adjacent::Pair("p".into(), false);
        "adjacently tagged, struct": Adjacent = Adjacent::Named { z: 1.5 };
        "adjacently tagged, unit": Adjacent = Adjacent::Unit;
        "untagged variant, known": WithUntaggedVariant = WithUntaggedVariant::Known(4);
        "untagged variant, other": WithUntaggedVariant = WithUntaggedVariant::Other("o".into());
        "serde_json::Value": serde_json::Value = serde_json::json!({"a": [1, -2, 2.5, null, true, "s"], "b": {"c": {}}});
        "Option<serde_json::Value>": Option<serde_json::Value> = Some(serde_json::json!(["x", 1]));
        "with = modules": WithModules = WithModules { count: 12345, blob: vec![0, 255, 7] };
        "rename_all, rename, alias": Renamed = Renamed { first_name: "a".into(), last_name: "b".into(), age_years: 9, kind: RenamedKind::SecondKind { inner_value: 2 } };
        "transparent": Meters = Meters(2.5);
        "deny_unknown_fields": Strict = Strict { a: 1, b: None };
        "try_from / into": Email = Email("a@b".into());
        "Cow<str>": Cow<'static, str> = Cow::Owned("cow".into());
        "i128 and u128": (i128, u128) = (i128::MIN, u128::MAX);
        "char": (char, char) = ('a', '\u{1F600}');
        "Option<Option<T>> None": Option<Option<u64>> = None;
        "Option<Option<T>> Some(Some)": Option<Option<u64>> = Some(Some(3));
        "composite map keys": BTreeMap<(u32, String), Vec<u8>> = BTreeMap::from([((1, "a".into()), vec![1]), ((2, "b".into()), vec![])]);
        "composite keys inside an untagged enum": Untagged = Untagged::Keys(BTreeMap::from([((1, 2), "v".into())]));
        "Duration": Duration = Duration::new(5, 123_456_789);
        "SocketAddr v4": SocketAddr = "127.0.0.1:8080".parse().unwrap();
        "SocketAddr v6": SocketAddr = "[::1]:9".parse().unwrap();
        "IpAddr": IpAddr = IpAddr::V6(Ipv6Addr::LOCALHOST);
        "PathBuf": PathBuf = PathBuf::from("/tmp/some dir/file.txt");
        "deep recursive enum": Tree = tree(40);
        "deep serde_json::Value": serde_json::Value = nested_json(40);
        "everyday std types": Everyday = Everyday { unit: (), tuple: (1, "t".into(), [2, 3]), set: BTreeSet::from(['x', 'y']), map: HashMap::from([("k".into(), vec![Some(true), None])]), float: 0.5 };
    };
    println!("{:<45} {:>6} {:>6}  encoding", "case", "dilly", "json");
    for o in &outcomes {
        let json = o.json.map_or("-".to_string(), |j| j.to_string());
        let how = if o.described {
            "self-described"
        } else {
            "compact"
        };
        println!("{:<45} {:>6} {:>6}  {how}", o.name, o.dilly, json);
    }
    // A self-described value costs at most what serde_json writes for it, plus the
    // two-byte mark; floats are the exception CBOR cannot help (a short decimal is
    // shorter as text), so the cases with floats are left out of the comparison.
    for o in outcomes.iter().filter(|o| o.described) {
        if let Some(json) = o.json
            && !o.name.contains("float")
        {
            assert!(
                o.dilly <= json + 2,
                "{}: {} bytes, serde_json {json}",
                o.name,
                o.dilly
            );
        }
    }
    // Types that need none of this stay compact.
    for name in [
        "skip_serializing_if Some",
        "Duration",
        "deep recursive enum",
        "char",
    ] {
        let o = outcomes.iter().find(|o| o.name == name).unwrap();
        assert!(!o.described, "{name} is compact");
    }
}

#[test]
fn some_none_inside_a_compact_value_is_kept() {
    // serde_json writes `Some(None)` as `null` and reads it back as `None`; the
    // compact format keeps it.
    let value: Option<Option<u64>> = Some(None);
    let bytes = dilly::to_bytes(&value).unwrap();
    assert_eq!(
        dilly::from_bytes::<Option<Option<u64>>>(&bytes).unwrap(),
        value
    );
}

/// A registered type whose values need a self-describing format, and one that
/// needs it only for some values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, dilly::Dilly)]
struct Labelled {
    label: Untagged,
    #[serde(flatten)]
    extra: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, dilly::Dilly)]
struct Sparse {
    id: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    note: Option<String>,
}

#[dilly::methods]
impl Labelled {
    fn describe(&self, n: u64) -> (Untagged, u64) {
        (self.label.clone(), n + self.extra.values().sum::<u64>())
    }
}

#[dilly::methods]
impl Sparse {
    fn note_or(&self, fallback: String) -> String {
        self.note.clone().unwrap_or(fallback)
    }
}

fn labelled() -> Labelled {
    Labelled {
        label: Untagged::Pair {
            a: true,
            b: vec![3],
        },
        extra: BTreeMap::from([("k".into(), 2)]),
    }
}

#[test]
fn objects_of_either_kind_travel_alone_and_among_compact_ones() {
    use dilly::Object;
    let values: Vec<Box<dyn Object>> = vec![
        Box::new(labelled()),
        Box::new(Sparse { id: 1, note: None }),
        Box::new(Sparse {
            id: 2,
            note: Some("n".into()),
        }),
    ];
    let bytes = dilly::to_bytes(&values).unwrap();
    let back: Vec<Box<dyn Object>> = dilly::from_bytes(&bytes).unwrap();
    assert_eq!(back[0].downcast_ref::<Labelled>(), Some(&labelled()));
    assert_eq!(
        back[1].downcast_ref::<Sparse>(),
        Some(&Sparse { id: 1, note: None })
    );
    assert_eq!(
        back[2].downcast_ref::<Sparse>(),
        Some(&Sparse {
            id: 2,
            note: Some("n".into())
        })
    );
    // Alone, a compact object stays compact.
    let one: Box<dyn Object> = Box::new(Sparse {
        id: 2,
        note: Some("n".into()),
    });
    assert_ne!(dilly::to_bytes(&one).unwrap()[1], 0xff);
}

#[test]
fn bound_methods_carry_receivers_that_need_self_description() {
    let pool = ProcessPool::builder().workers(1).build().unwrap();
    let receiver = labelled();
    let f = dilly::bind!(receiver.describe);
    let g: Func<(u64,), (Untagged, u64)> =
        dilly::from_bytes(&dilly::to_bytes(&f).unwrap()).unwrap();
    assert_eq!(g.call((1,)), (receiver.label.clone(), 3));
    assert_eq!(
        pool.map(&f, [1u64, 10]).unwrap(),
        [(receiver.label.clone(), 3), (receiver.label.clone(), 12)]
    );

    let sparse = Sparse { id: 1, note: None };
    let f = dilly::bind!(sparse.note_or);
    let g: Func<(String,), String> = dilly::from_bytes(&dilly::to_bytes(&f).unwrap()).unwrap();
    assert_eq!(g.call(("none".into(),)), "none");
    assert_eq!(pool.map(&f, ["x".to_string()]).unwrap(), ["x"]);
}

#[test]
fn a_value_the_receiver_refuses_is_named_once_and_not_blamed_on_transit() {
    let pool = ProcessPool::builder().workers(1).build().unwrap();
    let check = closure!(|e: Email| e.0.len());
    // Built around the validation that `try_from` does on the receiving side.
    let err = pool
        .map(&check, [Email("not-an-address".into())])
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("not-an-address is not an email address"),
        "{text}"
    );
    assert_eq!(text.matches("malformed arguments").count(), 1, "{text}");
    assert!(!text.contains("transit"), "{text}");
}

#[test]
fn compact_bytes_for_a_type_that_needs_self_description_name_the_type() {
    // What a writer that does not know the type (an older dilly) sends.
    let bytes = dilly::to_bytes(&5u64).unwrap();
    let err = dilly::from_bytes::<Untagged>(&bytes).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("Untagged"), "{text}");
    assert!(text.contains("deserialize_any"), "{text}");
    assert!(!text.contains("transit"), "{text}");
}
