//! A name clash that remains — two items given one explicit name — fails the pool's
//! build, before any worker starts or task runs, naming both items, where each is
//! registered, and the fix.

use dilly_pool::{Error, ProcessPool};

fn first() -> dilly::Func<(u64,), u64> {
    #[dilly::func(name = "name_clash::shared")]
    fn helper(x: u64) -> u64 {
        x + 1
    }
    dilly::func_of!(helper)
}

fn second() -> dilly::Func<(u64,), u64> {
    #[dilly::func(name = "name_clash::shared")]
    fn helper(x: u64) -> u64 {
        x + 2
    }
    dilly::func_of!(helper)
}

#[test]
fn a_pool_build_fails_naming_both_places_and_the_fix() {
    // Local calls still work: each value holds its own entry.
    assert_eq!(first().call((1,)), 2);
    assert_eq!(second().call((1,)), 3);

    let err = ProcessPool::builder().workers(1).build().unwrap_err();
    let Error::Registry { error } = &err else {
        panic!("expected a registry error, got {err}");
    };
    let dilly::Error::DuplicateSymbol {
        first,
        second,
        first_at,
        second_at,
        ..
    } = error
    else {
        panic!("expected DuplicateSymbol, got {error}");
    };
    assert_eq!(
        (&**first, &**second),
        ("name_clash::shared", "name_clash::shared")
    );
    // `file:line:column` of the two `#[dilly::func(name = ...)]` attributes above.
    let line = |at: &str| -> u32 { at.rsplit(':').nth(1).unwrap().parse().unwrap() };
    let mut lines = [line(first_at), line(second_at)];
    lines.sort_unstable();
    assert_eq!(lines, [8, 16]);
    assert!(first_at.contains("name_clash.rs:"), "{first_at}");
    assert!(second_at.contains("name_clash.rs:"), "{second_at}");
    let text = err.to_string();
    assert!(text.contains("name_clash.rs:8:"), "{text}");
    assert!(text.contains("name_clash.rs:16:"), "{text}");
    assert!(text.contains("name = \"...\""), "the fix: {text}");
}
