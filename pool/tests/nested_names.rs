//! Same-named nested items register and run: each is named by its enclosing
//! function, and same-named items in different blocks of one function by a hash of
//! their own tokens as well. Every value runs in real worker processes.

use dilly::Func;
use dilly_pool::{Executor, ProcessPool};

/// Two functions of one module, each with a nested `helper`, and a function with a
/// nested `plus` in each of two blocks; two functions each with a local `Local`
/// whose registered method has one name.
mod app {
    use dilly::{Func, bind, closure, func_of};
    use serde::{Deserialize, Serialize};

    pub(crate) fn first() -> Func<(u64,), u64> {
        #[dilly::func]
        fn helper(x: u64) -> u64 {
            x + 1
        }
        func_of!(helper)
    }

    pub(crate) fn second() -> Func<(u64,), u64> {
        #[dilly::func]
        fn helper(x: u64) -> u64 {
            x * 100
        }
        func_of!(helper)
    }

    pub(crate) fn blocks() -> (Func<(u64,), u64>, Func<(u64,), u64>) {
        let ten = {
            #[dilly::func]
            fn plus(x: u64) -> u64 {
                x + 10
            }
            func_of!(plus)
        };
        let twenty = {
            #[dilly::func]
            fn plus(x: u64) -> u64 {
                x + 20
            }
            func_of!(plus)
        };
        (ten, twenty)
    }

    /// The same closure text in two functions, calling each function's own `step`.
    pub(crate) fn closure_a() -> Func<(u64,), u64> {
        fn step(x: u64) -> u64 {
            x + 7
        }
        closure!(|x: u64| step(x))
    }

    pub(crate) fn closure_b() -> Func<(u64,), u64> {
        fn step(x: u64) -> u64 {
            x * 7
        }
        closure!(|x: u64| step(x))
    }

    pub(crate) fn local_a() -> Func<(u64,), u64> {
        #[derive(Serialize, Deserialize)]
        struct Local {
            add: u64,
        }
        #[dilly::methods]
        impl Local {
            fn go(&self, x: u64) -> u64 {
                x + self.add
            }
        }
        let local = Local { add: 5 };
        bind!(local.go)
    }

    pub(crate) fn local_b() -> Func<(u64,), u64> {
        #[derive(Serialize, Deserialize)]
        struct Local {
            times: u64,
        }
        #[dilly::methods]
        impl Local {
            fn go(&self, x: u64) -> u64 {
                x * self.times
            }
        }
        let local = Local { times: 3 };
        bind!(local.go)
    }
}

fn pool() -> ProcessPool {
    ProcessPool::builder().workers(2).build().unwrap()
}

fn run(pool: &ProcessPool, f: &Func<(u64,), u64>) -> Vec<u64> {
    pool.map(f, 1..=4u64).unwrap()
}

#[test]
fn nested_functions_of_two_functions_are_named_by_them_and_both_run() {
    let (first, second) = (app::first(), app::second());
    assert_eq!(first.name(), "nested_names::app::first::helper");
    assert_eq!(second.name(), "nested_names::app::second::helper");
    let pool = pool();
    assert_eq!(run(&pool, &first), [2, 3, 4, 5]);
    assert_eq!(run(&pool, &second), [100, 200, 300, 400]);
}

#[test]
fn nested_functions_in_two_blocks_of_one_function_both_run() {
    let (ten, twenty) = app::blocks();
    for f in [&ten, &twenty] {
        let (base, hash) = f.name().split_once('#').expect("told apart by a hash");
        assert_eq!(base, "nested_names::app::blocks::plus");
        assert_eq!(hash.len(), 16, "{}", f.name());
        assert!(hash.chars().all(|c| c.is_ascii_hexdigit()), "{}", f.name());
    }
    assert_ne!(ten.name(), twenty.name());
    let pool = pool();
    assert_eq!(run(&pool, &ten), [11, 12, 13, 14]);
    assert_eq!(run(&pool, &twenty), [21, 22, 23, 24]);
}

#[test]
fn methods_of_two_local_types_with_one_name_both_run() {
    let (a, b) = (app::local_a(), app::local_b());
    assert_eq!(a.name(), "nested_names::app::local_a::Local::go");
    assert_eq!(b.name(), "nested_names::app::local_b::Local::go");
    let pool = pool();
    assert_eq!(run(&pool, &a), [6, 7, 8, 9]);
    assert_eq!(run(&pool, &b), [3, 6, 9, 12]);
}

#[test]
fn token_identical_closures_of_two_functions_are_named_by_them_and_both_run() {
    let (a, b) = (app::closure_a(), app::closure_b());
    let (scope_a, hash_a) = a.name().split_once("::{closure#").expect("a closure name");
    let (scope_b, hash_b) = b.name().split_once("::{closure#").expect("a closure name");
    assert_eq!(hash_a, hash_b, "the same text");
    assert_eq!(scope_a, "nested_names::app::closure_a");
    assert_eq!(scope_b, "nested_names::app::closure_b");
    let pool = pool();
    assert_eq!(run(&pool, &a), [8, 9, 10, 11]);
    assert_eq!(run(&pool, &b), [7, 14, 21, 28]);
}

#[test]
fn the_registry_has_no_duplicates() {
    assert_eq!(dilly::registry::duplicates(), &[]);
    assert_eq!(dilly::registry::check(), Ok(()));
}
