//! The registry as a whole: entries from another crate are found even when nothing
//! but their registration refers to them, names are canonical, and the registry's
//! fingerprint and duplicate check behave.

// The only use of this crate: its registered items. A linker that dropped them
// would make every lookup below fail.
use dilly_fixture as _;

use dilly::registry::{self, Kind};
use dilly::{Error, Func, SymbolId};

#[test]
fn entries_of_an_otherwise_unused_crate_are_linked() {
    for (name, kind) in [
        ("dilly_fixture::double", Kind::Function),
        ("dilly_fixture::triple", Kind::Function),
        ("dilly_fixture::Transformer::process_data", Kind::Method),
        ("dilly_fixture::Transformer::into_label", Kind::Method),
        ("dilly_fixture::Transformer::bump", Kind::Method),
        ("dilly_fixture::Transformer::new", Kind::Function),
        ("dilly_fixture::Point", Kind::Type),
        ("dilly_fixture::Shape", Kind::Type),
        ("dilly_fixture::Scale", Kind::Type),
        ("dilly_fixture::Scale::call", Kind::Task),
        ("dilly_fixture::renamed_by_attribute", Kind::Function),
        ("dilly_fixture::Tree", Kind::Type),
        ("dilly_fixture::Tree::depth", Kind::Method),
    ] {
        let entry = registry::lookup_name(name).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(entry.name(), name);
        assert_eq!(entry.kind(), kind, "{name}");
        assert_eq!(entry.id(), SymbolId::of(name));
    }
    let closures = registry::entries()
        .filter(|e| e.kind() == Kind::Closure && e.name().starts_with("dilly_fixture::{closure#"))
        .count();
    assert_eq!(closures, 6, "the fixture defines six closures");
}

#[test]
fn signatures_are_the_types_as_written() {
    let method = registry::lookup_name("dilly_fixture::Transformer::process_data").unwrap();
    assert_eq!(method.signature(), "fn(&Transformer, u64, u64) -> u64");
    let consuming = registry::lookup_name("dilly_fixture::Transformer::into_label").unwrap();
    assert_eq!(consuming.signature(), "fn(Transformer, String) -> String");
    let assoc = registry::lookup_name("dilly_fixture::Transformer::new").unwrap();
    assert_eq!(assoc.signature(), "fn(u64) -> Transformer");
}

#[test]
fn a_linked_entry_can_be_called_by_name_alone() {
    let entry = registry::lookup_name("dilly_fixture::renamed_by_attribute").unwrap();
    let f = entry.prepare(&[]).unwrap();
    let result = f
        .call_bytes(&dilly::to_bytes(&(5u64,)).unwrap()[1..])
        .unwrap();
    assert_eq!(
        dilly::from_bytes::<u64>(&[&[dilly::VERSION][..], &result].concat()).unwrap(),
        1005
    );
}

#[test]
fn unknown_names_are_reported_with_the_name() {
    let err = registry::lookup_name("nobody::registered::this").unwrap_err();
    assert!(
        matches!(&err, Error::UnknownSymbol { name: Some(n), .. } if n == "nobody::registered::this")
    );
    assert!(
        err.to_string().contains("`nobody::registered::this`"),
        "{err}"
    );
    assert!(err.is_version_skew());
}

#[test]
fn a_type_is_not_callable_and_a_function_is_not_an_object() {
    let point = registry::lookup_name("dilly_fixture::Point").unwrap();
    let err =
        registry::lookup_callable(point.id(), point.fingerprint(), point.shape()).unwrap_err();
    assert!(
        matches!(
            &err,
            Error::WrongKind {
                expected,
                found,
                ..
            } if expected == "function" && found == "type"
        ),
        "{err}"
    );

    // A Func's bytes decoded as an object: the ID names a function.
    let f: Func<(u64,), u64> = dilly_fixture::double_value();
    let err =
        dilly::from_bytes::<Box<dyn dilly::Object>>(&dilly::to_bytes(&f).unwrap()).unwrap_err();
    assert!(
        matches!(err, Error::WrongKind { .. } | Error::Malformed { .. }),
        "{err}"
    );
}

#[test]
fn the_registry_is_free_of_duplicates_and_fingerprinted() {
    registry::check().unwrap();
    assert!(registry::duplicates().is_empty());
    let fp = registry::fingerprint();
    assert_eq!(fp.count, registry::entries().count());
    assert!(fp.count >= 14, "{fp}");
    assert_eq!(fp, registry::fingerprint());
}
