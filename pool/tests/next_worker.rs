//! With `max_tasks_per_child`, a worker's replacement is started while the worker
//! runs the last tasks it may take, and a replacement that is never used is killed
//! with the pool. A test binary of its own, its tests taking turns, so that the
//! pool processes it finds are its running test's.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use dilly_pool::{Executor, ProcessPool, StartMethod};

mod common;

use common::*;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// The parent process of `pid`, from `/proc/<pid>/stat`.
fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces: fields start after.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// Live pool processes (workers and fork servers) that descend from `ancestor`.
fn pool_processes_under(ancestor: u32) -> Vec<u32> {
    pool_processes(ancestor, false)
}

/// Pool processes that descend from `ancestor`, with those that have exited but
/// were not reaped (zombies) when `zombies`.
fn pool_processes(ancestor: u32, zombies: bool) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        // A zombie has exited already, and has no command line left to read: this
        // test starts no other processes, so every zombie below us was a pool's.
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let zombie = stat
            .rsplit(')')
            .next()
            .is_some_and(|s| s.trim_start().starts_with('Z'));
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let pool_process = cmdline.windows(19).any(|w| w == b"--dilly-pool-worker");
        if !((pool_process && !zombie) || (zombies && zombie)) {
            continue;
        }
        let mut up = parent_of(pid);
        for _ in 0..3 {
            match up {
                Some(p) if p == ancestor => {
                    found.push(pid);
                    break;
                }
                Some(p) if p > 1 => up = parent_of(p),
                _ => break,
            }
        }
    }
    found
}

/// Run as a worker's last task: waits (at most a minute) until another worker
/// process of the pool started by `pool_owner` exists besides this one and the
/// fork server, and says whether one did.
#[dilly::func]
fn successor_appears(pool_owner: u32, server: u32) -> bool {
    let me = std::process::id();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let others = pool_processes_under(pool_owner);
        if others.iter().any(|&p| p != me && p != server) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    false
}

/// The PID of the running test's fork server (our only direct child that is a
/// pool process when the start method has one), or 0.
fn fork_server(method: StartMethod) -> u32 {
    let me = std::process::id();
    match method {
        StartMethod::ForkServer => pool_processes_under(me)
            .into_iter()
            .find(|&p| parent_of(p) == Some(me))
            .expect("the fork server"),
        _ => 0,
    }
}

/// One worker, replaced after every task.
fn one_task_per_worker(method: StartMethod) -> ProcessPool {
    ProcessPool::builder()
        .workers(1)
        .start_method(method)
        .max_tasks_per_child(1)
        .build()
        .unwrap()
}

#[test]
fn the_replacement_starts_while_the_retiring_worker_runs_its_last_task() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let me = std::process::id();
    for method in [StartMethod::Spawn, StartMethod::ForkServer] {
        let pool = one_task_per_worker(method);
        let server = fork_server(method);
        let f = dilly::func_of!(successor_appears);
        // Each task is its worker's last: without an early start, no other worker
        // would exist until it returned, and it would wait in vain.
        let seen = pool.starmap(&f, [(me, server), (me, server)]).unwrap();
        assert_eq!(seen, [true, true], "{method:?}");
    }
}

/// Waits for `gate` to exist (it never does in these tests: the pool is dropped).
#[dilly::func]
fn wait_for(gate: std::path::PathBuf) -> u64 {
    while !gate.exists() {
        std::thread::sleep(Duration::from_millis(5));
    }
    1
}

#[test]
fn a_replacement_never_used_is_killed_with_the_pool() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let me = std::process::id();
    let gate = std::env::temp_dir().join(format!("dilly-pool-next-worker-{me}"));
    for method in [StartMethod::Spawn, StartMethod::ForkServer] {
        let pool = one_task_per_worker(method);
        let server = fork_server(method);
        let workers = || {
            let mut all = pool_processes_under(me);
            all.retain(|&p| p != server);
            all
        };
        // The worker's last task, which never ends: its replacement is begun with
        // it and never used.
        let running = pool
            .apply_async(&dilly::func_of!(wait_for), (gate.clone(),))
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while workers().len() < 2 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(
            workers().len(),
            2,
            "{method:?}: the worker and its replacement"
        );
        drop(running);
        drop(pool);
        // Killed and reaped: not even a zombie is left.
        let left = pool_processes(me, true);
        assert!(left.is_empty(), "{method:?}: pool processes left: {left:?}");
    }
}

#[test]
fn workers_retired_by_callers_are_reaped() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let me = std::process::id();
    let pool = ProcessPool::builder()
        .workers(1)
        .max_tasks_per_child(2)
        .build()
        .unwrap();
    let f = dilly::func_of!(worker_pid);
    // Many workers retire after a call that ran on them from this thread; each
    // must be reaped by the slot that starts the next one, not left a zombie.
    let pids: Vec<u32> = (0..40u64).map(|x| pool.apply(&f, (x,)).unwrap()).collect();
    assert!(
        pids.windows(2).filter(|w| w[0] != w[1]).count() >= 19,
        "{pids:?}"
    );
    let zombies = pool_processes(me, true).len() - pool_processes_under(me).len();
    // At most the last retirements may still be on their way out.
    assert!(zombies <= 2, "{zombies} zombies after 20 retirements");
}
