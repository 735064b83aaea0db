//! Soak: many tasks through a 2-worker pool while its workers die — killed with
//! `kill -9` from outside at random moments, aborted inside a task, killed at a
//! timeout — every few thousand tasks. Every task's outcome arrives exactly once
//! (a duplicate or a missing index fails the test), results are right, each
//! failure is the one its fault explains, and the parent's memory does not grow
//! with the number of tasks.
//!
//! The short form runs in CI (`cargo test -p dilly-pool --test soak`). The long
//! form, with the figures in `docs/reliability.md`:
//!
//! ```text
//! DILLY_SOAK_TASKS=1000000 cargo test --release -p dilly-pool --test soak
//! ```
//!
//! `DILLY_SOAK_SEED` repeats a run (the seed is printed); `DILLY_SOAK_METHOD` is
//! `spawn` (default), `forkserver` or `fork`.

use std::time::{Duration, Instant};

use dilly_pool::{Executor, ProcessPool, StartMethod, TaskError, WorkerExit};

/// Tasks in the short form.
const SHORT: u64 = 100_000;

/// One task in this many aborts its worker, and one in this many hangs until the
/// timeout kills its worker; the test kills a random worker about as often.
const FAULT_EVERY: u64 = 4_000;

/// The per-task timeout: far above a task's microseconds, so only the tasks that
/// hang on purpose reach it.
const TIMEOUT: Duration = Duration::from_secs(1);

/// The least time between two kills from outside.
const KILL_SPACING: Duration = Duration::from_millis(100);

/// Results after which the parent's memory is first measured.
const WARM: u64 = 10_000;

/// How much the parent's resident memory may grow between [`WARM`] results and the
/// end: a leak of even 16 bytes per task of the long form would pass it.
const GROWTH: u64 = 8 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    None,
    Abort,
    Hang,
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// What task `x` of a run with `seed` does besides its work.
fn fault(seed: u64, x: u64) -> Fault {
    let h = splitmix(seed ^ splitmix(x));
    match h % FAULT_EVERY {
        0 => Fault::Abort,
        1 => Fault::Hang,
        _ => Fault::None,
    }
}

fn expected(x: u64) -> u64 {
    x.wrapping_mul(0x2545_f491_4f6c_dd1d) ^ 7
}

#[dilly::func]
fn work(x: u64, seed: u64) -> u64 {
    match fault(seed, x) {
        Fault::None => {}
        Fault::Abort => std::process::abort(),
        Fault::Hang => std::thread::sleep(Duration::from_secs(600)),
    }
    expected(x)
}

/// This process's resident memory in bytes (`VmRSS`).
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .expect("VmRSS in /proc/self/status");
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap();
    kib << 10
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| {
        v.replace('_', "")
            .parse()
            .unwrap_or_else(|e| panic!("{name}={v}: {e}"))
    })
}

fn main() {
    let tasks = env_u64("DILLY_SOAK_TASKS").unwrap_or(SHORT);
    let seed = env_u64("DILLY_SOAK_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
    });
    let method = match std::env::var("DILLY_SOAK_METHOD").as_deref() {
        Ok("forkserver") => StartMethod::ForkServer,
        Ok("fork") => StartMethod::Fork,
        Ok("spawn") | Err(_) => StartMethod::Spawn,
        Ok(other) => panic!("DILLY_SOAK_METHOD={other}: spawn, forkserver or fork"),
    };
    println!("soak: {tasks} tasks, seed {seed}, {method:?}");
    // Everything the run keeps is allocated before the first measurement.
    let mut seen = vec![0u8; tasks as usize];
    let mut rng = splitmix(seed ^ 0x5eed);
    let mut next_kill = FAULT_EVERY / 2 + rng % FAULT_EVERY;
    let mut kills = 0u64;
    let mut last_kill = Instant::now();
    let mut killed_tasks = 0u64;
    let (mut aborted, mut timed_out) = (0u64, 0u64);
    let mut warm_rss = None;

    let pool = ProcessPool::builder()
        .workers(2)
        .start_method(method)
        .task_timeout(TIMEOUT)
        .build()
        .unwrap();
    let started = Instant::now();
    let f = dilly::func_of!(work);
    let results = pool
        .istarmap(&f, (0..tasks).map(|x| (x, seed)))
        .unwrap()
        .indexed();
    let mut received = 0u64;
    for (index, result) in results {
        let x = index as u64;
        seen[index] += 1;
        assert_eq!(seen[index], 1, "task {x}: a second outcome {result:?}");
        let planned = fault(seed, x);
        match (&result, planned) {
            (Ok(value), Fault::None) => assert_eq!(*value, expected(x), "task {x}"),
            (
                Err(TaskError::WorkerDied {
                    exit: WorkerExit::Signal(6),
                    ..
                }),
                Fault::Abort,
            ) => aborted += 1,
            (Err(TaskError::TimedOut { .. }), Fault::Hang) => timed_out += 1,
            // A worker killed from outside fails the task it was running,
            // whatever that task was doing.
            (
                Err(TaskError::WorkerDied {
                    exit: WorkerExit::Signal(9),
                    ..
                }),
                _,
            ) => killed_tasks += 1,
            _ => panic!("task {x} ({planned:?}): {result:?}"),
        }
        received += 1;
        if received == WARM.min(tasks) {
            warm_rss = Some(rss());
        }
        // Results come in batches of thousands: a kill counted in results alone
        // could hit the worker started after the previous kill before it has
        // even started. Kills are a few thousand results and a while apart.
        if received >= next_kill && last_kill.elapsed() >= KILL_SPACING {
            last_kill = Instant::now();
            rng = splitmix(rng);
            let pids = pool.worker_pids();
            if let Some(&pid) = pids.get((rng % 2) as usize).or(pids.first()) {
                let status = std::process::Command::new("kill")
                    .args(["-9", &pid.to_string()])
                    .stderr(std::process::Stdio::null())
                    .status()
                    .unwrap();
                if status.success() {
                    kills += 1;
                }
            }
            next_kill = received + FAULT_EVERY / 2 + rng % FAULT_EVERY;
        }
    }
    let elapsed = started.elapsed();
    let end_rss = rss();
    drop(pool);

    let missing: Vec<usize> = (0..seen.len()).filter(|&i| seen[i] == 0).collect();
    assert!(
        missing.is_empty(),
        "{} tasks never reported, the first {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    assert!(
        killed_tasks <= kills,
        "{killed_tasks} tasks failed with SIGKILL, but only {kills} kills were made"
    );
    let warm_rss = warm_rss.unwrap_or(end_rss);
    println!(
        "soak: {tasks} tasks in {elapsed:.1?} ({:.0}/s): {aborted} aborted, {timed_out} timed out, \
         {kills} workers killed from outside ({killed_tasks} tasks failed by it, the \
         others re-run); every outcome once",
        tasks as f64 / elapsed.as_secs_f64()
    );
    println!(
        "soak: parent RSS {:.1} MiB after {WARM} results, {:.1} MiB at the end",
        warm_rss as f64 / (1 << 20) as f64,
        end_rss as f64 / (1 << 20) as f64
    );
    assert!(
        end_rss <= warm_rss + GROWTH,
        "the parent grew from {warm_rss} to {end_rss} bytes of RSS"
    );
}
