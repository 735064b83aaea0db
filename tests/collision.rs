//! Two nested functions with one name in one module collide; the index reports
//! both, and `#[dilly::func(name = "...")]` resolves it.

use dilly::registry;
use dilly::{Error, SymbolId, func_of};

fn first() -> dilly::Func<(u64,), u64> {
    #[dilly::func]
    fn helper(x: u64) -> u64 {
        x + 1
    }
    func_of!(helper)
}

fn second() -> dilly::Func<(u64,), u64> {
    #[dilly::func]
    fn helper(x: u64) -> u64 {
        x + 2
    }
    func_of!(helper)
}

fn third() -> dilly::Func<(u64,), u64> {
    #[dilly::func(name = "collision::third::helper")]
    fn helper(x: u64) -> u64 {
        x + 3
    }
    func_of!(helper)
}

#[test]
fn the_collision_is_reported_with_both_names() {
    let id = SymbolId::of("collision::helper");
    let duplicate = registry::duplicates()
        .iter()
        .find(|d| d.id == id)
        .expect("the two `helper`s collide");
    assert_eq!(
        (duplicate.first, duplicate.second),
        ("collision::helper", "collision::helper")
    );

    let err = registry::check().unwrap_err();
    assert!(matches!(err, Error::DuplicateSymbol { .. }));
    assert!(
        err.to_string().contains("name = "),
        "the message shows the fix: {err}"
    );

    // Receiving the ambiguous ID is refused rather than guessed.
    let bytes = dilly::to_bytes(&first()).unwrap();
    let err = dilly::from_bytes::<dilly::Func<(u64,), u64>>(&bytes).unwrap_err();
    assert!(matches!(err, Error::DuplicateSymbol { .. }), "{err}");
    // Local values still work: they hold their own entry.
    assert_eq!(first().call((1,)), 2);
    assert_eq!(second().call((1,)), 3);
}

#[test]
fn an_explicit_name_resolves_it() {
    let f = third();
    assert_eq!(f.name(), "collision::third::helper");
    let g: dilly::Func<(u64,), u64> = dilly::from_bytes(&dilly::to_bytes(&f).unwrap()).unwrap();
    assert_eq!(g.call((1,)), 4);
}
