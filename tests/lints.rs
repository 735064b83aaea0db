//! Every macro's expansion stays clean under strict user lints: this file denies
//! warnings, pedantic clippy, missing docs, unreachable `pub` and needless paths, and
//! still uses each macro in each of its forms.

#![deny(
    warnings,
    missing_docs,
    unreachable_pub,
    unused_qualifications,
    unused_results,
    unused_import_braces,
    trivial_casts,
    trivial_numeric_casts,
    variant_size_differences,
    clippy::all,
    clippy::pedantic
)]

/// Items registered with every macro, written as a strict crate would.
pub mod strict {
    use dilly::{Dilly, Func, Task, bind, closure, func_of};
    use serde::{Deserialize, Serialize};

    /// A free function.
    #[dilly::func]
    #[must_use]
    pub fn double(x: u64) -> u64 {
        x * 2
    }

    /// A private function with an explicit name and no arguments.
    #[dilly::func(name = "lints::forty_two")]
    fn forty_two() -> u64 {
        42
    }

    /// A counter whose methods travel with it.
    #[derive(Clone, Serialize, Deserialize)]
    pub struct Counter {
        /// The current count.
        pub count: u64,
    }

    #[dilly::methods]
    impl Counter {
        /// Reads the count plus `x`.
        #[must_use]
        pub fn peek(&self, x: u64) -> u64 {
            self.count + x
        }

        /// Adds `x` to a copy and returns the new count.
        pub fn bump(&mut self, x: u64) -> u64 {
            self.count += x;
            self.count
        }

        /// Consumes the counter.
        #[must_use]
        pub fn into_count(self) -> u64 {
            self.count
        }

        /// `x`, at most ten.
        #[must_use]
        pub fn at_most_ten(x: u64) -> u64 {
            x.min(10)
        }

        /// Not registered.
        #[dilly(skip)]
        #[must_use]
        pub fn skipped(&self) -> u64 {
            self.count
        }

        /// Registered under an explicit name.
        #[dilly(name = "lints::Counter::triple")]
        fn triple(&self) -> u64 {
            self.count * 3
        }
    }

    /// A value that travels as `Box<dyn Object>`.
    #[derive(Debug, PartialEq, Eq, Serialize, Deserialize, Dilly)]
    pub struct Point {
        /// Horizontal.
        pub x: i64,
        /// Vertical.
        pub y: i64,
    }

    /// A task object.
    #[derive(Serialize, Deserialize, Dilly)]
    #[dilly(task, name = "lints::Scale")]
    pub struct Scale {
        /// The factor.
        pub factor: u64,
    }

    impl Task for Scale {
        type Args = (u64,);
        type Output = u64;
        fn call(&self, (x,): (u64,)) -> u64 {
            x * self.factor
        }
    }

    /// Runs every macro and checks the results; returns how many checks passed.
    ///
    /// # Panics
    ///
    /// If a value does not survive a round trip.
    #[must_use]
    pub fn run() -> usize {
        /// A nested function.
        #[dilly::func]
        fn add(a: u64, b: u64) -> u64 {
            a + b
        }

        let counter = Counter { count: 10 };
        let offset = 5u64;
        let names = vec!["alpha".to_owned(), "beta".to_owned()];

        let values: Vec<(Func<(u64,), u64>, u64, u64)> = vec![
            (func_of!(double), 21, 42),
            (bind!(counter.peek), 1, 11),
            (bind!(counter.bump), 2, 12),
            (func_of!(Counter::at_most_ten), 70, 10),
            (closure!(|x: u64| x + 1), 1, 2),
            (closure!([offset: u64] move |x: u64| x + offset), 1, 6),
            (
                closure!([names: Vec<String>, offset: u64] |x: u64| {
                    x + offset + names.len() as u64
                }),
                1,
                8,
            ),
            (Func::from_task(Scale { factor: 3 }), 14, 42),
        ];
        let mut checks = 0;
        for (f, arg, want) in values {
            let bytes = dilly::to_bytes(&f).expect("encodes");
            let back: Func<(u64,), u64> = dilly::from_bytes(&bytes).expect("decodes");
            assert_eq!(f.call((arg,)), want);
            assert_eq!(back.call((arg,)), want);
            checks += 1;
        }

        let pair: Func<(u64, u64), u64> = func_of!(add);
        assert_eq!(pair.call((40, 2)), 42);
        let none: Func<(), u64> = func_of!(forty_two);
        assert_eq!(none.call(()), 42);
        let owned: Func<(), u64> = bind!(counter.into_count);
        assert_eq!(owned.call(()), 10);
        let triple: Func<(), u64> = bind!(counter.triple);
        assert_eq!(triple.call(()), 30);
        assert_eq!(counter.skipped(), 10);
        checks += 4;

        let point: Box<dyn dilly::Object> = Box::new(Point { x: 1, y: 2 });
        let bytes = dilly::to_bytes(&point).expect("encodes");
        let back: Box<dyn dilly::Object> = dilly::from_bytes(&bytes).expect("decodes");
        assert_eq!(back.downcast_ref::<Point>(), Some(&Point { x: 1, y: 2 }));
        checks + 1
    }
}

#[test]
fn expansions_are_lint_clean() {
    assert_eq!(strict::run(), 13);
}
