//! Placement of long tasks: `n` equal sleeping tasks on `w` workers run `n / w` on
//! every worker (each task returns its worker's PID, and the PIDs are counted), in
//! every repetition, through every way of submitting a batch: `map`, `imap`,
//! `imap_unordered`, `starmap`, `map_async` and a loop of `apply_async`, with the
//! pool's own chunk size and an explicit one. A task queued behind a busy worker
//! while another idles would show as one worker with more than `n / w`.
//!
//! The tasks sleep, so the machine's load does not decide who finishes first; no
//! time is asserted. `PLACEMENT_RUNS` sets the repetitions per case (3 by default).

use std::collections::HashMap;
use std::time::Duration;

use dilly_pool::{Executor, ProcessPool};

/// Sleeps `ms` milliseconds; returns the PID of the worker that ran it.
#[dilly::func]
fn sleep_pid(ms: u64) -> u32 {
    std::thread::sleep(Duration::from_millis(ms));
    std::process::id()
}

/// [`sleep_pid`] with its argument as a tuple, for `starmap`.
#[dilly::func]
fn sleep_pid_pair(ms: u64, _index: u64) -> u32 {
    std::thread::sleep(Duration::from_millis(ms));
    std::process::id()
}

fn runs() -> usize {
    std::env::var("PLACEMENT_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
}

/// Asserts that `pids` (one per task) name `workers` workers, each running
/// `pids.len() / workers` tasks.
fn assert_even(pids: &[u32], workers: usize, what: &str) {
    let mut counts: HashMap<u32, usize> = HashMap::new();
    for &pid in pids {
        *counts.entry(pid).or_default() += 1;
    }
    let mut per_worker: Vec<usize> = counts.into_values().collect();
    per_worker.sort_unstable();
    assert_eq!(
        per_worker,
        vec![pids.len() / workers; workers],
        "{what}: tasks per worker"
    );
}

/// Every API, `runs()` times, with `n` tasks of `ms` milliseconds on `workers`
/// workers.
fn case(n: u64, ms: u64, workers: usize) {
    let pool = ProcessPool::builder().workers(workers).build().unwrap();
    let f = dilly::func_of!(sleep_pid);
    let tasks = || std::iter::repeat_n(ms, n as usize);
    let label = |api: &str, chunk: &str, run: usize| {
        format!("{n} x {ms} ms on {workers} workers, {api}, chunk size {chunk}, run {run}")
    };
    for run in 0..runs() {
        for (chunk, exec) in [
            ("auto", &pool as &dyn Placing),
            ("1", &pool.with_chunk_size(1) as &dyn Placing),
        ] {
            let pids = exec.map(&mut tasks());
            assert_even(&pids, workers, &label("map", chunk, run));
            let pids = exec.imap(&mut tasks(), true);
            assert_even(&pids, workers, &label("imap", chunk, run));
            let pids = exec.imap(&mut tasks(), false);
            assert_even(&pids, workers, &label("imap_unordered", chunk, run));
            let pids = exec.starmap(&mut tasks().zip(0..n));
            assert_even(&pids, workers, &label("starmap", chunk, run));
            let pids = exec.map_async(&mut tasks());
            assert_even(&pids, workers, &label("map_async", chunk, run));
        }
        let handles: Vec<_> = tasks()
            .map(|ms| pool.apply_async(&f, (ms,)).unwrap())
            .collect();
        let pids: Vec<u32> = handles.into_iter().map(|h| h.get().unwrap()).collect();
        assert_even(&pids, workers, &label("apply_async", "-", run));
    }
}

/// The batch APIs of one executor (the pool, or the pool at a per-call chunk
/// size), run on [`sleep_pid`].
trait Placing {
    fn map(&self, tasks: &mut dyn Iterator<Item = u64>) -> Vec<u32>;
    fn imap(&self, tasks: &mut dyn Iterator<Item = u64>, ordered: bool) -> Vec<u32>;
    fn starmap(&self, tasks: &mut dyn Iterator<Item = (u64, u64)>) -> Vec<u32>;
    fn map_async(&self, tasks: &mut dyn Iterator<Item = u64>) -> Vec<u32>;
}

impl<E: Executor> Placing for E {
    fn map(&self, tasks: &mut dyn Iterator<Item = u64>) -> Vec<u32> {
        Executor::map(self, &dilly::func_of!(sleep_pid), tasks).unwrap()
    }

    fn imap(&self, tasks: &mut dyn Iterator<Item = u64>, ordered: bool) -> Vec<u32> {
        let f = dilly::func_of!(sleep_pid);
        let results = if ordered {
            Executor::imap(self, &f, tasks)
        } else {
            Executor::imap_unordered(self, &f, tasks)
        };
        results.unwrap().map(Result::unwrap).collect()
    }

    fn starmap(&self, tasks: &mut dyn Iterator<Item = (u64, u64)>) -> Vec<u32> {
        Executor::starmap(self, &dilly::func_of!(sleep_pid_pair), tasks).unwrap()
    }

    fn map_async(&self, tasks: &mut dyn Iterator<Item = u64>) -> Vec<u32> {
        Executor::map_async(self, &dilly::func_of!(sleep_pid), tasks)
            .unwrap()
            .get()
            .unwrap()
    }
}

#[test]
fn eight_tasks_of_200_ms_on_four_workers_run_two_on_each() {
    case(8, 200, 4);
}

#[test]
fn six_tasks_of_200_ms_on_three_workers_run_two_on_each() {
    case(6, 200, 3);
}

#[test]
fn sixteen_tasks_of_100_ms_on_eight_workers_run_two_on_each() {
    case(16, 100, 8);
}
