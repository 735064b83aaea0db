//! Test harness: a real `redis-server` on a free loopback port in a temporary
//! directory, worker hosts as real processes of this test binary, and a check
//! that every task's outcome arrives exactly once.
#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dilly::{Func, Mode};
use dilly_pool::backend::Items;
use dilly_pool::{Executor, TaskError};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A `redis-server` of its own; stopped and its directory removed on drop.
pub struct Redis {
    child: Option<Child>,
    pub port: u16,
    dir: PathBuf,
    args: Vec<String>,
    password: Option<String>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

impl Redis {
    /// A server without persistence.
    pub fn start() -> Redis {
        Redis::with(&["--save", "", "--appendonly", "no"], None)
    }

    /// A server with AOF on, every write synced: it loses nothing on a restart.
    pub fn start_with_aof() -> Redis {
        Redis::with(
            &[
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ],
            None,
        )
    }

    /// A server that requires `password`.
    pub fn start_with_password(password: &str) -> Redis {
        Redis::with(&["--save", "", "--requirepass", password], Some(password))
    }

    fn with(args: &[&str], password: Option<&str>) -> Redis {
        let port = free_port();
        let dir =
            std::env::temp_dir().join(format!("dilly-redis-test-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        let mut redis = Redis {
            child: None,
            port,
            dir,
            args: args.iter().map(|s| s.to_string()).collect(),
            password: password.map(str::to_owned),
        };
        redis.spawn();
        redis
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .arg("--port")
            .arg(self.port.to_string())
            .arg("--bind")
            .arg("127.0.0.1")
            .arg("--dir")
            .arg(&self.dir)
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed (apt-get install -y redis-server)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) {
                let mut buf = [0u8; 64];
                if s.write_all(b"PING\r\n").is_ok()
                    && let Ok(n) = s.read(&mut buf)
                {
                    // +PONG, or -NOAUTH with a password; -LOADING while the AOF loads.
                    if n > 0 && !buf[..n].starts_with(b"-LOADING") {
                        return;
                    }
                }
            }
            assert!(Instant::now() < deadline, "redis-server did not come up");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn url(&self) -> String {
        match &self.password {
            Some(p) => format!("redis://:{p}@127.0.0.1:{}", self.port),
            None => format!("redis://127.0.0.1:{}", self.port),
        }
    }

    /// Kills the server with SIGKILL and starts it again on the same port and
    /// directory, after `down`.
    pub fn restart(&mut self, down: Duration) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        std::thread::sleep(down);
        self.spawn();
    }

    /// Kills the server with SIGKILL for good (its port stays closed).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// A plain connection, for inspecting and forging.
    pub fn conn(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .unwrap()
            .get_connection()
            .unwrap()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A worker host: this test binary, started again to run only `host_entry`.
pub struct Host {
    pub child: Child,
}

/// Settings of a test host.
#[derive(Clone)]
pub struct HostOpts {
    pub processes: usize,
    pub visibility_ms: u64,
    pub max_deliveries: u64,
    pub key: Option<String>,
}

impl Default for HostOpts {
    fn default() -> Self {
        HostOpts {
            processes: 2,
            visibility_ms: 1000,
            max_deliveries: 3,
            key: None,
        }
    }
}

impl Host {
    pub fn start(url: &str, queue: &str) -> Host {
        Host::with(url, queue, &HostOpts::default())
    }

    pub fn with(url: &str, queue: &str, opts: &HostOpts) -> Host {
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.args([
            "--exact",
            "host_entry",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env("DILLY_REDIS_TEST_HOST", "1")
        .env("T_URL", url)
        .env("T_QUEUE", queue)
        .env("T_PROCESSES", opts.processes.to_string())
        .env("T_VISIBILITY_MS", opts.visibility_ms.to_string())
        .env("T_MAX_DELIVERIES", opts.max_deliveries.to_string())
        .env_remove("DILLY_REDIS_KEY")
        .stdout(Stdio::null());
        if let Some(k) = &opts.key {
            cmd.env("DILLY_REDIS_KEY", k);
        }
        Host {
            child: cmd.spawn().unwrap(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, no goodbye.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Whether it has exited.
    pub fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// The body of each test file's `host_entry` test: serves when started as a
/// host, returns at once otherwise.
pub fn host_entry() {
    if std::env::var_os("DILLY_REDIS_TEST_HOST").is_none() {
        return;
    }
    let var = |k: &str| std::env::var(k).unwrap();
    dilly_redis::WorkerHost::builder(var("T_URL"))
        .queue(var("T_QUEUE"))
        .workers(var("T_PROCESSES").parse().unwrap())
        .visibility_timeout(Duration::from_millis(
            var("T_VISIBILITY_MS").parse().unwrap(),
        ))
        .max_deliveries(var("T_MAX_DELIVERIES").parse().unwrap())
        .heartbeat(Duration::from_millis(200))
        .serve()
        .unwrap();
}

/// Runs `func` on `args` through the backend seam in chunks of `chunk`, counts
/// the outcomes per task index, asserts that each arrives exactly once and that
/// nothing more comes afterwards, and returns the decoded outcomes in order.
pub fn exactly_once<E, A, R, M>(
    exec: &E,
    func: &Func<A, R, M>,
    args: Vec<A>,
    chunk: usize,
) -> Vec<Result<R, TaskError>>
where
    E: Executor,
    A: Serialize + 'static,
    R: DeserializeOwned + 'static,
    M: Mode,
{
    let n = args.len();
    let mut job = exec.open(&func.raw()).unwrap();
    let mut first = 0u64;
    for part in args.chunks(chunk) {
        let mut items = Items::new();
        for a in part {
            items
                .push_with(|out| func.encode_args_into(a, out))
                .unwrap();
        }
        job.submit(first, items).unwrap();
        first += part.len() as u64;
    }
    let mut seen: HashMap<u64, Result<R, TaskError>> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(240);
    while seen.len() < n {
        assert!(
            Instant::now() < deadline,
            "only {} of {n} outcomes arrived",
            seen.len()
        );
        let Some(batch) = job.next(Some(Duration::from_secs(1))) else {
            continue;
        };
        for (index, outcome) in batch.iter() {
            assert!((index as usize) < n, "an outcome for task {index} of {n}");
            let value = outcome.map_err(Clone::clone).and_then(|b| {
                func.decode_result(b)
                    .map_err(|error| TaskError::Unserializable { error })
            });
            assert!(
                seen.insert(index, value).is_none(),
                "task {index}'s outcome arrived twice"
            );
        }
    }
    // Re-runs of chunks may still be finishing: none of their outcomes may come.
    if let Some(extra) = job.next(Some(Duration::from_millis(300))) {
        panic!("outcomes after every task reported: {extra:?}");
    }
    (0..n as u64).map(|i| seen.remove(&i).unwrap()).collect()
}

/// Waits for `cond`, at most `within` (a hang detector, not a timing check).
pub fn wait_for(within: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A submitter process: this test binary, started again to run only
/// `submitter_entry`, which queues `T_ITEMS` tasks of the named function and then
/// dies without a goodbye (its heartbeat key left to expire).
pub fn start_submitter(url: &str, queue: &str, items: u64) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "submitter_entry",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env("DILLY_REDIS_TEST_SUBMITTER", "1")
        .env("T_URL", url)
        .env("T_QUEUE", queue)
        .env("T_ITEMS", items.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The body of `submitter_entry`: submits `func` over `0..T_ITEMS` in chunks of
/// one, prints `submitted`, and exits at once.
pub fn submitter_entry<R: DeserializeOwned + Send + 'static, M: Mode>(func: Func<(u64,), R, M>) {
    if std::env::var_os("DILLY_REDIS_TEST_SUBMITTER").is_none() {
        return;
    }
    let var = |k: &str| std::env::var(k).unwrap();
    let pool = dilly_redis::RedisPool::builder(var("T_URL"))
        .queue(var("T_QUEUE"))
        .chunk_size(1)
        .submitter_timeout(Duration::from_millis(800))
        .build()
        .unwrap();
    let n: u64 = var("T_ITEMS").parse().unwrap();
    let handle = pool.map_async(&func, 0..n).unwrap();
    println!("submitted");
    std::io::stdout().flush().unwrap();
    std::mem::forget(handle);
    std::mem::forget(pool);
    std::process::exit(0);
}
