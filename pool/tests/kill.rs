//! `kill -9` of a worker in the middle of a task.

use std::path::PathBuf;
use std::time::Duration;

use dilly_pool::{Executor, ProcessPool, TaskError, WorkerExit};

mod common;

use common::*;

/// How long a task waits to be killed before giving up (so a broken pool fails
/// the test instead of hanging it).
const PATIENCE: Duration = Duration::from_secs(120);

#[dilly::func]
fn square(x: u64) -> u64 {
    x * x
}

#[test]
fn kill_9_mid_task_fails_that_task_and_the_pool_goes_on() {
    let pool = ProcessPool::builder().workers(2).build().unwrap();
    let path = std::env::temp_dir().join(format!("dilly-pool-kill-{}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let handle = pool
        .apply_async(&dilly::func_of!(announce_and_wait), (path.clone(),))
        .unwrap();
    let pid = loop {
        if let Ok(text) = std::fs::read_to_string(&path)
            && let Ok(pid) = text.parse::<u32>()
        {
            break pid;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let _ = std::fs::remove_file(&path);
    assert!(pool.worker_pids().contains(&pid));
    let status = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert_killed(handle.get(), pid);
    assert_eq!(pool.map(&dilly::func_of!(square), 0..10u64).unwrap()[9], 81);
    assert!(!pool.worker_pids().contains(&pid));
}

/// Fast tasks around one that waits to be killed, all in one chunk.
#[dilly::func]
fn fast_or_wait(x: u64, path: PathBuf) -> u64 {
    if x == 2 {
        if path.exists() {
            // Run a second time: the pool blamed the wrong task. Fail, do not hang.
            return u64::MAX;
        }
        // A kill in a task's first moments (before the worker reported it running)
        // may make the pool run it again; wait until it is reported.
        dilly_pool::__test::wait_until_busy();
        std::fs::write(&path, std::process::id().to_string()).unwrap();
        std::thread::sleep(PATIENCE);
        return u64::MAX;
    }
    x * 10
}

#[test]
fn kill_9_in_the_middle_of_a_chunk_blames_only_the_running_task() {
    let pool = ProcessPool::builder()
        .workers(1)
        .chunk_size(5)
        .build()
        .unwrap();
    let path = std::env::temp_dir().join(format!("dilly-pool-kill-chunk-{}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let args: Vec<(u64, PathBuf)> = (0..5).map(|x| (x, path.clone())).collect();
    let f = dilly::func_of!(fast_or_wait);
    let mut results = pool.istarmap(&f, args).unwrap();
    let killer = std::thread::spawn({
        let path = path.clone();
        move || {
            let pid = loop {
                if let Ok(text) = std::fs::read_to_string(&path)
                    && let Ok(pid) = text.parse::<u32>()
                {
                    break pid;
                }
                std::thread::sleep(Duration::from_millis(5));
            };
            // The file stays until the end: a second run of the task would see it.
            std::process::Command::new("kill")
                .args(["-9", &pid.to_string()])
                .status()
                .unwrap();
            pid
        }
    });
    let first: Vec<_> = results.by_ref().take(5).collect();
    let pid = killer.join().unwrap();
    assert_eq!(first.len(), 5);
    for (x, r) in first.into_iter().enumerate() {
        match (x, r) {
            (
                2,
                Err(TaskError::WorkerDied {
                    pid: died,
                    exit: WorkerExit::Signal(9),
                    ..
                }),
            ) => assert_eq!(died, pid),
            (x, Ok(v)) if x != 2 => assert_eq!(v, x as u64 * 10),
            (x, other) => panic!("task {x}: unexpected {other:?}"),
        }
    }
    assert!(results.next().is_none());
    let _ = std::fs::remove_file(&path);
}
