//! Round trip of a function value — serialize, deserialize, call — for the four kinds
//! of callable that Python needs dill or cloudpickle for, with dilly and with the
//! `serde_closure` crate as the Rust baseline.
//!
//! The workloads match `benches/python/serialize.py` exactly:
//!
//! | kind           | callable                                                        | call    |
//! |----------------|-----------------------------------------------------------------|---------|
//! | `free_fn`      | module-level `double(x) = x * 2`                                | `(21,)` |
//! | `nested_fn`    | `triple(x) = x * 3`, defined inside a function body             | `(14,)` |
//! | `bound_method` | `Transformer { factor: 1 }.process_data(x, y) = x * y`, type defined inside a function body | `(6, 7)` |
//! | `closure`      | `x + offset + names.len()`, `offset = 10`, `names = ["alpha", "beta", "gamma"]` | `(29,)` |
//!
//! Every call must return 42. One iteration is
//! `from_bytes(to_bytes(f)).call(args)`: dilly uses [`dilly::to_bytes`] /
//! [`dilly::from_bytes`]; `serde_closure` (whose values only work inside the binary
//! that made them) uses `bincode::serde::encode_to_vec` / `decode_from_slice` with
//! `bincode::config::standard()`, the configuration dilly's codec uses too.
//! `serde_closure` can only express closures, so its free fn, nested fn and bound
//! method are `Fn!` closures that call the function (or capture the receiver).
//!
//! Before measuring, the bench checks every round trip and writes the payload sizes
//! (`to_bytes(&f).len()` for dilly, `encode_to_vec(&f).len()` for `serde_closure`) to
//! `<target dir>/dilly-bench/serialize-sizes.json` and prints them. Times land in
//! criterion's usual place, `<target dir>/criterion/serialize/<tool>/<kind>/`.
//! `benches/compare.sh` puts both next to the Python numbers.

mod common;

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion};
use dilly::{Func, bind, closure, func_of};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_closure::Fn;

/// What every call in this benchmark must return.
const EXPECTED: u64 = 42;

/// The four kinds, in report order.
const KINDS: [&str; 4] = ["free_fn", "nested_fn", "bound_method", "closure"];

// ---------------------------------------------------------------------------------
// The callables.
// ---------------------------------------------------------------------------------

/// `free_fn`: a module-level function.
#[dilly::func]
fn double(x: u64) -> u64 {
    x * 2
}

/// The four kinds as dilly values.
struct DillyFuncs {
    free_fn: Func<(u64,), u64>,
    nested_fn: Func<(u64,), u64>,
    bound_method: Func<(u64, u64), u64>,
    closure: Func<(u64,), u64>,
}

/// `nested_fn`: `triple` is defined inside this function's body.
fn dilly_nested() -> Func<(u64,), u64> {
    #[dilly::func]
    fn triple(x: u64) -> u64 {
        x * 3
    }
    func_of!(triple)
}

/// `bound_method`: a method of a type defined inside this function's body, bound to
/// `Transformer { factor: 1 }`. As in Python, the result is `x * y`; `factor` is the
/// instance state that travels with the method.
fn dilly_bound_method() -> Func<(u64, u64), u64> {
    #[derive(serde::Serialize, serde::Deserialize)]
    struct Transformer {
        factor: u64,
    }

    #[dilly::methods]
    impl Transformer {
        fn process_data(&self, x: u64, y: u64) -> u64 {
            x * y
        }
    }

    let t = Transformer { factor: 1 };
    bind!(t.process_data)
}

/// `closure`: captures a `Vec<String>` and a `u64`.
fn dilly_closure() -> Func<(u64,), u64> {
    let names: Vec<String> = ["alpha", "beta", "gamma"].map(String::from).to_vec();
    let offset: u64 = 10;
    closure!([names: Vec<String>, offset: u64] move |x: u64| x + offset + names.len() as u64)
}

fn dilly_funcs() -> DillyFuncs {
    DillyFuncs {
        free_fn: func_of!(double),
        nested_fn: dilly_nested(),
        bound_method: dilly_bound_method(),
        closure: dilly_closure(),
    }
}

/// A plain (non-dilly) module-level function for the `serde_closure` baseline.
fn double_plain(x: u64) -> u64 {
    x * 2
}

/// `serde_closure`'s `Fn!` wrappers for the four kinds, built in one function so the
/// nested fn and the local type can be shared by all of them.
macro_rules! with_serde_closures {
    (|$free:ident, $nested:ident, $method:ident, $closure:ident| $body:block) => {{
        fn triple(x: u64) -> u64 {
            x * 3
        }

        #[derive(serde::Serialize, serde::Deserialize, Debug)]
        struct Transformer {
            factor: u64,
        }

        impl Transformer {
            fn process_data(&self, x: u64, y: u64) -> u64 {
                x * y
            }
        }

        let t = Transformer { factor: 1 };
        let names: Vec<String> = ["alpha", "beta", "gamma"].map(String::from).to_vec();
        let offset: u64 = 10;

        let $free = Fn!(|x: u64| double_plain(x));
        let $nested = Fn!(|x: u64| triple(x));
        let $method = Fn!(move |x: u64, y: u64| t.process_data(x, y));
        let $closure = Fn!(move |x: u64| x + offset + names.len() as u64);
        $body
    }};
}

// ---------------------------------------------------------------------------------
// Round trips.
// ---------------------------------------------------------------------------------

/// dilly: `to_bytes`, `from_bytes`, call.
fn dilly_round_trip<A: 'static, R: 'static>(f: &Func<A, R>, args: A) -> R {
    let bytes = dilly::to_bytes(f).expect("dilly::to_bytes");
    let g: Func<A, R> = dilly::from_bytes(&bytes).expect("dilly::from_bytes");
    g.call(args)
}

/// `serde_closure`: the same with bincode 2, standard config.
fn serde_closure_round_trip<F, A>(f: &F, args: A) -> F::Output
where
    F: serde_closure::traits::Fn<A> + Serialize + DeserializeOwned,
{
    let config = bincode::config::standard();
    let bytes = bincode::serde::encode_to_vec(f, config).expect("bincode encode");
    let (g, _): (F, usize) =
        bincode::serde::decode_from_slice(&bytes, config).expect("bincode decode");
    g.call(args)
}

fn dilly_size<A: 'static, R: 'static>(f: &Func<A, R>) -> usize {
    dilly::to_bytes(f).expect("dilly::to_bytes").len()
}

fn serde_closure_size<F: Serialize>(f: &F) -> usize {
    bincode::serde::encode_to_vec(f, bincode::config::standard())
        .expect("bincode encode")
        .len()
}

// ---------------------------------------------------------------------------------
// Payload sizes.
// ---------------------------------------------------------------------------------

/// Checks that every round trip returns [`EXPECTED`] and returns the payload sizes as
/// `(tool, kind, bytes)`.
fn check_and_measure_sizes() -> Vec<(&'static str, &'static str, usize)> {
    let d = dilly_funcs();
    let results = [
        dilly_round_trip(&d.free_fn, (21,)),
        dilly_round_trip(&d.nested_fn, (14,)),
        dilly_round_trip(&d.bound_method, (6, 7)),
        dilly_round_trip(&d.closure, (29,)),
    ];
    assert_eq!(results, [EXPECTED; 4], "dilly round trips");
    let mut sizes = vec![
        ("dilly", "free_fn", dilly_size(&d.free_fn)),
        ("dilly", "nested_fn", dilly_size(&d.nested_fn)),
        ("dilly", "bound_method", dilly_size(&d.bound_method)),
        ("dilly", "closure", dilly_size(&d.closure)),
    ];

    with_serde_closures!(|free, nested, method, closure| {
        let results = [
            serde_closure_round_trip(&free, (21,)),
            serde_closure_round_trip(&nested, (14,)),
            serde_closure_round_trip(&method, (6, 7)),
            serde_closure_round_trip(&closure, (29,)),
        ];
        assert_eq!(results, [EXPECTED; 4], "serde_closure round trips");
        sizes.extend([
            ("serde_closure", "free_fn", serde_closure_size(&free)),
            ("serde_closure", "nested_fn", serde_closure_size(&nested)),
            ("serde_closure", "bound_method", serde_closure_size(&method)),
            ("serde_closure", "closure", serde_closure_size(&closure)),
        ]);
    });
    sizes
}

/// Writes `<target>/dilly-bench/serialize-sizes.json` and prints the sizes.
fn write_sizes(sizes: &[(&str, &str, usize)]) {
    let rows: Vec<String> = sizes
        .iter()
        .map(|(tool, kind, bytes)| {
            format!(r#"    {{"tool": "{tool}", "kind": "{kind}", "payload_bytes": {bytes}}}"#)
        })
        .collect();
    let json = format!(
        "{{\n  \"workload\": \"serialize\",\n  \"sizes\": [\n{}\n  ]\n}}\n",
        rows.join(",\n")
    );
    common::write_report("serialize-sizes.json", &json, "payload sizes");
    for kind in KINDS {
        let of = |tool: &str| {
            sizes
                .iter()
                .find(|(t, k, _)| *t == tool && *k == kind)
                .map_or(0, |(_, _, bytes)| *bytes)
        };
        println!(
            "  {kind:<12} dilly {:>3} bytes, serde_closure {:>3} bytes",
            of("dilly"),
            of("serde_closure")
        );
    }
}

// ---------------------------------------------------------------------------------
// Benchmarks.
// ---------------------------------------------------------------------------------

fn bench_serialize(c: &mut Criterion) {
    let mut group = c.benchmark_group("serialize");

    let d = dilly_funcs();
    group.bench_function(BenchmarkId::new("dilly", "free_fn"), |b| {
        b.iter(|| dilly_round_trip(black_box(&d.free_fn), black_box((21,))))
    });
    group.bench_function(BenchmarkId::new("dilly", "nested_fn"), |b| {
        b.iter(|| dilly_round_trip(black_box(&d.nested_fn), black_box((14,))))
    });
    group.bench_function(BenchmarkId::new("dilly", "bound_method"), |b| {
        b.iter(|| dilly_round_trip(black_box(&d.bound_method), black_box((6, 7))))
    });
    group.bench_function(BenchmarkId::new("dilly", "closure"), |b| {
        b.iter(|| dilly_round_trip(black_box(&d.closure), black_box((29,))))
    });

    with_serde_closures!(|free, nested, method, closure| {
        group.bench_function(BenchmarkId::new("serde_closure", "free_fn"), |b| {
            b.iter(|| serde_closure_round_trip(black_box(&free), black_box((21,))))
        });
        group.bench_function(BenchmarkId::new("serde_closure", "nested_fn"), |b| {
            b.iter(|| serde_closure_round_trip(black_box(&nested), black_box((14,))))
        });
        group.bench_function(BenchmarkId::new("serde_closure", "bound_method"), |b| {
            b.iter(|| serde_closure_round_trip(black_box(&method), black_box((6, 7))))
        });
        group.bench_function(BenchmarkId::new("serde_closure", "closure"), |b| {
            b.iter(|| serde_closure_round_trip(black_box(&closure), black_box((29,))))
        });
    });

    group.finish();
}

fn main() {
    write_sizes(&check_and_measure_sizes());

    let mut criterion = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_millis(2500))
        .sample_size(60)
        .configure_from_args();
    bench_serialize(&mut criterion);
    criterion.final_summary();
}
