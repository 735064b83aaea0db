//! Golden bytes: the wire format is pinned by files in `tests/golden/` that this
//! version must decode, call and produce byte for byte. The files of the previous
//! version (`tests/golden/v1/`) must be refused with `Error::OlderFormat`, never
//! misread.
//!
//! To add a case, add it to `cases()` and run `DILLY_BLESS=1 cargo test --test wire`
//! once; never re-bless an existing file: a changed byte is a format break.

use std::path::PathBuf;

use dilly::{CallFrame, Func, Limits, Object, RawFunc, bind, func_of};
use dilly_fixture::{Point, Scale, Transformer, Tree};

struct Case {
    file: &'static str,
    bytes: Vec<u8>,
    /// Decodes the golden bytes and returns what calling or inspecting them gives.
    check: fn(&[u8]) -> String,
    expected: &'static str,
}

fn transformer() -> Transformer {
    Transformer {
        factor: 2,
        label: "t".into(),
    }
}

fn call_u64(bytes: &[u8]) -> String {
    let f: Func<(u64,), u64> = dilly::from_bytes(bytes).unwrap();
    format!("{} {}", f.name(), f.call((21,)))
}

fn cases() -> Vec<Case> {
    let t = transformer();
    let method = bind!(t.process_data);
    let names = vec!["alpha".to_string(), "beta".into(), "gamma".into()];
    let args = method.encode_args(&(3, 7)).unwrap();
    let frame = CallFrame {
        id: method.id(),
        fingerprint: method.fingerprint(),
        shape: method.shape(),
        state: method.state(),
        args: &args,
    }
    .encode()
    .unwrap();
    vec![
        Case {
            file: "free_fn.bin",
            bytes: dilly::to_bytes(&func_of!(dilly_fixture::double)).unwrap(),
            check: call_u64,
            expected: "dilly_fixture::double 42",
        },
        Case {
            file: "nested_fn.bin",
            bytes: dilly::to_bytes(&dilly_fixture::nested()).unwrap(),
            check: call_u64,
            expected: "dilly_fixture::triple 63",
        },
        Case {
            file: "scoped_fn.bin",
            bytes: dilly::to_bytes(&dilly_fixture::enclosing()).unwrap(),
            check: call_u64,
            expected: "dilly_fixture::enclosing::quadruple 84",
        },
        Case {
            file: "bound_method.bin",
            bytes: dilly::to_bytes(&method).unwrap(),
            check: |bytes| {
                let f: Func<(u64, u64), u64> = dilly::from_bytes(bytes).unwrap();
                format!("{} {}", f.name(), f.call((3, 7)))
            },
            expected: "dilly_fixture::Transformer::process_data 42",
        },
        Case {
            file: "closure.bin",
            bytes: dilly::to_bytes(&dilly_fixture::counting_closure(names, 10)).unwrap(),
            check: |bytes| call_u64(bytes).split_once(' ').unwrap().1.to_owned(),
            expected: "34",
        },
        Case {
            file: "object.bin",
            bytes: dilly::to_bytes(&(Box::new(Point { x: 4, y: -2 }) as Box<dyn Object>)).unwrap(),
            check: |bytes| {
                let value: Box<dyn Object> = dilly::from_bytes(bytes).unwrap();
                format!(
                    "{} {:?}",
                    value.type_name(),
                    value.downcast_ref::<Point>().unwrap()
                )
            },
            expected: "dilly_fixture::Point Point { x: 4, y: -2 }",
        },
        Case {
            file: "task.bin",
            bytes: dilly::to_bytes(&Func::from_task(Scale { factor: 2 })).unwrap(),
            check: call_u64,
            expected: "dilly_fixture::Scale::call 42",
        },
        Case {
            file: "call_frame.bin",
            bytes: frame,
            check: |bytes| {
                let frame = CallFrame::decode(bytes, Limits::DEFAULT).unwrap();
                let entry =
                    dilly::registry::lookup_callable(frame.id, frame.fingerprint, frame.shape)
                        .unwrap();
                let result = entry
                    .prepare(frame.state)
                    .unwrap()
                    .call_bytes(frame.args)
                    .unwrap();
                format!("{} {result:?}", entry.name())
            },
            expected: "dilly_fixture::Transformer::process_data [42]",
        },
        Case {
            file: "tree_closure.bin",
            bytes: dilly::to_bytes(&dilly_fixture::tree_closure(Tree::chain(3, "leaf"))).unwrap(),
            check: |bytes| call_u64(bytes).split_once(' ').unwrap().1.to_owned(),
            expected: "24",
        },
        Case {
            file: "greeting_closure.bin",
            bytes: dilly::to_bytes(&dilly_fixture::greeting_closure("hello".into())).unwrap(),
            check: |bytes| {
                let f: Func<(String,), String> = dilly::from_bytes(bytes).unwrap();
                f.call(("dilly".into(),))
            },
            expected: "hello, dilly",
        },
        Case {
            file: "tree_object.bin",
            bytes: dilly::to_bytes(&(Box::new(Tree::chain(2, "leaf")) as Box<dyn Object>)).unwrap(),
            check: |bytes| {
                let value: Box<dyn Object> = dilly::from_bytes(bytes).unwrap();
                format!("{:?}", value.downcast_ref::<Tree>().unwrap())
            },
            expected: r#"Node(Node(Leaf("leaf")))"#,
        },
        Case {
            file: "raw_func.bin",
            bytes: dilly::to_bytes(&dilly_fixture::greeting_closure("hi".into()).raw()).unwrap(),
            check: |bytes| {
                let raw: RawFunc = dilly::from_bytes(bytes).unwrap();
                let result = raw.prepare().unwrap().call_bytes(&[2, b'y', b'o']).unwrap();
                format!("{result:?}")
            },
            // "hi, yo", length first.
            expected: "[6, 104, 105, 44, 32, 121, 111]",
        },
        Case {
            file: "bound_method.json",
            bytes: serde_json::to_vec(&method).unwrap(),
            check: |bytes| {
                let f: Func<(u64, u64), u64> = serde_json::from_slice(bytes).unwrap();
                f.call((3, 7)).to_string()
            },
            expected: "42",
        },
    ]
}

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

#[test]
fn golden_files_decode_call_and_match_current_encoding() {
    let bless = std::env::var_os("DILLY_BLESS").is_some();
    for case in cases() {
        let path = golden_dir().join(case.file);
        if bless && !path.exists() {
            std::fs::write(&path, &case.bytes).unwrap();
        }
        let golden = std::fs::read(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; run with DILLY_BLESS=1 to create it",
                path.display()
            )
        });
        assert_eq!(
            (case.check)(&golden),
            case.expected,
            "{}: decoding the golden bytes",
            case.file
        );
        assert_eq!(
            case.bytes, golden,
            "{}: this build encodes differently: a wire format break",
            case.file
        );
    }
}

#[test]
fn free_function_layout_is_as_documented() {
    // docs/wire-format.md walks through exactly these bytes.
    let bytes = std::fs::read(golden_dir().join("free_fn.bin")).unwrap();
    let id = dilly::SymbolId::of("dilly_fixture::double")
        .to_raw()
        .to_le_bytes();
    let fingerprint = dilly::Fingerprint::of("fn(u64) -> u64")
        .to_raw()
        .to_le_bytes();
    // The shape hash of `fn double(x: u64) -> u64`: no state, one u64 argument,
    // a u64 result.
    let shape = dilly::Fingerprint::of("state: ()\nargs: (u64,)\nresult: u64");
    let f: Func<(u64,), u64> = func_of!(dilly_fixture::double);
    assert_eq!(f.shape(), shape);
    let mut expected = vec![dilly::VERSION, 24];
    expected.extend_from_slice(&id);
    expected.extend_from_slice(&fingerprint);
    expected.extend_from_slice(&shape.to_raw().to_le_bytes());
    expected.push(0); // empty state: length 0
    assert_eq!(bytes, expected);
}

#[test]
fn shape_texts_are_as_documented() {
    // docs/wire-format.md shows these texts.
    let t = transformer();
    let method = bind!(t.process_data);
    assert_eq!(
        method.entry().shapes().to_string(),
        "state struct Transformer { factor: u64, label: str }; arguments (u64, u64); result u64"
    );
}

#[test]
fn the_previous_versions_golden_files_are_refused_as_older() {
    let v1 = golden_dir().join("v1");
    let older = dilly::Error::OlderFormat {
        found: 1,
        supported: dilly::VERSION,
    };
    for file in [
        "free_fn.bin",
        "nested_fn.bin",
        "bound_method.bin",
        "closure.bin",
        "object.bin",
        "task.bin",
    ] {
        let bytes = std::fs::read(v1.join(file)).unwrap();
        assert_eq!(bytes[0], 1, "{file}");
        let err = match file {
            "object.bin" => dilly::from_bytes::<Box<dyn Object>>(&bytes).unwrap_err(),
            "bound_method.bin" => dilly::from_bytes::<Func<(u64, u64), u64>>(&bytes).unwrap_err(),
            _ => dilly::from_bytes::<Func<(u64,), u64>>(&bytes).unwrap_err(),
        };
        assert_eq!(err, older, "{file}");
        assert!(err.to_string().contains("made by an older dilly"), "{err}");
        assert!(err.is_version_skew());
    }
    let frame = std::fs::read(v1.join("call_frame.bin")).unwrap();
    assert_eq!(
        CallFrame::decode(&frame, Limits::DEFAULT),
        Err(older.clone())
    );

    // A version-1 function value inside a stream that carries no version byte of
    // its own (here: behind this version's byte) is recognised by its 16-byte
    // header.
    let mut v1_body = std::fs::read(v1.join("free_fn.bin")).unwrap();
    v1_body[0] = dilly::VERSION;
    assert_eq!(
        dilly::from_bytes::<Func<(u64,), u64>>(&v1_body).unwrap_err(),
        older
    );
}
