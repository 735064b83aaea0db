//! Awaiting results: `AsyncResult` is a `Future` and `Imap` a `Stream`, woken by
//! the pool when outcomes arrive, on tokio's current-thread runtime and on
//! `futures::executor::block_on`, for every executor.
//!
//! The proof that awaiting blocks no runtime thread is a gate: the tasks wait in
//! their workers until a file exists, and only a timer task on the same
//! single-threaded runtime creates it. If awaiting blocked the runtime's thread,
//! the timer could never run and the results never come (each task gives up after
//! a minute and returns a value the assertions reject, so a regression fails
//! instead of hanging).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dilly_pool::{Error, Executor, ProcessPool, Serial, TaskError, ThreadPool};
use futures_util::StreamExt;

/// What a gated task returns when it gave up waiting.
const GAVE_UP: u64 = u64::MAX;

/// Waits until `gate` exists (or the clock passes `give_up`, seconds since the
/// epoch), then returns `x * 2`.
#[dilly::func]
fn double_after(x: u64, gate: PathBuf, give_up: u64) -> u64 {
    while !gate.exists() {
        if now_secs() > give_up {
            return GAVE_UP;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    x * 2
}

/// [`double_after`] with its arguments in one tuple, for `imap_unordered`.
#[dilly::func]
fn double_after_one(task: (u64, PathBuf, u64)) -> u64 {
    let (x, gate, give_up) = task;
    double_after(x, gate, give_up)
}

#[dilly::func]
fn double(x: u64) -> u64 {
    x * 2
}

#[dilly::func]
fn checked_div(x: u64, y: u64) -> u64 {
    assert!(y != 0, "division of {x} by zero");
    x / y
}

/// Creates `dir/x` (so that a test can see which tasks ran), then returns `x`.
#[dilly::func]
fn mark(x: u64, dir: PathBuf) -> u64 {
    std::fs::write(dir.join(x.to_string()), b"ran").unwrap();
    x
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A path unique to this test and process, not yet there.
fn temp_path(name: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("dilly-pool-async-{name}-{}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let _ = std::fs::remove_dir_all(&path);
    path
}

fn current_thread_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
}

/// Spawns a timer task that ticks every millisecond, counting its ticks, and
/// creates `gate` on its third tick.
fn spawn_ticker(gate: &Path) -> Arc<AtomicU64> {
    let ticks = Arc::new(AtomicU64::new(0));
    let counted = Arc::clone(&ticks);
    let gate = gate.to_path_buf();
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(Duration::from_millis(1));
        loop {
            interval.tick().await;
            if counted.fetch_add(1, Ordering::SeqCst) + 1 == 3 {
                std::fs::write(&gate, b"open").unwrap();
            }
        }
    });
    ticks
}

#[test]
fn awaiting_200_results_on_a_current_thread_runtime_leaves_it_free_for_a_timer() {
    let pool = ProcessPool::builder().workers(2).build().unwrap();
    let gate = temp_path("apply-gate");
    let f = dilly::func_of!(double_after);
    let give_up = now_secs() + 60;
    current_thread_runtime().block_on(async {
        let ticks = spawn_ticker(&gate);
        let handles: Vec<_> = (0..200u64)
            .map(|x| pool.apply_async(&f, (x, gate.clone(), give_up)).unwrap())
            .collect();
        // The timer has not run yet: nothing has yielded to it.
        assert_eq!(ticks.load(Ordering::SeqCst), 0);
        for (x, handle) in (0..200u64).zip(handles) {
            assert_eq!(handle.await.unwrap(), x * 2, "task {x}");
        }
        // Every result needed the gate, which only the timer's third tick makes.
        let during = ticks.load(Ordering::SeqCst);
        assert!(
            during >= 3,
            "the timer ticked {during} times while awaiting"
        );
    });
    let _ = std::fs::remove_file(&gate);
}

#[test]
fn map_async_and_imap_streams_await_on_a_current_thread_runtime() {
    let pool = ProcessPool::builder().workers(2).build().unwrap();
    let f = dilly::func_of!(double_after);
    let give_up = now_secs() + 60;
    let expected: Vec<u64> = (0..200u64).map(|x| x * 2).collect();

    let gate = temp_path("map-gate");
    current_thread_runtime().block_on(async {
        let ticks = spawn_ticker(&gate);
        let handle = pool
            .starmap_async(&f, (0..200u64).map(|x| (x, gate.clone(), give_up)))
            .unwrap();
        assert_eq!(handle.await.unwrap(), expected);
        assert!(ticks.load(Ordering::SeqCst) >= 3);
    });
    let _ = std::fs::remove_file(&gate);

    let gate = temp_path("imap-gate");
    current_thread_runtime().block_on(async {
        let ticks = spawn_ticker(&gate);
        let stream = pool
            .istarmap(&f, (0..200u64).map(|x| (x, gate.clone(), give_up)))
            .unwrap()
            .into_stream();
        let out: Vec<u64> = stream.map(Result::unwrap).collect().await;
        assert_eq!(out, expected);
        assert!(ticks.load(Ordering::SeqCst) >= 3);
    });
    let _ = std::fs::remove_file(&gate);

    let gate = temp_path("unordered-gate");
    current_thread_runtime().block_on(async {
        let ticks = spawn_ticker(&gate);
        let one = dilly::func_of!(double_after_one);
        let items = (0..200u64).map(|x| (x, gate.clone(), give_up));
        let mut out: Vec<(usize, u64)> = pool
            .imap_unordered(&one, items)
            .unwrap()
            .into_stream()
            .indexed()
            .map(|(i, r)| (i, r.unwrap()))
            .collect()
            .await;
        out.sort_unstable();
        let indexed: Vec<(usize, u64)> = expected.iter().copied().enumerate().collect();
        assert_eq!(out, indexed);
        assert!(ticks.load(Ordering::SeqCst) >= 3);
    });
    let _ = std::fs::remove_file(&gate);
}

/// The same awaits on any executor: results, failures, streams.
fn await_everything(pool: &impl Executor) {
    futures_executor::block_on(async {
        let f = dilly::func_of!(double);
        assert_eq!(pool.apply_async(&f, (21,)).unwrap().await.unwrap(), 42);

        let handles: Vec<_> = (0..50u64)
            .map(|x| pool.apply_async(&f, (x,)).unwrap())
            .collect();
        let out: Vec<u64> = futures_util::future::join_all(handles)
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(out, (0..50u64).map(|x| x * 2).collect::<Vec<_>>());

        let all = pool.map_async(&f, 0..100u64).unwrap().await.unwrap();
        assert_eq!(all, (0..100u64).map(|x| x * 2).collect::<Vec<_>>());
        let none = pool.map_async(&f, 0..0u64).unwrap().await.unwrap();
        assert!(none.is_empty());

        let mut unordered: Vec<u64> = pool
            .imap_unordered(&f, 0..100u64)
            .unwrap()
            .into_stream()
            .map(Result::unwrap)
            .collect()
            .await;
        unordered.sort_unstable();
        assert_eq!(unordered, all);

        // A failure comes back as the value of the await.
        let div = dilly::func_of!(checked_div);
        match pool.apply_async(&div, (1, 0)).unwrap().await {
            Err(Error::Task {
                index: 0,
                error: TaskError::Panicked { message, .. },
            }) => assert!(message.contains("division of 1 by zero"), "{message}"),
            other => panic!("expected the panic, got {other:?}"),
        }
        let results: Vec<_> = pool
            .istarmap(&div, [(6, 3), (1, 0), (8, 2)])
            .unwrap()
            .into_stream()
            .collect()
            .await;
        assert!(matches!(
            results[..],
            [Ok(2), Err(TaskError::Panicked { .. }), Ok(4)]
        ));
        match pool.starmap_async(&div, [(6, 3), (1, 0)]).unwrap().await {
            Err(Error::Task { index: 1, .. }) => {}
            other => panic!("expected task 1's failure, got {other:?}"),
        }
    });
}

#[test]
fn results_await_on_block_on_for_every_executor() {
    await_everything(&ProcessPool::builder().workers(2).build().unwrap());
    await_everything(&ThreadPool::builder().workers(2).build().unwrap());
    await_everything(&Serial::new());
}

#[test]
fn a_handle_awaited_after_a_timed_out_get_gives_the_result() {
    let pool = ProcessPool::builder().workers(1).build().unwrap();
    let gate = temp_path("after-get-gate");
    let f = dilly::func_of!(double_after);
    let handle = pool
        .apply_async(&f, (5, gate.clone(), now_secs() + 60))
        .unwrap();
    assert!(matches!(
        handle.get_timeout(Duration::from_millis(10)),
        Err(Error::Timeout { .. })
    ));
    std::fs::write(&gate, b"open").unwrap();
    assert_eq!(futures_executor::block_on(handle).unwrap(), 10);
    let _ = std::fs::remove_file(&gate);
}

#[test]
fn dropping_pending_futures_leaves_the_process_pool_working() {
    let pool = ProcessPool::builder().workers(1).build().unwrap();
    let gate = temp_path("drop-gate");
    let f = dilly::func_of!(double_after);
    let give_up = now_secs() + 60;
    let runtime = current_thread_runtime();
    runtime.block_on(async {
        let short = Duration::from_millis(20);
        // Each is polled (so its waker is registered), then dropped pending.
        let one = pool.apply_async(&f, (1, gate.clone(), give_up)).unwrap();
        assert!(tokio::time::timeout(short, one).await.is_err());
        let many = pool
            .starmap_async(&f, (0..20u64).map(|x| (x, gate.clone(), give_up)))
            .unwrap();
        assert!(tokio::time::timeout(short, many).await.is_err());
        let mut stream = pool
            .istarmap(&f, (0..20u64).map(|x| (x, gate.clone(), give_up)))
            .unwrap()
            .into_stream();
        assert!(tokio::time::timeout(short, stream.next()).await.is_err());
        drop(stream);
    });
    std::fs::write(&gate, b"open").unwrap();

    // Later calls get their own results, none of the dropped ones.
    let d = dilly::func_of!(double);
    assert_eq!(
        pool.map(&d, 100..110u64).unwrap(),
        (100..110u64).map(|x| x * 2).collect::<Vec<_>>()
    );
    runtime.block_on(async {
        assert_eq!(pool.apply_async(&d, (7,)).unwrap().await.unwrap(), 14);
        let later = pool
            .starmap_async(&f, (0..5u64).map(|x| (x, gate.clone(), give_up)))
            .unwrap();
        assert_eq!(later.await.unwrap(), [0, 2, 4, 6, 8]);
    });
    drop(pool);
    let _ = std::fs::remove_file(&gate);
}

#[test]
fn tasks_of_a_dropped_future_that_had_not_started_never_run() {
    let pool = ThreadPool::builder().workers(1).build().unwrap();
    let gate = temp_path("thread-drop-gate");
    let dir = temp_path("thread-drop-marks");
    std::fs::create_dir_all(&dir).unwrap();
    let f = dilly::func_of!(double_after);
    let m = dilly::func_of!(mark);
    current_thread_runtime().block_on(async {
        let short = Duration::from_millis(20);
        // The only thread is held by this task until the gate opens.
        let blocker = pool
            .apply_async(&f, (1, gate.clone(), now_secs() + 60))
            .unwrap();
        let queued = pool
            .starmap_async(&m, (0..20u64).map(|x| (x, dir.clone())))
            .unwrap();
        assert!(tokio::time::timeout(short, queued).await.is_err());
        std::fs::write(&gate, b"open").unwrap();
        assert_eq!(blocker.await.unwrap(), 2);
    });
    // The pool is free again, and the dropped tasks never ran.
    assert_eq!(pool.starmap(&m, [(100, dir.clone())]).unwrap(), [100]);
    let ran: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(ran, ["100"]);
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_file(&gate);
}

#[test]
fn a_pending_future_ends_when_its_pool_is_dropped() {
    let pool = ProcessPool::builder().workers(1).build().unwrap();
    let gate = temp_path("pool-drop-gate");
    let f = dilly::func_of!(double_after);
    let running = pool
        .apply_async(&f, (1, gate.clone(), now_secs() + 60))
        .unwrap();
    let queued = pool
        .apply_async(&f, (2, gate.clone(), now_secs() + 60))
        .unwrap();
    drop(pool);
    // The gate never opens: only the pool's going can end these awaits.
    let (running, queued) = futures_executor::block_on(async { (running.await, queued.await) });
    for result in [running, queued] {
        assert!(
            matches!(
                result,
                Err(Error::Task {
                    error: TaskError::Terminated,
                    ..
                })
            ),
            "{result:?}"
        );
    }
}
