//! `StartMethod::Fork` in a single-threaded program (this test has no harness, so
//! `main` runs alone on the main thread).

use dilly_pool::{Error, Executor, ProcessPool, StartMethod, TaskError, WorkerExit};

mod common;

use common::assert_fork_refused_beside_a_thread;

#[dilly::func]
fn work(x: u64) -> u64 {
    if x == 1000 {
        std::process::abort();
    }
    x + 1
}

fn main() {
    let mut passed = 0;
    let f = dilly::func_of!(work);
    {
        let pool = ProcessPool::builder()
            .workers(2)
            .start_method(StartMethod::Fork)
            .max_tasks_per_child(7)
            .build()
            .expect("fork pool in a single-threaded process");
        let out = pool.map(&f, 0..40u64).unwrap();
        assert_eq!(out, (1..=40).collect::<Vec<u64>>());
        match pool.map(&f, [12, 1000u64, 14]) {
            Err(Error::Task {
                index: 1,
                error:
                    TaskError::WorkerDied {
                        exit: WorkerExit::Signal(6),
                        ..
                    },
            }) => {}
            other => panic!("expected WorkerDied(SIGABRT) at 1, got {other:?}"),
        }
        assert_eq!(pool.map(&f, [1u64]).unwrap(), [2]);
        passed += 1;
    }
    // A dropped pool leaves no thread behind: forking works again.
    {
        let pool = ProcessPool::builder()
            .workers(1)
            .start_method(StartMethod::Fork)
            .build()
            .expect("a second fork pool once the first was dropped");
        assert_eq!(pool.map(&f, [5u64]).unwrap(), [6]);
        passed += 1;
    }
    // Its server killed, a Fork pool cannot fork another (it has threads): starts
    // fail with a message that says what to do, and nothing hangs.
    {
        let pool = ProcessPool::builder()
            .workers(1)
            .start_method(StartMethod::Fork)
            .max_tasks_per_child(1)
            .build()
            .expect("a third fork pool");
        assert_eq!(pool.map(&f, [1u64]).unwrap(), [2]);
        // Forked workers are the server's children; ours is the server.
        let servers: Vec<String> = std::fs::read_dir("/proc/self/task")
            .unwrap()
            .flatten()
            .flat_map(|t| {
                let children = std::fs::read_to_string(t.path().join("children"));
                children
                    .unwrap_or_default()
                    .split_whitespace()
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(servers.len(), 1, "one fork server: {servers:?}");
        let killed = std::process::Command::new("kill")
            .args(["-9", &servers[0]])
            .status()
            .unwrap();
        assert!(killed.success());
        // The worker forked before the kill dies with its server (its parent-death
        // signal), but may still take the first item before it does, which then
        // succeeds, or is not blamed for the server's death and waits for a new
        // worker; no new one can start, and the error says what to do.
        let results: Vec<_> = pool.imap(&f, [2u64, 3]).unwrap().collect();
        assert!(
            results.iter().any(|r| matches!(
                r,
                Err(TaskError::WorkerStart { reason }) if reason.contains("StartMethod::ForkServer")
            )),
            "{results:?}"
        );
        assert!(
            results
                .iter()
                .all(|r| matches!(r, Ok(3) | Err(TaskError::WorkerStart { .. }))),
            "{results:?}"
        );
        passed += 1;
    }
    // Now with pool threads gone but another thread alive: refused.
    assert_fork_refused_beside_a_thread();
    passed += 1;
    println!("fork: {passed} passed, 0 failed");
}
