use std::collections::BTreeMap;
use std::num::NonZeroU64;

use serde::{Deserialize, de};

use super::*;

fn text<T: DeserializeOwned>() -> String {
    let shape = TypeShape::of::<T>();
    assert!(shape.is_traced(), "{shape}");
    shape.text
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct Cfg {
    scale: u64,
    bias: u64,
}

mod reordered {
    #[derive(serde::Deserialize)]
    #[allow(dead_code)]
    pub(super) struct Cfg {
        pub(super) bias: u64,
        pub(super) scale: u64,
    }
}

#[test]
fn structs_show_field_names_order_and_types() {
    assert_eq!(text::<Cfg>(), "struct Cfg { scale: u64, bias: u64 }");
    assert_eq!(
        text::<reordered::Cfg>(),
        "struct Cfg { bias: u64, scale: u64 }"
    );
    assert_eq!(text::<(u64,)>(), "(u64,)");
    assert_eq!(
        text::<(Cfg, i8)>(),
        "(struct Cfg { scale: u64, bias: u64 }, i8)"
    );
    assert_eq!(
        text::<(Vec<String>, Option<[u8; 2]>, BTreeMap<u32, bool>)>(),
        "(Seq<str>, Option<(u8, u8)>, Map<u32, bool>)"
    );
}

#[derive(Deserialize)]
#[allow(dead_code)]
enum Op {
    Stop,
    Add(i64),
    Pair(u8, u8),
    Named { inner: Cfg },
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct Program {
    ops: Vec<Op>,
    first: Option<Op>,
}

#[test]
fn every_variant_of_every_enum_is_traced() {
    let op = "enum Op { Stop, Add(i64), Pair(u8, u8), Named { inner: struct Cfg { scale: u64, bias: u64 } } }";
    assert_eq!(text::<Op>(), op);
    assert_eq!(
        text::<Program>(),
        format!("struct Program {{ ops: Seq<{op}>, first: Option<Op> }}")
    );
}

#[derive(Deserialize)]
#[allow(dead_code)]
enum TreeNodeFirst {
    Node(Box<TreeNodeFirst>, Box<TreeNodeFirst>),
    Leaf(u64),
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct Dir {
    name: String,
    children: Vec<Dir>,
    parent: Option<Box<Dir>>,
}

#[test]
fn recursive_types_are_cut_where_they_recurse() {
    assert_eq!(
        text::<TreeNodeFirst>(),
        "enum TreeNodeFirst { Node(TreeNodeFirst, TreeNodeFirst), Leaf(u64) }"
    );
    assert_eq!(
        text::<Dir>(),
        "struct Dir { name: str, children: Seq<Dir>, parent: Option<Dir> }"
    );
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct Link {
    next: Option<Hop>,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct Hop(Box<Link>);

#[test]
fn a_container_seen_only_on_the_way_to_a_recursion_keeps_its_shape() {
    // `Hop` is visited only in the pass that finds the recursion; later passes
    // leave the `Option` empty.
    assert_eq!(
        text::<Link>(),
        "struct Link { next: Option<struct Hop(Link)> }"
    );
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct Endless {
    next: Box<Endless>,
}

#[derive(Deserialize)]
#[serde(untagged)]
#[allow(dead_code)]
enum Untagged {
    A(u64),
    B(String),
}

#[test]
fn untraceable_types_are_opaque_with_a_reason() {
    let endless = TypeShape::of::<Endless>();
    assert!(!endless.is_traced());
    assert!(endless.text().contains("contains itself"), "{endless}");
    let untagged = TypeShape::of::<Untagged>();
    assert!(!untagged.is_traced());
    assert!(untagged.text().contains("deserialize_any"), "{untagged}");
    let nonzero = TypeShape::of::<NonZeroU64>();
    assert!(!nonzero.is_traced());
    assert!(nonzero.text().contains("refused"), "{nonzero}");
    let json = TypeShape::of::<serde_json::Value>();
    assert!(!json.is_traced(), "{json}");
}

struct Panics;

impl<'de> Deserialize<'de> for Panics {
    fn deserialize<D: de::Deserializer<'de>>(_: D) -> std::result::Result<Self, D::Error> {
        panic!("this type cannot be traced");
    }
}

#[test]
fn a_panicking_deserialize_is_opaque() {
    let shape = TypeShape::of::<(u8, Panics)>();
    assert_eq!(shape.text(), "opaque (its Deserialize panicked)");
}

#[test]
fn shapes_hash_all_three_parts() {
    let a = Shapes::of::<Cfg, (u64,), u64>();
    let b = Shapes::of::<reordered::Cfg, (u64,), u64>();
    let c = Shapes::of::<Cfg, (i64,), u64>();
    let d = Shapes::of::<Cfg, (u64,), i64>();
    let hashes = [a.hash(), b.hash(), c.hash(), d.hash()];
    for i in 0..4 {
        for j in 0..i {
            assert_ne!(hashes[i], hashes[j], "{i} {j}");
        }
    }
    assert_eq!(a, Shapes::of::<Cfg, (u64,), u64>());
    assert_eq!(
        a.to_string(),
        "state struct Cfg { scale: u64, bias: u64 }; arguments (u64,); result u64"
    );
}

#[test]
fn struct_fields_count_what_deserialize_reads() {
    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Outer {
        a: u8,
        #[serde(skip_deserializing)]
        b: u8,
        inner: Vec<Inner>,
    }
    #[derive(Deserialize)]
    #[allow(dead_code)]
    enum Inner {
        Unit,
        Named { x: u8, y: u8, z: u8 },
    }
    let shape = TypeShape::of::<Outer>();
    let mut fields: Vec<_> = shape
        .fields()
        .iter()
        .map(|f| (f.name, f.variant, f.len))
        .collect();
    fields.sort();
    assert_eq!(fields, [("Inner", "Named", 3), ("Outer", "", 2)]);
    assert!(!shape.needs_self_description());
}

#[test]
fn a_type_written_with_fewer_fields_than_read_needs_self_description() {
    use serde::Serialize;

    #[derive(Serialize, Deserialize)]
    enum Kinds {
        Plain(u8),
        Named {
            a: u8,
            #[serde(skip_serializing, default)]
            b: u8,
        },
    }
    let written =
        |value: &Kinds, shape: &TypeShape| crate::codec::writes_fields_as_read(value, shape);
    assert!(TypeShape::of_written::<Kinds>(written).needs_self_description());
    #[derive(Serialize, Deserialize)]
    struct Full {
        a: u8,
        kinds: Vec<(u8, String)>,
    }
    let all = |value: &Full, shape: &TypeShape| crate::codec::writes_fields_as_read(value, shape);
    assert!(!TypeShape::of_written::<Full>(all).needs_self_description());
}
