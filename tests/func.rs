//! `#[dilly::func]` and `func_of!`: free and nested functions as values.

use dilly::{Error, Func, func_of};

#[dilly::func]
fn double(x: u64) -> u64 {
    x * 2
}

#[dilly::func]
fn greet(name: String, times: usize) -> String {
    format!("hello {name}").repeat(times)
}

#[dilly::func]
fn unit() {}

#[dilly::func]
fn pair((a, b): (u32, u32)) -> u64 {
    u64::from(a) * u64::from(b)
}

mod inner {
    #[dilly::func]
    pub(crate) fn negate(x: i64) -> i64 {
        -x
    }
}

#[test]
fn free_function_round_trips_in_bincode() {
    let f: Func<(u64,), u64> = func_of!(double);
    assert_eq!(f.call((4,)), 8);
    let bytes = dilly::to_bytes(&f).unwrap();
    // version + header length + 8-byte id + 8-byte fingerprint + 8-byte shape hash
    // + empty state
    assert_eq!(bytes.len(), 27);
    let g: Func<(u64,), u64> = dilly::from_bytes(&bytes).unwrap();
    assert_eq!(g.call((21,)), 42);
    assert_eq!(g.name(), "func::double");
    assert_eq!(g.entry().signature(), "fn(u64) -> u64");
}

#[test]
fn function_in_a_module_is_named_by_its_path() {
    let f = func_of!(inner::negate);
    assert_eq!(f.name(), "func::inner::negate");
    assert_eq!(f.call((5,)), -5);
}

#[test]
fn several_arguments_unit_and_patterns() {
    let g = func_of!(greet);
    let h: Func<(String, usize), String> =
        dilly::from_bytes(&dilly::to_bytes(&g).unwrap()).unwrap();
    assert_eq!(h.call(("bob".into(), 2)), "hello bobhello bob");

    let u: Func<(), ()> = func_of!(unit);
    u.call(());

    let p = func_of!(pair);
    assert_eq!(p.call(((6, 7),)), 42);
}

#[test]
fn nested_function_is_named_by_its_enclosing_function() {
    #[dilly::func]
    fn square(x: u64) -> u64 {
        x * x
    }
    let f = func_of!(square);
    assert_eq!(
        f.name(),
        "func::nested_function_is_named_by_its_enclosing_function::square"
    );
    let g: Func<(u64,), u64> = dilly::from_bytes(&dilly::to_bytes(&f).unwrap()).unwrap();
    assert_eq!(g.call((7,)), 49);
}

#[test]
fn readable_form_names_the_function() {
    let f = func_of!(double);
    let json = serde_json::to_string(&f).unwrap();
    assert_eq!(
        json,
        format!(
            r#"{{"fn":"func::double","fingerprint":"{}","state":null}}"#,
            dilly::Fingerprint::of("fn(u64) -> u64")
        )
    );
    let g: Func<(u64,), u64> = serde_json::from_str(&json).unwrap();
    assert_eq!(g.call((1,)), 2);
}

#[test]
fn wrong_type_parameters_are_a_typed_error() {
    let bytes = dilly::to_bytes(&func_of!(double)).unwrap();
    let err = dilly::from_bytes::<Func<(u32,), u64>>(&bytes).unwrap_err();
    match &err {
        Error::TypeMismatch {
            name,
            registered,
            requested,
        } => {
            assert_eq!(*name, "func::double");
            assert_eq!(registered, "Func<(u64,), u64>");
            assert_eq!(requested, "Func<(u32,), u64>");
        }
        other => panic!("expected TypeMismatch, got {other:?}"),
    }
}

#[test]
fn json_with_an_unknown_name_says_which() {
    let json = r#"{"fn":"func::no_such_fn","fingerprint":"0000000000000000","state":null}"#;
    let err = serde_json::from_str::<Func<(u64,), u64>>(json).unwrap_err();
    assert!(err.to_string().contains("`func::no_such_fn`"), "{err}");
}

#[test]
fn json_positions_read_as_positions_in_the_data() {
    let json = serde_json::to_string_pretty(&func_of!(double)).unwrap();
    let err = serde_json::from_str::<Func<(u64, u64), u64>>(&json).unwrap_err();
    let message = err.to_string();
    assert!(
        message.starts_with("type mismatch for `func::double`"),
        "{message}"
    );
    assert!(
        message.contains("; found in the data at line "),
        "serde_json's position follows dilly's message as a position in the data: {message}"
    );
}

#[test]
fn json_with_a_stale_fingerprint_is_version_skew() {
    let json = r#"{"fn":"func::double","fingerprint":"00000000000000ff","state":null}"#;
    let err = serde_json::from_str::<Func<(u64,), u64>>(json).unwrap_err();
    assert!(err.to_string().contains("signature mismatch"), "{err}");
}

#[test]
fn values_are_send_sync_clone_and_debug() {
    fn assert_traits<T: Send + Sync + Clone + std::fmt::Debug + 'static>(_: &T) {}
    let f = func_of!(double);
    assert_traits(&f);
    let g = f.clone();
    let handle = std::thread::spawn(move || g.call((5,)));
    assert_eq!(handle.join().unwrap(), 10);
    assert!(format!("{f:?}").contains("func::double"));
}

#[test]
fn call_into_appends_what_call_bytes_returns() {
    let f = dilly::func_of!(greet);
    let args = f.encode_args(&("Ada".to_owned(), 2)).unwrap();
    let mut buf = b"kept".to_vec();
    f.erased().call_into(&args, &mut buf).unwrap();
    assert_eq!(&buf[..4], b"kept");
    assert_eq!(buf[4..], f.erased().call_bytes(&args).unwrap()[..]);
    assert_eq!(
        f.decode_result(&buf[4..]).unwrap(),
        f.call(("Ada".to_owned(), 2))
    );

    let mut into = Vec::new();
    f.encode_args_into(&("Ada".to_owned(), 2), &mut into)
        .unwrap();
    assert_eq!(into, args);
    // Arguments that do not decode are an error, not a panic.
    assert!(f.erased().call_into(&[0xff], &mut buf).is_err());
}
