//! The serde data model through dilly: every case of `serde_cases` is a value that serde_json
//! round-trips (or a case serde_json cannot write that dilly's compact format can),
//! and each travels through `to_bytes`/`from_bytes`, as a closure's captured state,
//! and as the argument, captured state and result of a real process pool's `map`.
//!
//! Run with `--nocapture` to print each case's size against serde_json's.

#[macro_use]
mod serde_cases;

use std::collections::BTreeMap;
use std::fmt::Debug;

use dilly::{Func, closure};
use dilly_pool::{Executor, ProcessPool};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_cases::{Email, Untagged};

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

/// Runs one case of the shared table; the closure is made for its type.
macro_rules! case {
    ($pool:expr, $name:literal, $ty:ty, $value:expr) => {
        run::<$ty>($name, $value, $pool, |v: $ty| {
            closure!([v: $ty] move |x: $ty| (x == v, v.clone()))
        })
    };
}

#[test]
#[cfg_attr(
    feature = "inventory",
    ignore = "pool workers start before inventory collects entries (docs/decisions.md)"
)]
fn every_case_travels_by_every_path() {
    let pool = ProcessPool::builder().workers(1).build().unwrap();
    let outcomes = serde_cases!(case, &pool);
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

/// A registered type with a field it never writes but reads back as `None`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, dilly::Dilly)]
struct WriteOnly {
    id: u64,
    #[serde(skip_serializing)]
    token: Option<String>,
    tail: u8,
}

#[dilly::methods]
impl WriteOnly {
    fn sum(&self, n: u64) -> u64 {
        self.id + u64::from(self.tail) + n
    }
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
        Box::new(WriteOnly {
            id: 5,
            token: None,
            tail: 6,
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
    assert_eq!(
        back[3].downcast_ref::<WriteOnly>(),
        Some(&WriteOnly {
            id: 5,
            token: None,
            tail: 6
        })
    );
    let alone: Box<dyn Object> = Box::new(WriteOnly {
        id: 7,
        token: None,
        tail: 1,
    });
    let back: Box<dyn Object> = dilly::from_bytes(&dilly::to_bytes(&alone).unwrap()).unwrap();
    assert_eq!(back.downcast_ref::<WriteOnly>().map(|w| w.id), Some(7));
    // Alone, a compact object stays compact.
    let one: Box<dyn Object> = Box::new(Sparse {
        id: 2,
        note: Some("n".into()),
    });
    assert_ne!(dilly::to_bytes(&one).unwrap()[1], 0xff);
}

#[test]
#[cfg_attr(
    feature = "inventory",
    ignore = "pool workers start before inventory collects entries (docs/decisions.md)"
)]
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

    let write_only = WriteOnly {
        id: 1,
        token: None,
        tail: 2,
    };
    let f = dilly::bind!(write_only.sum);
    let g: Func<(u64,), u64> = dilly::from_bytes(&dilly::to_bytes(&f).unwrap()).unwrap();
    assert_eq!(g.call((10,)), 13);
    assert_eq!(pool.map(&f, [0u64, 1]).unwrap(), [3, 4]);
}

#[test]
#[cfg_attr(
    feature = "inventory",
    ignore = "pool workers start before inventory collects entries (docs/decisions.md)"
)]
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

#[test]
fn bytes_of_a_type_that_writes_less_are_not_blamed_on_transit() {
    // The writer's type writes one field; the reader's reads two.
    let bytes = dilly::to_bytes(&(7u64,)).unwrap();
    let err = dilly::from_bytes::<(u64, u64)>(&bytes).unwrap_err();
    assert!(matches!(err, dilly::Error::Truncated { .. }), "{err:?}");
    let text = err.to_string();
    assert!(!text.contains("transit"), "{text}");
    assert!(
        text.contains("writes less than the reader's reads"),
        "{text}"
    );
}

#[test]
fn marks_are_read_strictly() {
    // A compact encoding that begins with 0xff is escaped.
    let bytes = dilly::to_bytes(&255u8).unwrap();
    assert_eq!(bytes, [dilly::VERSION, 0xff, 0x00, 0xff]);
    assert_eq!(dilly::from_bytes::<u8>(&bytes).unwrap(), 255);
    assert_eq!(
        dilly::to_bytes(&(254u8, 255u8)).unwrap(),
        [dilly::VERSION, 254, 255]
    );
    // An escape before bytes that needed none, and an unknown mark, are refused.
    let err = dilly::from_bytes::<u8>(&[dilly::VERSION, 0xff, 0x00, 0x05]).unwrap_err();
    assert!(matches!(err, dilly::Error::Malformed { .. }), "{err}");
    let err = dilly::from_bytes::<u8>(&[dilly::VERSION, 0xff, 0x07, 0x05]).unwrap_err();
    assert!(err.to_string().contains("unknown encoding mark"), "{err}");
    // A self-described value whose length claim exceeds its input is truncated
    // before anything is allocated for it.
    let hostile = [
        dilly::VERSION,
        0xff,
        0x01,
        0x9b,
        0xff,
        0xff,
        0xff,
        0xff,
        0xff,
        0xff,
        0xff,
        0xff,
    ];
    let err = dilly::from_bytes::<Untagged>(&hostile).unwrap_err();
    assert!(matches!(err, dilly::Error::Truncated { .. }), "{err}");
    // Deep self-described nesting is bounded by the same limit as compact input.
    let mut deep = vec![dilly::VERSION, 0xff, 0x01];
    deep.extend(std::iter::repeat_n(0x81u8, 10_000));
    deep.push(0);
    let err = dilly::from_bytes::<serde_json::Value>(&deep).unwrap_err();
    assert!(
        matches!(err, dilly::Error::TooDeep { limit: 128, .. }),
        "{err}"
    );
}
