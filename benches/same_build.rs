//! The same-build mode costs no more than the by-name mode.
//!
//! The same closure, `x + offset + names.len()`, made both ways:
//! `closure!([offset: u64, names: Vec<String>] ...)` (by name, `Func<A, R>`) and
//! `closure!(move |x: u64| ...)` (by address, `Func<A, R, SameBuild>`). Measured:
//!
//! * `call`: a typed local call, `f.call((29,))`;
//! * `call_bytes`: the worker's path, encoded arguments in and an encoded result out;
//! * `receive_and_call`: `from_bytes` of the value, then a call: what a worker does
//!   once per function it is sent (build ID check and address check included for
//!   the same-build value).
//!
//! `docs/benchmarks.md` records the ratios; the target is within 10%.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion};
use dilly::{Func, SameBuild, closure};

fn by_name() -> Func<(u64,), u64> {
    let offset = 10u64;
    let names = vec!["alpha".to_string(), "beta".to_string(), "gamma".to_string()];
    closure!([offset: u64, names: Vec<String>] move |x: u64| x + offset + names.len() as u64)
}

fn same_build() -> Func<(u64,), u64, SameBuild> {
    let offset = 10u64;
    let names = vec!["alpha".to_string(), "beta".to_string(), "gamma".to_string()];
    closure!(move |x: u64| x + offset + names.len() as u64)
}

fn bench(c: &mut Criterion) {
    let named = by_name();
    let addressed = same_build();
    assert!(named.is_portable() && !addressed.is_portable());
    assert_eq!(named.call((29,)), 42);
    assert_eq!(addressed.call((29,)), 42);
    let args = named.encode_args(&(29,)).expect("encode arguments");
    let named_bytes = dilly::to_bytes(&named).expect("encode");
    let addressed_bytes = dilly::to_bytes(&addressed).expect("encode");

    let mut group = c.benchmark_group("same_build");
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(2));

    group.bench_function(BenchmarkId::new("call", "by_name"), |b| {
        b.iter(|| black_box(&named).call(black_box((29,))))
    });
    group.bench_function(BenchmarkId::new("call", "same_build"), |b| {
        b.iter(|| black_box(&addressed).call(black_box((29,))))
    });
    group.bench_function(BenchmarkId::new("call_bytes", "by_name"), |b| {
        b.iter(|| named.erased().call_bytes(black_box(&args)))
    });
    group.bench_function(BenchmarkId::new("call_bytes", "same_build"), |b| {
        b.iter(|| addressed.erased().call_bytes(black_box(&args)))
    });
    group.bench_function(BenchmarkId::new("receive_and_call", "by_name"), |b| {
        b.iter(|| {
            let f: Func<(u64,), u64> = dilly::from_bytes(black_box(&named_bytes)).expect("decode");
            f.call((29,))
        })
    });
    group.bench_function(BenchmarkId::new("receive_and_call", "same_build"), |b| {
        b.iter(|| {
            let f: Func<(u64,), u64, SameBuild> =
                dilly::from_bytes(black_box(&addressed_bytes)).expect("decode");
            f.call((29,))
        })
    });
    group.finish();
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    bench(&mut criterion);
    criterion.final_summary();
}
