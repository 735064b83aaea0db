//! Pool round trips with every kind of call and a failing task: what
//! `scripts/valgrind.sh` runs under memcheck (workers included). The workers'
//! program is named explicitly, as under valgrind `/proc/self/exe` is valgrind's
//! own tool.
//!
//! ```text
//! cargo run -p dilly-pool --example round_trip
//! ```

use std::iter::zip;

use dilly_pool::{Error, Executor, ProcessPool, StartMethod, TaskError};

#[dilly::func]
fn mul(x: u64, y: u64) -> u64 {
    x * y
}

#[dilly::func]
fn checked_half(x: u64) -> u64 {
    assert!(x.is_multiple_of(2), "{x} is odd");
    x / 2
}

fn main() {
    let program = std::env::args_os().next().expect("argv[0]");
    for method in [StartMethod::Spawn, StartMethod::ForkServer] {
        let pool = ProcessPool::builder()
            .workers(2)
            .start_method(method)
            .program(&program)
            .build()
            .expect("a pool");
        let mul = dilly::func_of!(mul);
        let out = pool.starmap(&mul, zip([1, 2, 3, 4], [5, 6, 7, 8])).unwrap();
        assert_eq!(out, [5, 12, 21, 32]);
        assert_eq!(pool.apply(&mul, (6, 7)).unwrap(), 42);
        let handle = pool.apply_async(&mul, (3, 3)).unwrap();
        let half = dilly::func_of!(checked_half);
        let streamed: Vec<_> = pool.imap(&half, [2u64, 3, 4]).unwrap().collect();
        assert_eq!(streamed[0], Ok(1));
        assert!(matches!(streamed[1], Err(TaskError::Panicked { .. })));
        assert_eq!(streamed[2], Ok(2));
        match pool.map(&half, 0..100u64) {
            Err(Error::Task { index: 1, .. }) => {}
            other => panic!("expected task 1 to fail, got {other:?}"),
        }
        assert_eq!(handle.get().unwrap(), 9);
        println!("{method:?}: round trips done");
    }
}
