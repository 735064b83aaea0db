//! Hostile bytes decoded inside a worker with a 256 MiB memory limit come back as
//! typed errors: a length claim of 1 GiB, 2^60 or 63 MiB costs what the input
//! weighs, and 100,000 levels of nesting stop at the depth limit, so the worker
//! neither aborts on a failed allocation nor overflows its stack.

use dilly::{Func, Object};
use dilly_pool::{Executor, ProcessPool};
use serde::{Deserialize, Serialize};

/// A recursive registered type with strings at its leaves.
#[derive(Debug, Serialize, Deserialize, dilly::Dilly)]
enum Tree {
    Leaf(String),
    Node(Box<Tree>),
}

fn greeting(greeting: String) -> Func<(String,), String> {
    dilly::closure!([greeting: String] move |name: String| format!("{greeting}, {name}"))
}

fn depth_of(tree: Tree) -> Func<(u64,), u64> {
    dilly::closure!([tree: Tree] move |extra: u64| {
        let mut depth = extra;
        let mut at = &tree;
        while let Tree::Node(below) = at {
            depth += 1;
            at = below;
        }
        depth
    })
}

/// What the worker makes of `bytes`: the variant of the error each decoder returns
/// (`"Ok"` if one accepts them).
#[dilly::func]
fn decode_in_worker(kind: String, bytes: Vec<u8>) -> String {
    let variant = |err: dilly::Error| {
        format!("{err:?}")
            .split([' ', '{'])
            .next()
            .unwrap()
            .to_owned()
    };
    let result = match kind.as_str() {
        "string" => dilly::from_bytes::<Func<(String,), String>>(&bytes).map(drop),
        "tree" => dilly::from_bytes::<Func<(u64,), u64>>(&bytes).map(drop),
        _ => dilly::from_bytes::<Box<dyn Object>>(&bytes).map(drop),
    };
    result.map_or_else(variant, |()| "Ok".to_owned())
}

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

/// `value`'s encoding (a portable function value) with its state replaced.
fn with_state(value: &[u8], state: &[u8]) -> Vec<u8> {
    // Version, header length, the 24-byte header.
    let mut out = value[..26].to_vec();
    varint(&mut out, state.len() as u64);
    out.extend_from_slice(state);
    out
}

#[test]
fn hostile_claims_and_nesting_are_typed_errors_inside_a_memory_limited_worker() {
    let pool = ProcessPool::builder()
        .workers(1)
        .memory_limit(256 << 20)
        .build()
        .unwrap();
    let string_value = dilly::to_bytes(&greeting("hi".into())).unwrap();
    let tree_value = dilly::to_bytes(&depth_of(Tree::Leaf(String::new()))).unwrap();
    let object = {
        let value: Box<dyn Object> = Box::new(Tree::Leaf(String::new()));
        // Version, header length, the 16-byte object header.
        dilly::to_bytes(&value).unwrap()[..18].to_vec()
    };
    let mut cases = Vec::new();
    for claim in [1_073_741_760, 1 << 60, 63 << 20] {
        let mut state = Vec::new();
        varint(&mut state, claim);
        cases.push(("string", with_state(&string_value, &state), "Truncated"));
        let mut leaf = object.clone();
        leaf.push(0);
        varint(&mut leaf, claim);
        cases.push(("object", leaf, "Truncated"));
    }
    let mut deep = vec![1u8; 100_000];
    deep.extend_from_slice(&[0, 0]);
    cases.push(("tree", with_state(&tree_value, &deep), "TooDeep"));
    cases.push(("object", [&object[..], &deep].concat(), "TooDeep"));

    let (args, expected): (Vec<_>, Vec<_>) = cases
        .into_iter()
        .map(|(kind, bytes, expected)| ((kind.to_owned(), bytes), expected))
        .unzip();
    let got = pool
        .starmap(&dilly::func_of!(decode_in_worker), args)
        .unwrap();
    assert_eq!(got, expected);
}
