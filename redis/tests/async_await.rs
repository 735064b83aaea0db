//! Awaiting a `RedisPool`'s results: `apply_async` and `map_async` handles are
//! futures, woken by the pool's collector thread when outcomes arrive, on tokio's
//! current-thread runtime and on `futures::executor::block_on`.
//!
//! As in dilly-pool's async tests, the tasks wait on the host for a file that
//! only a timer task on the awaiting, single-threaded runtime creates: the awaits
//! finish only if that thread stayed free while they were pending.

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{Host, Redis};
use dilly_pool::{Error, Executor, TaskError};
use dilly_redis::RedisPool;

#[test]
fn host_entry() {
    common::host_entry();
}

/// Waits until `gate` exists (or the clock passes `give_up`, seconds since the
/// epoch: then it returns `u64::MAX`, which the tests reject), then returns
/// `x * 2`.
#[dilly::func]
fn double_after(x: u64, gate: PathBuf, give_up: u64) -> u64 {
    while !gate.exists() {
        if now_secs() > give_up {
            return u64::MAX;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    x * 2
}

#[dilly::func]
fn checked_div(x: u64, y: u64) -> u64 {
    assert!(y != 0, "division of {x} by zero");
    x / y
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn awaiting_200_results_on_a_current_thread_runtime_leaves_it_free_for_a_timer() {
    let redis = Redis::start();
    let _host = Host::start(&redis.url(), "async");
    let pool = RedisPool::builder(redis.url())
        .queue("async")
        .build()
        .unwrap();
    let gate = std::env::temp_dir().join(format!("dilly-redis-async-gate-{}", std::process::id()));
    let _ = std::fs::remove_file(&gate);
    let f = dilly::func_of!(double_after);
    let give_up = now_secs() + 60;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    runtime.block_on(async {
        let ticks = Arc::new(AtomicU64::new(0));
        let counted = Arc::clone(&ticks);
        let opened = gate.clone();
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(Duration::from_millis(1));
            loop {
                interval.tick().await;
                if counted.fetch_add(1, Ordering::SeqCst) + 1 == 3 {
                    std::fs::write(&opened, b"open").unwrap();
                }
            }
        });
        let handles: Vec<_> = (0..150u64)
            .map(|x| pool.apply_async(&f, (x, gate.clone(), give_up)).unwrap())
            .collect();
        let map = pool
            .starmap_async(&f, (150..200u64).map(|x| (x, gate.clone(), give_up)))
            .unwrap();
        assert_eq!(ticks.load(Ordering::SeqCst), 0, "nothing yielded yet");
        for (x, handle) in (0..150u64).zip(handles) {
            assert_eq!(handle.await.unwrap(), x * 2, "task {x}");
        }
        let rest = map.await.unwrap();
        assert_eq!(rest, (150..200u64).map(|x| x * 2).collect::<Vec<_>>());
        let during = ticks.load(Ordering::SeqCst);
        assert!(
            during >= 3,
            "the timer ticked {during} times while awaiting"
        );
    });
    let _ = std::fs::remove_file(&gate);
}

#[test]
fn results_and_failures_await_on_block_on_and_a_dropped_future_leaves_the_pool_working() {
    let redis = Redis::start();
    let _host = Host::start(&redis.url(), "block-on");
    // One chunk of a job in Redis at a time: the collector thread, not the
    // awaiting caller, must move each next chunk in.
    let pool = RedisPool::builder(redis.url())
        .queue("block-on")
        .window(1)
        .build()
        .unwrap();
    let div = dilly::func_of!(checked_div);
    futures_executor::block_on(async {
        assert_eq!(pool.apply_async(&div, (84, 2)).unwrap().await.unwrap(), 42);
        let out = pool
            .starmap_async(&div, (1..=200u64).map(|x| (x * 10, x)))
            .unwrap()
            .await
            .unwrap();
        assert_eq!(out, [10; 200]);
        match pool.apply_async(&div, (1, 0)).unwrap().await {
            Err(Error::Task {
                index: 0,
                error: TaskError::Panicked { message, .. },
            }) => assert!(message.contains("division of 1 by zero"), "{message}"),
            other => panic!("expected the panic, got {other:?}"),
        }
    });

    // A future polled once and dropped pending: the pool goes on.
    let gate = std::env::temp_dir().join(format!("dilly-redis-drop-gate-{}", std::process::id()));
    let _ = std::fs::remove_file(&gate);
    let f = dilly::func_of!(double_after);
    let mut pending = pool
        .starmap_async(&f, (0..10u64).map(|x| (x, gate.clone(), now_secs() + 60)))
        .unwrap();
    let waker = std::task::Waker::noop();
    let polled = std::future::Future::poll(
        std::pin::Pin::new(&mut pending),
        &mut std::task::Context::from_waker(waker),
    );
    assert!(polled.is_pending());
    drop(pending);
    std::fs::write(&gate, b"open").unwrap();
    let later = futures_executor::block_on(pool.apply_async(&div, (9, 3)).unwrap()).unwrap();
    assert_eq!(later, 3);
    assert_eq!(
        pool.map(&dilly::func_of!(double_one), [5u64]).unwrap(),
        [10]
    );
    let _ = std::fs::remove_file(&gate);
}

#[dilly::func]
fn double_one(x: u64) -> u64 {
    x * 2
}
