//! What the pool's integration tests share: the registered functions several of
//! them run, and small helpers. Each test binary uses only some of them.
#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

use dilly_pool::{Error, ProcessPool, StartMethod, TaskError, WorkerExit};

/// Doubles its argument.
#[dilly::func]
pub(crate) fn double(x: u64) -> u64 {
    x * 2
}

/// Triples its argument.
#[dilly::func]
pub(crate) fn triple(x: u64) -> u64 {
    x * 3
}

/// The PID of the worker process that ran it.
#[dilly::func]
pub(crate) fn worker_pid(_x: u64) -> u32 {
    std::process::id()
}

/// Writes the worker's PID to `path`, then waits (far longer than any test) to be
/// killed.
#[dilly::func]
pub(crate) fn announce_and_wait(path: PathBuf) -> u32 {
    std::fs::write(&path, std::process::id().to_string()).unwrap();
    std::thread::sleep(Duration::from_secs(120));
    0
}

/// One task per way a task can fail: 1 panics, 2 segfaults, 3 exits, 4 runs far
/// past any timeout, 5 reports itself busy and then does the same; every other `x`
/// gives `x * 10`.
#[dilly::func]
pub(crate) fn act(x: u64) -> u64 {
    match x {
        1 => panic!("boom"),
        // SAFETY: none: the write to a null pointer is meant to kill the worker
        // with SIGSEGV, and runs only in a worker process.
        2 => unsafe {
            std::ptr::null_mut::<u64>().write_volatile(1);
            0
        },
        3 => std::process::exit(3),
        4 => {
            std::thread::sleep(Duration::from_secs(120));
            4
        }
        5 => {
            dilly_pool::__test::wait_until_busy();
            std::thread::sleep(Duration::from_secs(120));
            5
        }
        _ => x * 10,
    }
}

/// Asserts that task `fatal` died of `SIGABRT` and every other task `x` returned
/// `x * 2`.
pub(crate) fn assert_only_fatal_aborted(results: &[Result<u64, TaskError>], fatal: u64) {
    for (x, result) in (0u64..).zip(results) {
        if x == fatal {
            assert!(
                matches!(
                    result,
                    Err(TaskError::WorkerDied {
                        exit: WorkerExit::Signal(6),
                        ..
                    })
                ),
                "task {x}: {result:?}"
            );
        } else {
            assert_eq!(result.as_ref().ok(), Some(&(x * 2)), "task {x}");
        }
    }
}

/// Asserts that `outcome` is the `WorkerDied` of worker `pid`, killed by `SIGKILL`.
pub(crate) fn assert_killed(outcome: Result<u32, Error>, pid: u32) {
    match outcome {
        Err(Error::Task {
            index: 0,
            error:
                TaskError::WorkerDied {
                    pid: died,
                    exit: WorkerExit::Signal(9),
                    ..
                },
        }) => assert_eq!(died, pid),
        other => panic!("expected WorkerDied(SIGKILL), got {other:?}"),
    }
}

/// A file where tasks in workers note each of their runs (one line each), so that a
/// test can count how often a task ran across worker deaths. Named by `name` and
/// the test process's ID, which a task takes from its argument or, in a spawned
/// worker, as its parent's; removed when dropped.
pub(crate) struct RunLog(PathBuf);

impl RunLog {
    /// The log of `name` for the test process `test_process`, emptied.
    pub(crate) fn new(name: &str, test_process: u32) -> RunLog {
        let log = RunLog::path(name, test_process);
        let _ = std::fs::remove_file(&log);
        RunLog(log)
    }

    /// Where the log of `name` for `test_process` is.
    pub(crate) fn path(name: &str, test_process: u32) -> PathBuf {
        std::env::temp_dir().join(format!("dilly-pool-{name}-{test_process}.log"))
    }

    /// Notes one run (from inside a task).
    pub(crate) fn note(path: &std::path::Path) {
        use std::io::Write;
        if let Ok(mut file) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(file, "ran");
        }
    }

    /// How many runs were noted.
    pub(crate) fn runs(&self) -> usize {
        std::fs::read_to_string(&self.0)
            .unwrap_or_default()
            .lines()
            .count()
    }
}

impl Drop for RunLog {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Builds a `Fork` pool while another thread of this process runs (one started
/// here): refused with `Error::ForkUnsafe`, counting more than one thread.
pub(crate) fn assert_fork_refused_beside_a_thread() {
    let keep = std::thread::spawn(std::thread::park);
    match ProcessPool::builder()
        .workers(1)
        .start_method(StartMethod::Fork)
        .build()
    {
        Err(Error::ForkUnsafe { threads }) => assert!(threads > 1),
        other => panic!("expected ForkUnsafe, got {other:?}"),
    }
    keep.thread().unpark();
    keep.join().unwrap();
}
