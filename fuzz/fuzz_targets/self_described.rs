//! `dilly::from_bytes` on self-described (CBOR) input: the fuzzed bytes follow the
//! mark `ff 01`, and are read as types that need self-description (untagged and
//! internally tagged enums, flatten, `serde_json::Value`) and as one that is
//! self-described only by value (a skipped field). What decodes must encode and
//! decode again to the same value.
#![no_main]

use std::collections::BTreeMap;
use std::fmt::Debug;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
enum Untagged {
    Num(u64),
    Text(String),
    List(Vec<Untagged>),
    Map(BTreeMap<String, Untagged>),
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t")]
enum Internal {
    A { x: i64 },
    B { s: String, n: Option<u8> },
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Flat {
    id: u64,
    #[serde(flatten)]
    rest: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Row {
    id: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    note: Option<String>,
}

fn round_trip<T: Serialize + DeserializeOwned + PartialEq + Debug>(bytes: &[u8]) {
    if let Ok(value) = dilly::from_bytes::<T>(bytes) {
        let again = dilly::to_bytes(&value).expect("a decoded value encodes");
        let back: T = dilly::from_bytes(&again).expect("an encoded value decodes");
        assert_eq!(back, value);
    }
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut bytes = vec![dilly::VERSION, 0xff, 0x01];
    bytes.extend_from_slice(data);
    round_trip::<serde_json::Value>(&bytes);
    round_trip::<Untagged>(&bytes);
    round_trip::<Internal>(&bytes);
    round_trip::<Flat>(&bytes);
    round_trip::<Row>(&bytes);
});
