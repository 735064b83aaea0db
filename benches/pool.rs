//! The process pool against its limits and against the Rust alternative: the
//! `pool` workloads, with 2 workers each, matching
//! `benches/python/pool.py` (multiprocessing, concurrent.futures, pathos, loky).
//!
//! | group          | what one iteration is                                                      |
//! |----------------|----------------------------------------------------------------------------|
//! | `pool_start`   | build a 2-worker pool with one start method + the first `apply` result      |
//! | `worker_start` | one `apply` on a 1-worker pool with `max_tasks_per_child(1)`: every task    |
//! |                | retires its worker and a new one is started (so: one worker start + a call) |
//! | `throughput`   | `map(x * 2)` over 100,000 items, default chunking; 20,000 at chunk size 1   |
//! | `round_trip`   | one sequential call on a warm pool: dilly `apply`, procspawn's warm `Pool`, |
//! |                | and a raw 8-byte ping-pong over a child process's stdin/stdout pipes       |
//! | `payload`      | `map(identity)` over 64 × 1 MiB `Vec<u8>`, default chunking and chunk 1;   |
//! |                | also as `serde_bytes::ByteBuf` (`dilly_bytebuf`), one byte string in serde |
//!
//! Criterion's numbers land in `<target>/criterion/<group>/<tool>/<case>/`.
//!
//! Long tasks are timed outside criterion, a few maps each ([`long_tasks`]): the
//! makespan of `map` over 8 × 200 ms and over a mix of 50–400 ms of sleeping and of
//! spinning tasks on a 4-worker pool, into `<target>/dilly-bench/pool-long.json`.
//!
//! The round trip is also measured the way `pool.py` measures it — 2,000 sequential
//! calls, each timed with [`Instant`] — and the median and p99 of those 2,000
//! latencies (per tool) are written to `<target>/dilly-bench/pool-latency.json`.
//! The same file gets three CPU-pinned variants (`dilly_one_cpu`, `pipe_one_cpu`,
//! `pipe_two_cpus`): on a VM, waking a thread on another, idle CPU costs tens of
//! microseconds, and the unpinned numbers depend on where the scheduler put things.
//! `benches/compare.sh pool` puts all of it next to the Python numbers.
//!
//! `StartMethod::Fork` is refused while the process runs more than one thread. The
//! bench runs on criterion's main thread, which is alone (checked at start), but
//! the pools measured before leave helper threads that end asynchronously; so
//! `pool_start` runs first, and before each `Fork` start the bench waits (untimed)
//! until `/proc/self/task` shows one thread. procspawn's pool keeps background
//! threads for good, so it is measured last.
//!
//! procspawn re-executes this binary and runs `main` again, so `procspawn::init()`
//! comes first in `main`. dilly-pool's workers never reach `main` (a pre-main hook
//! serves them), and the pipe ping-pong child is this binary too, started with
//! [`PIPE_CHILD_ENV`] set.

mod common;

use std::hint::black_box;
use std::io::{Read, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput};
use dilly_pool::{Executor, ProcessPool, StartMethod};
use serde_bytes::ByteBuf;

/// Workers in every pool of this bench (the machine has 2 cores).
const WORKERS: usize = 2;
/// Items of the default-chunking throughput map.
const TINY_ITEMS: u64 = 100_000;
/// Items of the chunk-size-1 throughput map.
const TINY_ITEMS_CHUNK1: u64 = 20_000;
/// Sequential calls whose latencies give the median and p99.
const LATENCY_CALLS: usize = 2_000;
/// Calls before the latencies are recorded.
const LATENCY_WARMUP: usize = 200;
/// Items of the large-payload map.
const PAYLOAD_ITEMS: usize = 64;
/// Bytes per large-payload item.
const PAYLOAD_LEN: usize = 1 << 20;
/// Set in the environment of the pipe ping-pong child.
const PIPE_CHILD_ENV: &str = "DILLY_BENCH_PIPE_CHILD";
/// Bytes per ping-pong message.
const PING_LEN: usize = 8;

// ---------------------------------------------------------------------------------
// The functions workers run.
// ---------------------------------------------------------------------------------

/// The tiny task: `x * 2`.
#[dilly::func]
fn double(x: u64) -> u64 {
    x * 2
}

/// The large-payload task: gives its argument back.
#[dilly::func]
fn identity(data: Vec<u8>) -> Vec<u8> {
    data
}

/// The large-payload task on `serde_bytes::ByteBuf`, which serde encodes as one
/// byte string instead of element by element.
#[dilly::func]
fn identity_bytes(data: ByteBuf) -> ByteBuf {
    data
}

/// A long task that sleeps `ms` milliseconds (the CPU is not the limit); gives
/// back `ms`.
#[dilly::func]
fn sleep_ms(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

/// A long task that keeps a CPU busy for `ms` milliseconds of wall time; gives back
/// `ms`.
#[dilly::func]
fn spin_ms(ms: u64) -> u64 {
    let end = Instant::now() + Duration::from_millis(ms);
    let mut spins = 0u64;
    while Instant::now() < end {
        spins = black_box(spins.wrapping_add(1));
    }
    black_box(spins);
    ms
}

/// The tiny task as a plain function pointer, for procspawn.
fn double_plain(x: u64) -> u64 {
    x * 2
}

// ---------------------------------------------------------------------------------
// Helpers.
// ---------------------------------------------------------------------------------

/// Threads of this process (`/proc/self/task`), if countable.
fn thread_count() -> Option<usize> {
    std::fs::read_dir("/proc/self/task").ok().map(|d| d.count())
}

/// Waits (up to 2 s) until this process runs a single thread; whether it does.
fn wait_single_threaded() -> bool {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        if thread_count() == Some(1) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// A CPU set holding `cpus`.
fn cpu_set(cpus: &[usize]) -> libc::cpu_set_t {
    // SAFETY: `cpu_set_t` is plain bits; all zeros is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &cpu in cpus {
        // SAFETY: `CPU_SET` writes bit `cpu` of the set; `cpu` is a small CPU index
        // below `CPU_SETSIZE` (the bench only names CPUs 0 and 1).
        unsafe { libc::CPU_SET(cpu, &mut set) };
    }
    set
}

/// The calling thread's CPU affinity.
fn affinity() -> Option<libc::cpu_set_t> {
    let mut set = cpu_set(&[]);
    // SAFETY: `set` is a valid, writable `cpu_set_t` of the size passed.
    let rc = unsafe { libc::sched_getaffinity(0, std::mem::size_of_val(&set), &mut set) };
    (rc == 0).then_some(set)
}

/// Pins the calling thread to `set`; threads and processes it starts afterwards
/// inherit it. Whether it worked.
fn set_affinity(set: &libc::cpu_set_t) -> bool {
    // SAFETY: `set` is a valid `cpu_set_t` of the size passed; 0 is this thread.
    unsafe { libc::sched_setaffinity(0, std::mem::size_of_val(set), set) == 0 }
}

fn pool(method: StartMethod) -> ProcessPool {
    ProcessPool::builder()
        .workers(WORKERS)
        .start_method(method)
        .build()
        .expect("a pool")
}

/// `(name, method)` for every start method, `Fork` first.
const METHODS: [(&str, StartMethod); 3] = [
    ("fork", StartMethod::Fork),
    ("forkserver", StartMethod::ForkServer),
    ("spawn", StartMethod::Spawn),
];

/// The child side of the pipe ping-pong: pins itself to the CPU named in
/// [`PIPE_CHILD_ENV`] (if a number), then echoes `PING_LEN`-byte messages from stdin
/// to stdout until stdin closes.
fn pipe_child(cpu: Option<usize>) {
    if let Some(cpu) = cpu {
        set_affinity(&cpu_set(&[cpu]));
    }
    let mut input = std::io::stdin().lock();
    let mut output = std::io::stdout().lock();
    let mut buf = [0u8; PING_LEN];
    while input.read_exact(&mut buf).is_ok() {
        if output
            .write_all(&buf)
            .and_then(|()| output.flush())
            .is_err()
        {
            break;
        }
    }
}

/// The parent side of the pipe ping-pong.
struct PingPong {
    child: Child,
    to: Option<ChildStdin>,
    from: ChildStdout,
}

impl PingPong {
    /// Starts the child, pinned to `cpu` if given.
    fn start(cpu: Option<usize>) -> PingPong {
        let exe = std::env::current_exe().expect("this executable");
        let pin = cpu.map_or_else(|| "any".to_owned(), |c| c.to_string());
        let mut child = Command::new(exe)
            .env(PIPE_CHILD_ENV, pin)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("the ping-pong child");
        let to = child.stdin.take().expect("its stdin");
        let from = child.stdout.take().expect("its stdout");
        let mut p = PingPong {
            child,
            to: Some(to),
            from,
        };
        assert_eq!(p.round_trip(7), 7);
        p
    }

    /// Sends `x` and reads it back.
    fn round_trip(&mut self, x: u64) -> u64 {
        let to = self.to.as_mut().expect("the child's stdin");
        to.write_all(&x.to_le_bytes()).expect("ping");
        let mut buf = [0u8; PING_LEN];
        self.from.read_exact(&mut buf).expect("pong");
        u64::from_le_bytes(buf)
    }
}

impl Drop for PingPong {
    fn drop(&mut self) {
        // Closing stdin ends the child's loop.
        drop(self.to.take());
        let _ = self.child.wait();
    }
}

/// Median, p99 and more of `LATENCY_CALLS` sequential calls, each timed alone.
struct Latency {
    tool: &'static str,
    sorted_ns: Vec<u64>,
}

impl Latency {
    fn measure(tool: &'static str, mut call: impl FnMut(u64) -> u64) -> Latency {
        for i in 0..LATENCY_WARMUP as u64 {
            assert_eq!(call(i), i * 2, "{tool}: wrong result");
        }
        let mut ns = Vec::with_capacity(LATENCY_CALLS);
        for i in 0..LATENCY_CALLS as u64 {
            let t = Instant::now();
            let r = call(black_box(i));
            ns.push(t.elapsed().as_nanos() as u64);
            assert_eq!(r, i * 2, "{tool}: wrong result");
        }
        ns.sort_unstable();
        Latency {
            tool,
            sorted_ns: ns,
        }
    }

    /// The `q`-quantile (nearest rank).
    fn quantile(&self, q: f64) -> u64 {
        let n = self.sorted_ns.len();
        let rank = ((q * n as f64).ceil() as usize).clamp(1, n);
        self.sorted_ns[rank - 1]
    }

    fn mean(&self) -> f64 {
        self.sorted_ns.iter().sum::<u64>() as f64 / self.sorted_ns.len() as f64
    }

    fn json(&self) -> String {
        format!(
            r#"    {{"tool": "{}", "calls": {}, "median_ns": {}, "p99_ns": {}, "mean_ns": {:.0}, "min_ns": {}, "max_ns": {}}}"#,
            self.tool,
            self.sorted_ns.len(),
            self.quantile(0.5),
            self.quantile(0.99),
            self.mean(),
            self.sorted_ns[0],
            self.sorted_ns[self.sorted_ns.len() - 1],
        )
    }
}

/// Writes `<target>/dilly-bench/pool-latency.json` and prints the latencies.
fn write_latencies(latencies: &[Latency], notes: &[String]) {
    let rows: Vec<String> = latencies.iter().map(Latency::json).collect();
    let notes: Vec<String> = notes
        .iter()
        .map(|n| format!("    \"{}\"", n.replace('\\', "\\\\").replace('"', "\\\"")))
        .collect();
    let json = format!(
        "{{\n  \"workload\": \"pool\",\n  \"workers\": {WORKERS},\n  \"latency\": [\n{}\n  ],\n  \"notes\": [\n{}\n  ]\n}}\n",
        rows.join(",\n"),
        notes.join(",\n")
    );
    common::write_report("pool-latency.json", &json, "round-trip latencies");
    for l in latencies {
        println!(
            "  {:<10} median {:>7} ns  p99 {:>7} ns  ({} calls)",
            l.tool,
            l.quantile(0.5),
            l.quantile(0.99),
            l.sorted_ns.len()
        );
    }
}

// ---------------------------------------------------------------------------------
// Benchmarks.
// ---------------------------------------------------------------------------------

/// Pool creation + first result, per start method. Runs first (see the module docs
/// on `Fork`); returns notes for the JSON file.
fn bench_pool_start(c: &mut Criterion, notes: &mut Vec<String>) {
    let f = dilly::func_of!(double);
    let mut group = c.benchmark_group("pool_start");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    for (name, method) in METHODS {
        if method == StartMethod::Fork && !wait_single_threaded() {
            let note = format!(
                "pool_start/fork skipped: {} threads in the bench process",
                thread_count().unwrap_or(0)
            );
            eprintln!("{note}");
            notes.push(note);
            continue;
        }
        group.bench_function(BenchmarkId::new("dilly", name), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    if method == StartMethod::Fork {
                        assert!(wait_single_threaded(), "helper threads did not end");
                    }
                    let t = Instant::now();
                    let pool = pool(method);
                    let r = pool.apply(&f, (21,)).expect("the first result");
                    total += t.elapsed();
                    assert_eq!(r, 42);
                    drop(pool);
                }
                total
            })
        });
    }
    group.finish();
}

/// One worker start per task: 1 worker, `max_tasks_per_child(1)`, sequential
/// `apply`. `Fork` works here too: its server is forked once, at pool start.
fn bench_worker_start(c: &mut Criterion) {
    let f = dilly::func_of!(double);
    let mut group = c.benchmark_group("worker_start");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    for (name, method) in METHODS {
        if method == StartMethod::Fork && !wait_single_threaded() {
            eprintln!("worker_start/fork skipped: the bench process is multi-threaded");
            continue;
        }
        let pool = ProcessPool::builder()
            .workers(1)
            .start_method(method)
            .max_tasks_per_child(1)
            .build()
            .expect("a pool");
        group.bench_function(BenchmarkId::new("dilly", name), |b| {
            b.iter(|| pool.apply(&f, (black_box(21),)).expect("a result"))
        });
    }
    group.finish();
}

/// 100,000 tiny tasks with default chunking; 20,000 at chunk size 1.
fn bench_throughput(c: &mut Criterion) {
    let f = dilly::func_of!(double);
    let mut group = c.benchmark_group("throughput");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));

    let default = pool(StartMethod::Spawn);
    let expected: Vec<u64> = (0..TINY_ITEMS).map(|x| x * 2).collect();
    assert_eq!(default.map(&f, 0..TINY_ITEMS).expect("results"), expected);
    group.throughput(Throughput::Elements(TINY_ITEMS));
    group.bench_function(BenchmarkId::new("dilly", "map_default_100k"), |b| {
        b.iter(|| default.map(&f, 0..TINY_ITEMS).expect("results"))
    });
    drop(default);

    let chunk1 = ProcessPool::builder()
        .workers(WORKERS)
        .chunk_size(1)
        .build()
        .expect("a pool");
    group.throughput(Throughput::Elements(TINY_ITEMS_CHUNK1));
    group.bench_function(BenchmarkId::new("dilly", "map_chunk1_20k"), |b| {
        b.iter(|| chunk1.map(&f, 0..TINY_ITEMS_CHUNK1).expect("results"))
    });
    group.finish();
}

/// One sequential call on a warm pool (criterion), and the 2,000 individually
/// timed calls (JSON) — dilly and the raw pipe ping-pong.
fn bench_round_trip(c: &mut Criterion, latencies: &mut Vec<Latency>) {
    let f = dilly::func_of!(double);
    let mut group = c.benchmark_group("round_trip");
    group
        .sample_size(50)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));

    let pool = pool(StartMethod::Spawn);
    latencies.push(Latency::measure("dilly", |x| {
        pool.apply(&f, (x,)).expect("a result")
    }));
    group.bench_function(BenchmarkId::new("dilly", "apply"), |b| {
        b.iter(|| pool.apply(&f, (black_box(21),)).expect("a result"))
    });
    drop(pool);

    let mut pipe = PingPong::start(None);
    // The pipe echoes; the "result" check wants x * 2, so double on this side.
    latencies.push(Latency::measure("pipe", |x| pipe.round_trip(x) * 2));
    group.bench_function(BenchmarkId::new("pipe", "ping_pong"), |b| {
        b.iter(|| pipe.round_trip(black_box(21)))
    });
    drop(pipe);
    group.finish();
}

/// The round trip with the scheduler's choice of CPUs taken away: everything on
/// CPU 0 (dilly's pool threads and workers inherit the pinned main thread's
/// affinity), and the ping-pong with the child on CPU 0 or on CPU 1. On a VM, a
/// wake-up across CPUs costs tens of microseconds; these rows show how much of each
/// round trip that is. Latency JSON only (no criterion rows).
fn pinned_latencies(latencies: &mut Vec<Latency>, notes: &mut Vec<String>) {
    let (Some(original), Ok(cpus)) = (affinity(), std::thread::available_parallelism()) else {
        notes.push("pinned latencies skipped: no CPU affinity".to_owned());
        return;
    };
    if !set_affinity(&cpu_set(&[0])) {
        notes.push("pinned latencies skipped: cannot pin to CPU 0".to_owned());
        return;
    }
    let f = dilly::func_of!(double);
    let pool = pool(StartMethod::Spawn);
    latencies.push(Latency::measure("dilly_one_cpu", |x| {
        pool.apply(&f, (x,)).expect("a result")
    }));
    drop(pool);
    let mut pipe = PingPong::start(Some(0));
    latencies.push(Latency::measure("pipe_one_cpu", |x| pipe.round_trip(x) * 2));
    drop(pipe);
    if cpus.get() >= 2 {
        let mut pipe = PingPong::start(Some(1));
        latencies.push(Latency::measure("pipe_two_cpus", |x| {
            pipe.round_trip(x) * 2
        }));
        drop(pipe);
    }
    set_affinity(&original);
}

/// 64 × 1 MiB through the identity function, default chunking and chunk size 1,
/// as `Vec<u8>` (the workload as specified) and as `serde_bytes::ByteBuf`.
fn bench_payload(c: &mut Criterion) {
    let mut group = c.benchmark_group("payload");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .throughput(Throughput::Bytes((PAYLOAD_ITEMS * PAYLOAD_LEN) as u64));
    let items: Vec<Vec<u8>> = (0..PAYLOAD_ITEMS)
        .map(|i| (0..PAYLOAD_LEN).map(|j| (i * 31 + j) as u8).collect())
        .collect();
    let bufs: Vec<ByteBuf> = items.iter().cloned().map(ByteBuf::from).collect();
    let vec_f = dilly::func_of!(identity);
    let buf_f = dilly::func_of!(identity_bytes);
    for (name, chunk) in [("map_default", None), ("map_chunk1", Some(1))] {
        let mut builder = ProcessPool::builder().workers(WORKERS);
        if let Some(chunk) = chunk {
            builder = builder.chunk_size(chunk);
        }
        let pool = builder.build().expect("a pool");
        assert!(pool.map(&vec_f, items.clone()).expect("results") == items);
        assert!(pool.map(&buf_f, bufs.clone()).expect("results") == bufs);
        group.bench_function(BenchmarkId::new("dilly", name), |b| {
            b.iter_custom(|iters| time_map(&pool, &vec_f, &items, iters))
        });
        group.bench_function(BenchmarkId::new("dilly_bytebuf", name), |b| {
            b.iter_custom(|iters| time_map(&pool, &buf_f, &bufs, iters))
        });
    }
    group.finish();
}

/// Total time of `iters` maps of `f` over `items`; the copy each map consumes is
/// made outside the timing.
fn time_map<T>(pool: &ProcessPool, f: &dilly::Func<(T,), T>, items: &[T], iters: u64) -> Duration
where
    T: Clone + serde::Serialize + serde::de::DeserializeOwned + 'static,
{
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let input = items.to_vec();
        let t = Instant::now();
        let out = pool.map(f, input).expect("results");
        total += t.elapsed();
        assert_eq!(out.len(), items.len());
        drop(out);
    }
    total
}

/// Workers of the long-task pool (more than the machine's cores: placement, not
/// the CPU, decides the makespan of sleeping tasks).
const LONG_WORKERS: usize = 4;
/// Timed makespans per long-task workload (after one warm-up map).
const LONG_REPS: usize = 3;

/// The long-task workloads, as in `benches/python/pool.py`: name, whether the tasks
/// spin (else they sleep), and the task lengths in milliseconds, in input order.
/// 8 × 200 ms on 4 workers takes 2 task-times (400 ms) when placed evenly; the
/// mix, 1,800 ms of work, 600 ms when each task goes to the first free worker in
/// input order (450 ms at best).
const LONG_WORKLOADS: [(&str, bool, &[u64]); 4] = [
    ("sleep_equal", false, &[200; 8]),
    (
        "sleep_mixed",
        false,
        &[400, 50, 300, 100, 250, 150, 350, 200],
    ),
    ("spin_equal", true, &[200; 8]),
    ("spin_mixed", true, &[400, 50, 300, 100, 250, 150, 350, 200]),
];

/// Makespans of `map` over long tasks on a 4-worker pool (default chunking),
/// `LONG_REPS` each, timed with [`Instant`]: their median and minimum go to
/// `<target>/dilly-bench/pool-long.json`. Not criterion: a few repetitions of a
/// 0.4–0.6 s map say what placement costs, and keep the bench short.
fn long_tasks() {
    let pool = ProcessPool::builder()
        .workers(LONG_WORKERS)
        .build()
        .expect("a pool");
    let (sleep, spin) = (dilly::func_of!(sleep_ms), dilly::func_of!(spin_ms));
    let mut rows = Vec::new();
    for (name, spins, lengths) in LONG_WORKLOADS {
        let f = if spins { &spin } else { &sleep };
        let mut times = Vec::with_capacity(LONG_REPS);
        for rep in 0..=LONG_REPS {
            let t = Instant::now();
            let out = pool.map(f, lengths.iter().copied()).expect("results");
            let elapsed = t.elapsed();
            assert_eq!(out, lengths, "{name}: wrong results");
            if rep > 0 {
                times.push(elapsed.as_nanos() as u64);
            }
        }
        times.sort_unstable();
        let median = times[times.len() / 2];
        println!(
            "  long tasks {name:<12} makespan median {:>7.1} ms  min {:>7.1} ms  ({} runs)",
            median as f64 / 1e6,
            times[0] as f64 / 1e6,
            times.len()
        );
        rows.push(format!(
            r#"    {{"workload": "{name}", "tasks_ms": {lengths:?}, "median_ns": {median}, "min_ns": {}, "repetitions": {}}}"#,
            times[0],
            times.len()
        ));
    }
    let json = format!(
        "{{\n  \"workload\": \"pool-long\",\n  \"workers\": {LONG_WORKERS},\n  \"makespans\": [\n{}\n  ]\n}}\n",
        rows.join(",\n")
    );
    common::write_report("pool-long.json", &json, "long-task makespans");
}

/// procspawn's warm pool, the Rust alternative. Last: it keeps threads running.
fn bench_procspawn(c: &mut Criterion, latencies: &mut Vec<Latency>) {
    let mut group = c.benchmark_group("round_trip");
    group
        .sample_size(50)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    let pool = procspawn::Pool::new(WORKERS).expect("a procspawn pool");
    let call = |x: u64| {
        pool.spawn(x, double_plain as fn(u64) -> u64)
            .join()
            .expect("a procspawn result")
    };
    latencies.push(Latency::measure("procspawn", call));
    group.bench_function(BenchmarkId::new("procspawn", "warm_pool"), |b| {
        b.iter(|| call(black_box(21)))
    });
    group.finish();
    pool.shutdown();
}

fn main() {
    // procspawn's children run `main` again; this serves them and exits.
    procspawn::init();
    if let Ok(pin) = std::env::var(PIPE_CHILD_ENV) {
        pipe_child(pin.parse().ok());
        return;
    }

    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    let listing = std::env::args().any(|a| a == "--list");

    let mut notes = Vec::new();
    let threads = thread_count().unwrap_or(0);
    notes.push(format!("threads in the bench process at start: {threads}"));
    if !listing {
        println!("threads in the bench process at start: {threads}");
    }

    bench_pool_start(&mut c, &mut notes);
    bench_worker_start(&mut c);
    bench_throughput(&mut c);
    let mut latencies = Vec::new();
    bench_round_trip(&mut c, &mut latencies);
    if !listing {
        pinned_latencies(&mut latencies, &mut notes);
    }
    bench_payload(&mut c);
    if !listing {
        long_tasks();
    }
    bench_procspawn(&mut c, &mut latencies);
    if !listing {
        write_latencies(&latencies, &notes);
    }
    c.final_summary();
}
