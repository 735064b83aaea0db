//! Same-named nested functions in different functions do not collide: each is
//! named by its enclosing function. A clash that remains — two items given one
//! explicit name — is reported with both names and where each is registered, and
//! an explicit name of its own resolves it.

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

fn clash_a() -> dilly::Func<(u64,), u64> {
    #[dilly::func(name = "collision::clash")]
    fn helper(x: u64) -> u64 {
        x + 4
    }
    func_of!(helper)
}

fn clash_b() -> dilly::Func<(u64,), u64> {
    #[dilly::func(name = "collision::clash")]
    fn helper(x: u64) -> u64 {
        x + 5
    }
    func_of!(helper)
}

/// Sends `f` through bytes and calls what comes back.
fn round_trip(f: &dilly::Func<(u64,), u64>, x: u64) -> Result<u64, Error> {
    let g: dilly::Func<(u64,), u64> = dilly::from_bytes(&dilly::to_bytes(f)?)?;
    Ok(g.call((x,)))
}

#[test]
fn nested_functions_of_two_functions_are_named_apart() {
    assert_eq!(first().name(), "collision::first::helper");
    assert_eq!(second().name(), "collision::second::helper");
    assert_eq!(round_trip(&first(), 1), Ok(2));
    assert_eq!(round_trip(&second(), 1), Ok(3));
    assert!(
        !registry::duplicates()
            .iter()
            .any(|d| d.first.ends_with("::helper")),
        "{:?}",
        registry::duplicates()
    );
}

#[test]
fn a_remaining_clash_is_reported_with_both_names_and_places() {
    let id = SymbolId::of("collision::clash");
    let duplicate = registry::duplicates()
        .iter()
        .find(|d| d.id == id)
        .expect("the two `collision::clash` items collide");
    assert_eq!(
        (duplicate.first, duplicate.second),
        ("collision::clash", "collision::clash")
    );
    let mut lines = [duplicate.first_at.line(), duplicate.second_at.line()];
    lines.sort_unstable();
    assert_eq!(lines, [34, 42], "the two attributes");
    assert_eq!(duplicate.first_at.file(), file!());

    let err = registry::check().unwrap_err();
    assert!(matches!(err, Error::DuplicateSymbol { .. }));
    let text = err.to_string();
    assert!(
        text.contains("name = "),
        "the message shows the fix: {text}"
    );
    assert!(
        text.contains(&format!("{}:34:", file!())) && text.contains(&format!("{}:42:", file!())),
        "the message shows both places: {text}"
    );

    // Receiving the ambiguous ID is refused rather than guessed.
    let err = round_trip(&clash_a(), 1).unwrap_err();
    assert!(matches!(err, Error::DuplicateSymbol { .. }), "{err}");
    // Local values still work: they hold their own entry.
    assert_eq!(clash_a().call((1,)), 5);
    assert_eq!(clash_b().call((1,)), 6);
}

#[test]
fn an_explicit_name_resolves_it() {
    let f = third();
    assert_eq!(f.name(), "collision::third::helper");
    assert_eq!(round_trip(&f, 1), Ok(4));
}
