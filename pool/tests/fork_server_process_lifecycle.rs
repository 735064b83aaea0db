//! The `ForkServer` server process itself: replaced when it dies, and started
//! with the loader's eager binding, which its workers do not pass on. A test binary
//! of its own, with its tests taking turns, so that the only fork server among this
//! process's children is the running test's.

use std::sync::Mutex;

use dilly_pool::{Executor, ProcessPool, StartMethod};

mod common;

use common::*;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// This process's children that were started as dilly-pool processes.
fn pool_children() -> Vec<u32> {
    let mut pids = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let children = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
        for pid in children
            .split_whitespace()
            .filter_map(|p| p.parse::<u32>().ok())
        {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if cmdline.windows(19).any(|w| w == b"--dilly-pool-worker") {
                pids.push(pid);
            }
        }
    }
    pids
}

#[test]
fn a_killed_fork_server_is_replaced() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    // Every task needs a new worker, so every task needs the server.
    let pool = ProcessPool::builder()
        .workers(1)
        .start_method(StartMethod::ForkServer)
        .max_tasks_per_child(1)
        .build()
        .unwrap();
    let f = dilly::func_of!(double);
    assert_eq!(pool.map(&f, [1u64, 2]).unwrap(), [2, 4]);
    // Forked workers are the server's children, not ours: ours is the server.
    let servers = pool_children();
    assert_eq!(servers.len(), 1, "one fork server: {servers:?}");
    std::process::Command::new("kill")
        .args(["-9", &servers[0].to_string()])
        .status()
        .unwrap();
    // The worker that was forked before stays usable or is replaced; either way
    // every task comes back, from workers of a new server.
    assert_eq!(pool.map(&f, 0..6u64).unwrap(), [0, 2, 4, 6, 8, 10]);
    let now = pool_children();
    assert!(
        now.len() == 1 && now[0] != servers[0],
        "a new fork server: {now:?}, was {servers:?}"
    );
}

/// Notes its run, then kills its parent, the fork server (and so itself).
#[dilly::func]
fn kill_fork_server(test_process: u32) -> u64 {
    RunLog::note(&RunLog::path("server-killer", test_process));
    let server = std::os::unix::process::parent_id();
    let _ = std::process::Command::new("kill")
        .args(["-9", &server.to_string()])
        .status();
    std::thread::sleep(std::time::Duration::from_secs(10));
    0
}

#[test]
fn a_worker_lost_with_its_fork_server_runs_its_task_again_once() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let log = RunLog::new("server-killer", std::process::id());
    let pool = ProcessPool::builder()
        .workers(1)
        .start_method(StartMethod::ForkServer)
        .build()
        .unwrap();
    // A worker that dies because its server died is not its task's fault: the
    // task runs again on a worker of a new server. This task takes the server
    // down each time, so its second run is blamed, and nothing loops.
    let outcome = pool.map(&dilly::func_of!(kill_fork_server), [std::process::id()]);
    let runs = log.runs();
    assert!(
        matches!(
            outcome,
            Err(dilly_pool::Error::Task {
                index: 0,
                error: dilly_pool::TaskError::WorkerDied { .. }
            })
        ),
        "{outcome:?}"
    );
    assert_eq!(runs, 2, "run once, and once more alone");
    let f = dilly::func_of!(double);
    assert_eq!(pool.map(&f, 0..4u64).unwrap(), [0, 2, 4, 6]);
}

#[dilly::func]
fn loader_variables(_x: u64) -> Vec<String> {
    std::env::vars()
        .map(|(k, _)| k)
        .filter(|k| k == "LD_BIND_NOW" || k.starts_with("DILLY_POOL"))
        .collect()
}

#[test]
fn the_fork_server_binds_symbols_at_start_and_its_workers_do_not_pass_that_on() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    if std::env::var_os("LD_BIND_NOW").is_some() {
        // Set by whoever runs the tests: the pool leaves it alone then.
        return;
    }
    let pool = ProcessPool::builder()
        .workers(1)
        .start_method(StartMethod::ForkServer)
        .build()
        .unwrap();
    // The environment the server was started with (the kernel's copy).
    let servers = pool_children();
    assert_eq!(servers.len(), 1, "one fork server: {servers:?}");
    let environ = std::fs::read(format!("/proc/{}/environ", servers[0])).unwrap();
    assert!(
        environ.split(|b| *b == 0).any(|v| v == b"LD_BIND_NOW=1"),
        "the server starts with LD_BIND_NOW=1"
    );
    // What its workers' tasks (and the programs they start) see.
    let seen = pool
        .map(&dilly::func_of!(loader_variables), [0u64])
        .unwrap();
    assert_eq!(seen, [Vec::<String>::new()]);
}
