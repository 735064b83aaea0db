//! dilly-redis through a local `redis-server`, with one worker host of 2 worker
//! processes: the workloads `benches/python/redis_rq.py` runs on RQ.
//!
//! | group            | what one iteration is                                           |
//! |------------------|-----------------------------------------------------------------|
//! | `redis_map`      | `map(x * 2)` over 100,000 items, default chunking               |
//! | `redis_apply_async` | 10,000 `apply_async(x * 2)`, then every handle's `get`       |
//! | `redis_apply`    | one sequential `apply` on a warm pool                           |
//!
//! Besides criterion's numbers, the bench times 1,000 sequential `apply` calls one
//! by one and writes their median and p99, with one timed run of each of the
//! other two workloads, to `<target>/dilly-bench/redis.json`, which
//! `benches/compare.sh redis` puts next to RQ's numbers.
//!
//! The bench starts its own `redis-server` (free loopback port, temporary
//! directory, no persistence); the host is this binary started again with
//! [`HOST_ENV`] set, which serves before criterion runs.

use std::hint::black_box;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use dilly_pool::Executor;
use dilly_redis::{RedisPool, WorkerHost};

/// Set in the host process's environment to the Redis URL it serves.
const HOST_ENV: &str = "DILLY_REDIS_BENCH_HOST";
const QUEUE: &str = "bench";
const MAP_ITEMS: u64 = 100_000;
const INDEPENDENT: u64 = 10_000;
const SEQUENTIAL: usize = 1_000;

#[dilly::func]
fn double(x: u64) -> u64 {
    x * 2
}

struct Server {
    redis: Child,
    host: Child,
    dir: std::path::PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.host.kill();
        let _ = self.host.wait();
        let _ = self.redis.kill();
        let _ = self.redis.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn start() -> (Server, String) {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let dir = std::env::temp_dir().join(format!("dilly-redis-bench-{port}"));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    let redis = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .arg("--dir")
        .arg(&dir)
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server is installed");
    let url = format!("redis://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "redis-server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let host = Command::new(std::env::current_exe().expect("this binary"))
        .env(HOST_ENV, &url)
        .stdout(Stdio::null())
        .spawn()
        .expect("a host process");
    (Server { redis, host, dir }, url)
}

fn main() {
    if let Ok(url) = std::env::var(HOST_ENV) {
        WorkerHost::builder(url)
            .queue(QUEUE)
            .workers(2)
            .serve()
            .expect("the bench host serves");
        return;
    }
    let (_server, url) = start();
    let pool = RedisPool::builder(&url)
        .queue(QUEUE)
        .workers(2)
        .build()
        .expect("a pool");
    let f = dilly::func_of!(double);
    // Warm up: the host is registered and its workers started.
    assert_eq!(pool.apply(&f, (21,)).unwrap(), 42);

    let mut c = Criterion::default()
        .configure_from_args()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    let mut g = c.benchmark_group("redis_map");
    g.throughput(Throughput::Elements(MAP_ITEMS));
    g.bench_function("dilly", |b| {
        b.iter(|| black_box(pool.map(&f, 0..MAP_ITEMS).unwrap()))
    });
    g.finish();
    let mut g = c.benchmark_group("redis_apply_async");
    g.throughput(Throughput::Elements(INDEPENDENT));
    g.bench_function("dilly", |b| {
        b.iter(|| {
            let handles: Vec<_> = (0..INDEPENDENT)
                .map(|x| pool.apply_async(&f, (x,)).unwrap())
                .collect();
            for h in handles {
                black_box(h.get().unwrap());
            }
        })
    });
    g.finish();
    let mut g = c.benchmark_group("redis_apply");
    g.bench_function("dilly", |b| {
        b.iter(|| black_box(pool.apply(&f, (7,)).unwrap()))
    });
    g.finish();

    // The report: one timed run of each throughput workload, and the latencies of
    // sequential calls.
    let t = Instant::now();
    let out = pool.map(&f, 0..MAP_ITEMS).unwrap();
    let map_s = t.elapsed().as_secs_f64();
    assert_eq!(out.len() as u64, MAP_ITEMS);
    let t = Instant::now();
    let handles: Vec<_> = (0..INDEPENDENT)
        .map(|x| pool.apply_async(&f, (x,)).unwrap())
        .collect();
    for (x, h) in handles.into_iter().enumerate() {
        assert_eq!(h.get().unwrap(), 2 * x as u64);
    }
    let independent_s = t.elapsed().as_secs_f64();
    let mut lat: Vec<f64> = (0..SEQUENTIAL)
        .map(|i| {
            let t = Instant::now();
            assert_eq!(pool.apply(&f, (i as u64,)).unwrap(), 2 * i as u64);
            t.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    lat.sort_by(f64::total_cmp);
    // Redis's own CPU time per command, over everything above: the cost of one
    // chunk in Redis, for sizing (docs/distributed.md).
    let info: String = {
        let mut con = redis::Client::open(url.as_str())
            .and_then(|c| c.get_connection())
            .expect("a connection");
        redis::cmd("INFO")
            .arg("commandstats")
            .query(&mut con)
            .expect("INFO commandstats")
    };
    let commands: Vec<String> = info
        .lines()
        .filter_map(|l| {
            let (name, rest) = l.strip_prefix("cmdstat_")?.split_once(':')?;
            let field = |k: &str| {
                rest.split(',')
                    .find_map(|kv| kv.strip_prefix(k)?.strip_prefix('='))
                    .map(str::to_owned)
            };
            Some(format!(
                "\"{name}\": {{\"calls\": {}, \"usec_per_call\": {}}}",
                field("calls")?,
                field("usec_per_call")?
            ))
        })
        .collect();
    let json = format!(
        "{{\n  \"commandstats\": {{{}}},\n  \"map\": {{\"jobs\": {MAP_ITEMS}, \"seconds\": {map_s}, \"jobs_per_second\": {}}},\n  \
         \"independent\": {{\"jobs\": {INDEPENDENT}, \"seconds\": {independent_s}, \"jobs_per_second\": {}}},\n  \
         \"sequential\": {{\"jobs\": {SEQUENTIAL}, \"median_us\": {}, \"p99_us\": {}}}\n}}\n",
        commands.join(", "),
        MAP_ITEMS as f64 / map_s,
        INDEPENDENT as f64 / independent_s,
        lat[SEQUENTIAL / 2],
        lat[SEQUENTIAL * 99 / 100],
    );
    print!("{json}");
    write_report("redis.json", &json);
    c.final_summary();
}

/// Writes `json` to `<target>/dilly-bench/<file>` for `benches/compare.sh`.
fn write_report(file: &str, json: &str) {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .or_else(|| {
            std::env::current_exe()
                .ok()
                .and_then(|exe| exe.ancestors().nth(3).map(std::path::PathBuf::from))
        })
        .unwrap_or_else(|| "target".into());
    let dir = target.join("dilly-bench");
    let path = dir.join(file);
    match std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, json)) {
        Ok(()) => println!("report written to {}", path.display()),
        Err(err) => eprintln!("warning: cannot write {}: {err}", path.display()),
    }
}
