//! Same-build closures: any closure, generic or with inferred capture types, sent
//! to another process running the identical executable — here, this test binary
//! started again — and refused by any other build.

use std::fmt::Debug;
use std::ops::Add;
use std::process::Command;

use dilly::{BuildId, Error, Func, SameBuild, closure};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The generic function of the issue: its closure cannot be registered by name.
fn make<T>(t: T) -> Func<(T,), T, SameBuild>
where
    T: Serialize + DeserializeOwned + Add<Output = T> + Copy + Send + Sync + 'static,
{
    closure!(move |x: T| x + t)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

const CHILD: &str = "DILLY_SAME_BUILD_CHILD";

/// Runs `receiver` in a fresh process of this same test binary with `payload`.
fn in_child(receiver: &str, payload: &[u8]) -> String {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([receiver, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, hex(payload))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "child failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The harness prints "test name ... " on the same line before the output.
    stdout
        .lines()
        .find_map(|l| l.split_once("RESULT ").map(|(_, result)| result))
        .unwrap_or_else(|| panic!("child printed no result: {stdout}"))
        .to_owned()
}

fn child_payload() -> Option<Vec<u8>> {
    std::env::var(CHILD).ok().map(|h| unhex(&h))
}

#[test]
fn child_u64() {
    if let Some(bytes) = child_payload() {
        let f: Func<(u64,), u64, SameBuild> = dilly::from_bytes(&bytes).unwrap();
        println!("RESULT {}", f.call((2,)));
    }
}

#[test]
fn child_f64() {
    if let Some(bytes) = child_payload() {
        let f: Func<(f64,), f64, SameBuild> = dilly::from_bytes(&bytes).unwrap();
        println!("RESULT {}", f.call((0.25,)));
    }
}

#[test]
fn child_strings() {
    if let Some(bytes) = child_payload() {
        let f: Func<(String,), String, SameBuild> = dilly::from_bytes(&bytes).unwrap();
        println!("RESULT {}", f.call(("x".into(),)));
    }
}

#[test]
fn closures_of_a_generic_function_run_in_another_process_for_two_types() {
    if child_payload().is_some() {
        return;
    }
    let ints = make(40u64);
    assert!(!ints.is_portable());
    assert_eq!(
        in_child("child_u64", &dilly::to_bytes(&ints).unwrap()),
        "42"
    );
    let floats = make(1.5f64);
    assert_eq!(
        in_child("child_f64", &dilly::to_bytes(&floats).unwrap()),
        "1.75"
    );
}

#[test]
fn a_closure_whose_capture_types_are_only_inferred() {
    if child_payload().is_some() {
        return;
    }
    // Neither the captures' nor the parameter's type is written anywhere.
    let words = ["a", "b"].map(String::from).to_vec();
    let sep = '-';
    let f: Func<(String,), String, SameBuild> =
        closure!(move |s| format!("{}{sep}{s}", words.join("+")));
    assert_eq!(f.call(("y".into(),)), "a+b-y");
    assert_eq!(
        in_child("child_strings", &dilly::to_bytes(&f).unwrap()),
        "a+b-x"
    );
}

/// An argument type whose `Deserialize` needs a self-describing format.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
enum Loose {
    Num(u64),
    Text(String),
}

/// An argument type with a field it never writes but reads back as `None`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct WriteOnly {
    id: u64,
    #[serde(skip_serializing)]
    token: Option<String>,
    tail: String,
}

/// A same-build closure over arguments of any type (generic, so it cannot be
/// registered by name).
fn show<T>(prefix: &str) -> Func<(T,), String, SameBuild>
where
    T: Serialize + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let prefix = prefix.to_owned();
    closure!(move |x: T| format!("{prefix}{x:?}"))
}

/// Decodes a same-build function and arguments it did not encode, and calls it.
fn call_sent<T: Serialize + DeserializeOwned + 'static>(payload: &[u8]) -> String {
    let (func, args): (Vec<u8>, Vec<u8>) = dilly::from_bytes(payload).unwrap();
    let f: Func<(T,), String, SameBuild> = dilly::from_bytes(&func).unwrap();
    f.decode_result(&f.erased().call_bytes(&args).unwrap())
        .unwrap()
}

#[test]
fn child_loose() {
    if let Some(bytes) = child_payload() {
        println!("RESULT {}", call_sent::<Loose>(&bytes));
    }
}

#[test]
fn child_write_only() {
    if let Some(bytes) = child_payload() {
        println!("RESULT {}", call_sent::<WriteOnly>(&bytes));
    }
}

#[test]
fn arguments_that_need_self_description_reach_another_process() {
    if child_payload().is_some() {
        return;
    }
    let send = |func: Vec<u8>, args: Vec<u8>| dilly::to_bytes(&(func, args)).unwrap();

    let f = show::<Loose>("got ");
    let args = f.encode_args(&(Loose::Text("t".into()),)).unwrap();
    // Self-described: the mark 0xff 0x01 first.
    assert_eq!(args[..2], [0xff, 0x01]);
    let payload = send(dilly::to_bytes(&f).unwrap(), args);
    assert_eq!(in_child("child_loose", &payload), "got Text(\"t\")");

    let f = show::<WriteOnly>("");
    let value = WriteOnly {
        id: 3,
        token: Some("never sent".into()),
        tail: "end".into(),
    };
    let payload = send(
        dilly::to_bytes(&f).unwrap(),
        f.encode_args(&(value,)).unwrap(),
    );
    assert_eq!(
        in_child("child_write_only", &payload),
        "WriteOnly { id: 3, token: None, tail: \"end\" }"
    );

    // Arguments that need none of this stay compact.
    let f = show::<(u8, String)>("");
    assert_eq!(f.encode_args(&((7, "s".into()),)).unwrap(), [7, 1, b's']);
}

#[test]
fn another_build_is_refused_with_build_mismatch() {
    let f = make(1u64);
    let mut bytes = dilly::to_bytes(&f).unwrap();
    // version, tag 1, header length 24, then the 16-byte build ID: alter it as
    // another build would.
    assert_eq!(bytes[1..3], [1, 24]);
    bytes[3] ^= 0x5a;
    match dilly::from_bytes::<Func<(u64,), u64, SameBuild>>(&bytes) {
        Err(Error::BuildMismatch { expected, found }) => {
            assert_eq!(expected, dilly::same_build::this_build().unwrap());
            assert_ne!(found, expected);
        }
        other => panic!("expected BuildMismatch, got {other:?}"),
    }
}

#[test]
fn offsets_outside_the_code_and_truncated_addresses_are_refused() {
    let f = make(1u64);
    let bytes = dilly::to_bytes(&f).unwrap();
    for offset in [i64::MIN, -(1i64 << 44), 1i64 << 44, i64::MAX] {
        let mut forged = bytes.clone();
        forged[19..27].copy_from_slice(&offset.to_le_bytes());
        let err = dilly::from_bytes::<Func<(u64,), u64, SameBuild>>(&forged).unwrap_err();
        assert!(matches!(err, Error::BadAddress { .. }), "{offset}: {err}");
    }
    for cut in 1..bytes.len() {
        let err = dilly::from_bytes::<Func<(u64,), u64, SameBuild>>(&bytes[..cut]).unwrap_err();
        assert!(err.is_bad_input(), "{cut}: {err}");
    }
}

#[test]
fn a_portable_receiver_refuses_same_build_values() {
    let f = make(1u64);
    let json = serde_json::to_string(&f).unwrap();
    let err = serde_json::from_str::<Func<(u64,), u64>>(&json).unwrap_err();
    assert!(err.to_string().contains("same-build only"), "{err}");
    // The compact form says the same, not that the bytes are malformed.
    let bytes = dilly::to_bytes(&f).unwrap();
    assert!(matches!(
        dilly::from_bytes::<Func<(u64,), u64>>(&bytes),
        Err(dilly::Error::NotPortable)
    ));
    // In the other direction, portable values are accepted as same-build ones.
    #[dilly::func]
    fn double(x: u64) -> u64 {
        x * 2
    }
    let portable: Func<(u64,), u64, SameBuild> = dilly::func_of!(double).into();
    let back: Func<(u64,), u64, SameBuild> =
        dilly::from_bytes(&dilly::to_bytes(&portable).unwrap()).unwrap();
    assert!(back.is_portable());
    assert_eq!(back.into_portable().unwrap().call((21,)), 42);
}

#[test]
fn explicit_opt_in_and_the_readable_form() {
    let n = 3usize;
    let f: Func<(usize,), usize, SameBuild> = closure!(same_build move |x: usize| x * n);
    let json = serde_json::to_value(&f).unwrap();
    assert_eq!(
        json["same_build"],
        dilly::same_build::this_build().unwrap().to_string()
    );
    let g: Func<(usize,), usize, SameBuild> = serde_json::from_value(json).unwrap();
    assert_eq!(g.call((14,)), 42);
    let _: BuildId = dilly::same_build::this_build().unwrap();
}
