//! A worker stopped with `SIGSTOP` in the middle of a task is told from a slow
//! one without a task timeout: its task fails with `TaskError::WorkerStopped`, and
//! the pool goes on; a slow task, and a worker stopped only for a moment, finish.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use dilly_pool::{Error, Executor, ProcessPool, TaskError};

use common::*;

/// Sleeps for `millis`, then returns them.
#[dilly::func]
fn slow(millis: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(millis));
    millis
}

/// Writes the worker's PID to `path`, then counts for `millis` in small sleeps.
#[dilly::func]
fn announce_and_sleep(path: PathBuf, millis: u64) -> u64 {
    std::fs::write(&path, std::process::id().to_string()).unwrap();
    std::thread::sleep(Duration::from_millis(millis));
    millis
}

fn signal(pid: u32, name: &str) {
    let status = std::process::Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{name} {pid}");
}

/// The PID a task wrote to `path`, once it is there.
fn announced(path: &PathBuf) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(pid) = std::fs::read_to_string(path)
            .ok()
            .and_then(|t| t.parse().ok())
        {
            let _ = std::fs::remove_file(path);
            return pid;
        }
        assert!(Instant::now() < deadline, "the task never started");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn temp(name: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("dilly-pool-{name}-{}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    path
}

#[test]
fn a_stopped_worker_fails_its_task_and_is_replaced() {
    // No task timeout: without the check, the task would wait for ever.
    let pool = ProcessPool::builder().workers(2).build().unwrap();
    let path = temp("stopped");
    let handle = pool
        .apply_async(&dilly::func_of!(announce_and_wait), (path.clone(),))
        .unwrap();
    let pid = announced(&path);
    signal(pid, "STOP");
    let started = Instant::now();
    match handle.get() {
        Err(Error::Task {
            index: 0,
            error: TaskError::WorkerStopped { pid: stopped, .. },
        }) => assert_eq!(stopped, pid),
        other => panic!("expected WorkerStopped, got {other:?}"),
    }
    // Found within a few grace periods, far before the task's two minutes (a
    // hang detector, not a timing test).
    assert!(started.elapsed() < Duration::from_secs(60));
    assert!(!pool.worker_pids().contains(&pid));
    assert_eq!(pool.map(&dilly::func_of!(double), 0..8u64).unwrap()[7], 14);
}

#[test]
fn slow_tasks_and_a_worker_stopped_for_a_moment_finish() {
    let pool = ProcessPool::builder().workers(2).build().unwrap();
    // Far past the grace period, but running.
    assert_eq!(
        pool.map(&dilly::func_of!(slow), [3_500u64, 10]).unwrap(),
        [3_500, 10]
    );
    // Stopped and resumed within the grace period.
    let path = temp("paused");
    let handle = pool
        .apply_async(&dilly::func_of!(announce_and_sleep), (path.clone(), 1_500))
        .unwrap();
    let pid = announced(&path);
    signal(pid, "STOP");
    std::thread::sleep(Duration::from_millis(300));
    signal(pid, "CONT");
    assert_eq!(handle.get().unwrap(), 1_500);
}
