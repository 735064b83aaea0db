//! Shows that the pre-main hook turns a criterion bench binary into a worker:
//! criterion's `main` never runs in the workers. The real benchmarks live in the
//! workspace's `benches/`.

use criterion::{Criterion, criterion_group, criterion_main};
use dilly_pool::{Executor, ProcessPool};

#[dilly::func]
fn double(x: u64) -> u64 {
    x * 2
}

fn map_1000(c: &mut Criterion) {
    let pool = ProcessPool::builder().workers(2).build().expect("a pool");
    let f = dilly::func_of!(double);
    c.bench_function("map 1000 doubles on 2 workers", |b| {
        b.iter(|| pool.map(&f, 0..1000u64).expect("results"))
    });
}

criterion_group!(benches, map_1000);
criterion_main!(benches);
