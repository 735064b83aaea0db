//! What the pool's integration tests share: the registered functions several of
//! them run, and small helpers. Each test binary uses only some of them.
#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

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
