//! Faults: hosts killed, restarted, crashing tasks, Redis restarted, a chunk
//! whose hosts always die, a host without the function, a submitter that dies.
//! Each asserts that every task's outcome arrives exactly once.

mod common;

use std::io::{BufRead, BufReader};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{Host, HostOpts, Redis, exactly_once, wait_for};
use dilly::RawFunc;
use dilly_pool::backend::Items;
use dilly_pool::{Executor, TaskError, WorkerExit};
use dilly_redis::RedisPool;

#[test]
fn host_entry() {
    common::host_entry();
}

#[test]
fn submitter_entry() {
    common::submitter_entry(dilly::func_of!(slow_square));
}

#[dilly::func]
fn slow_square(x: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(100));
    x * x
}

#[dilly::func]
fn crash_on_two(x: u64) -> u64 {
    if x == 2 {
        // SAFETY: none — this is the crash under test.
        unsafe { std::ptr::null_mut::<u64>().write_volatile(1) };
    }
    x
}

#[dilly::func]
fn kill_host_on_seven(x: u64) -> u64 {
    if x == 7 {
        // SAFETY: plain libc calls with valid arguments; killing the host is the
        // fault under test.
        unsafe {
            libc::kill(libc::getppid(), libc::SIGKILL);
        }
        std::thread::sleep(Duration::from_secs(60));
    }
    x
}

fn squares(n: u64) -> Vec<u64> {
    (0..n).map(|x| x * x).collect()
}

fn ok(out: Vec<Result<u64, TaskError>>) -> Vec<u64> {
    out.into_iter().map(Result::unwrap).collect()
}

/// Whether the host with `pid` holds unacknowledged chunks.
fn holds_chunks(redis: &Redis, queue: &str, pid: u32) -> bool {
    let mut con = redis.conn();
    let summary: redis::Value = redis::cmd("XPENDING")
        .arg(format!("dilly:{{{queue}}}:tasks"))
        .arg("hosts")
        .query(&mut con)
        .unwrap();
    format!("{summary:?}").contains(&format!(":{pid}:"))
}

#[test]
fn a_host_killed_while_holding_chunks_loses_nothing() {
    let redis = Redis::start();
    let url = redis.url();
    let mut doomed = Host::start(&url, "kill9");
    let _other = Host::start(&url, "kill9");
    let pool = RedisPool::builder(&url).queue("kill9").build().unwrap();
    let out = std::thread::scope(|s| {
        let run = s.spawn(|| {
            exactly_once(
                &pool,
                &dilly::func_of!(slow_square),
                (0..40u64).map(|x| (x,)).collect(),
                2,
            )
        });
        wait_for(
            Duration::from_secs(30),
            "the doomed host to hold chunks",
            || holds_chunks(&redis, "kill9", doomed.pid()),
        );
        doomed.kill9();
        run.join().unwrap()
    });
    assert_eq!(ok(out), squares(40));
    assert!(pool.stats().unwrap().retried >= 1);
}

#[test]
fn a_host_stopped_and_restarted_mid_map_loses_nothing() {
    let redis = Redis::start();
    let url = redis.url();
    let mut host = Host::start(&url, "restart");
    let pool = RedisPool::builder(&url).queue("restart").build().unwrap();
    let out = std::thread::scope(|s| {
        let run = s.spawn(|| {
            exactly_once(
                &pool,
                &dilly::func_of!(slow_square),
                (0..30u64).map(|x| (x,)).collect(),
                3,
            )
        });
        wait_for(Duration::from_secs(30), "the host to hold chunks", || {
            holds_chunks(&redis, "restart", host.pid())
        });
        host.kill9();
        std::thread::sleep(Duration::from_millis(300));
        let again = Host::start(&url, "restart");
        let out = run.join().unwrap();
        drop(again);
        out
    });
    assert_eq!(ok(out), squares(30));
}

#[test]
fn a_segfaulting_task_is_its_worker_died_and_the_host_lives_on() {
    let redis = Redis::start();
    let mut host = Host::start(&redis.url(), "segv");
    let pool = RedisPool::builder(redis.url())
        .queue("segv")
        .build()
        .unwrap();
    let out = exactly_once(
        &pool,
        &dilly::func_of!(crash_on_two),
        (0..8u64).map(|x| (x,)).collect(),
        4,
    );
    for (x, r) in out.into_iter().enumerate() {
        match (x, r) {
            (
                2,
                Err(TaskError::WorkerDied {
                    exit: WorkerExit::Signal(11),
                    ..
                }),
            ) => {}
            (x, Ok(v)) if x != 2 => assert_eq!(v, x as u64),
            (x, other) => panic!("task {x}: {other:?}"),
        }
    }
    assert!(!host.exited(), "the host died with its worker");
    assert_eq!(pool.apply(&dilly::func_of!(crash_on_two), (5,)).unwrap(), 5);
}

#[test]
fn a_map_finishes_after_redis_restarts_with_aof() {
    let mut redis = Redis::start_with_aof();
    let url = redis.url();
    let _host = Host::start(&url, "aof");
    let pool = RedisPool::builder(&url).queue("aof").build().unwrap();
    let started = AtomicBool::new(false);
    let out = std::thread::scope(|s| {
        let run = s.spawn(|| {
            started.store(true, Ordering::SeqCst);
            exactly_once(
                &pool,
                &dilly::func_of!(slow_square),
                (0..40u64).map(|x| (x,)).collect(),
                2,
            )
        });
        wait_for(Duration::from_secs(10), "the map to start", || {
            started.load(Ordering::SeqCst)
        });
        std::thread::sleep(Duration::from_millis(500));
        redis.restart(Duration::from_millis(500));
        run.join().unwrap()
    });
    assert_eq!(ok(out), squares(40));
}

#[test]
fn a_chunk_whose_hosts_always_die_is_dead_lettered_and_reported() {
    let redis = Redis::start();
    let url = redis.url();
    let opts = HostOpts {
        processes: 1,
        max_deliveries: 2,
        ..HostOpts::default()
    };
    let pool = RedisPool::builder(&url).queue("doomed").build().unwrap();
    let done = AtomicBool::new(false);
    let out = std::thread::scope(|s| {
        // Hosts die on task 7; a supervisor keeps one running, as systemd would.
        s.spawn(|| {
            let mut host = Host::with(&url, "doomed", &opts);
            while !done.load(Ordering::SeqCst) {
                if host.exited() {
                    host = Host::with(&url, "doomed", &opts);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        let out = exactly_once(
            &pool,
            &dilly::func_of!(kill_host_on_seven),
            (0..10u64).map(|x| (x,)).collect(),
            2,
        );
        done.store(true, Ordering::SeqCst);
        out
    });
    for (x, r) in out.into_iter().enumerate() {
        match (x, r) {
            (
                6 | 7,
                Err(TaskError::GivenUp {
                    deliveries: 3,
                    last_error,
                }),
            ) => {
                assert!(last_error.contains("kept dying"), "{last_error}");
                let shown = TaskError::GivenUp {
                    deliveries: 3,
                    last_error,
                }
                .to_string();
                assert!(shown.contains("requeue_dead_letter"), "{shown}");
            }
            (x, Ok(v)) if x != 6 && x != 7 => assert_eq!(v, x as u64),
            (x, other) => panic!("task {x}: {other:?}"),
        }
    }
    let dead = pool.dead_letters(10).unwrap();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].deliveries, 3);
    assert!(
        dead[0].reason.contains("delivered 3 times"),
        "{}",
        dead[0].reason
    );
    let stats = pool.stats().unwrap();
    assert_eq!(stats.dead_lettered, 1);
    assert!(stats.retried >= 1);
}

#[test]
fn a_host_without_the_function_answers_at_once_without_retrying() {
    let redis = Redis::start();
    let _host = Host::start(&redis.url(), "skew");
    let pool = RedisPool::builder(redis.url())
        .queue("skew")
        .build()
        .unwrap();
    let square = dilly::func_of!(slow_square).raw();
    let RawFunc::Registered {
        id,
        fingerprint,
        shape,
        state,
    } = square.clone()
    else {
        panic!("a registered function");
    };
    // What an older or newer build sends: an ID this build lacks, a known ID with
    // another signature, and one whose data types differ.
    let unknown = RawFunc::Registered {
        id: dilly::SymbolId::from_raw(0x0bad_0bad_0bad_0bad),
        fingerprint: dilly::Fingerprint::from_raw(1),
        shape,
        state: state.clone(),
    };
    let skewed = RawFunc::Registered {
        id,
        fingerprint: dilly::Fingerprint::from_raw(2),
        shape,
        state: state.clone(),
    };
    let reshaped = RawFunc::Registered {
        id,
        fingerprint,
        shape: dilly::Fingerprint::from_raw(3),
        state,
    };
    let args = dilly::to_bytes(&(3u64,)).unwrap();
    for (raw, expected) in [
        (unknown, "UnknownSymbol"),
        (skewed, "SignatureMismatch"),
        (reshaped, "ShapeMismatch"),
    ] {
        let mut job = pool.open(&raw).unwrap();
        job.submit(0, [&args, &args, &args].into_iter().collect::<Items>())
            .unwrap();
        let mut got = Vec::new();
        while got.len() < 3 {
            let batch = job.next(Some(Duration::from_secs(30))).expect("outcomes");
            for (i, r) in batch.iter() {
                got.push(i);
                match r {
                    Err(TaskError::Rejected { error }) => {
                        assert!(error.is_version_skew(), "{error}");
                        let kind = match error {
                            dilly::Error::UnknownSymbol { .. } => "UnknownSymbol",
                            dilly::Error::SignatureMismatch { .. } => "SignatureMismatch",
                            dilly::Error::ShapeMismatch { .. } => "ShapeMismatch",
                            _ => "another error",
                        };
                        assert_eq!(kind, expected, "{error}");
                    }
                    other => panic!("task {i}: {other:?}"),
                }
            }
        }
        got.sort_unstable();
        assert_eq!(got, [0, 1, 2]);
    }
    let stats = pool.stats().unwrap();
    assert_eq!(
        (stats.retried, stats.dead_lettered, stats.in_flight),
        (0, 0, 0)
    );
}

#[test]
fn the_jobs_of_a_dead_submitter_are_skipped_and_cleaned() {
    let redis = Redis::start();
    let url = redis.url();
    let mut submitter = common::start_submitter(&url, "orphans", 5);
    // The test harness prints its own lines first.
    let submitted = BufReader::new(submitter.stdout.take().unwrap())
        .lines()
        .any(|line| line.unwrap().trim_end().ends_with("submitted"));
    assert!(submitted, "the submitter process did not submit");
    let _ = submitter.kill();
    let _ = submitter.wait();
    let mut con = redis.conn();
    let tasks = "dilly:{orphans}:tasks";
    let len =
        |con: &mut redis::Connection| -> u64 { redis::cmd("XLEN").arg(tasks).query(con).unwrap() };
    assert_eq!(len(&mut con), 5);
    // The heartbeat key expires (800 ms); then a host skips and deletes the chunks.
    wait_for(
        Duration::from_secs(10),
        "the heartbeat key to expire",
        || {
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg("dilly:{orphans}:submitter:*")
                .query(&mut con)
                .unwrap();
            keys.is_empty()
        },
    );
    let _host = Host::start(&url, "orphans");
    let pool = RedisPool::builder(&url).queue("orphans").build().unwrap();
    wait_for(Duration::from_secs(30), "the chunks to be skipped", || {
        pool.stats().unwrap().skipped == 5
    });
    assert_eq!(len(&mut con), 0);
    let results: Vec<String> = redis::cmd("KEYS")
        .arg("dilly:{orphans}:results:*")
        .query(&mut con)
        .unwrap();
    assert!(results.is_empty(), "{results:?}");
    // Nothing ran: the skipped chunks' tasks were not executed (they would have
    // taken 100 ms each and left results).
    assert_eq!(pool.stats().unwrap().in_flight, 0);
}

#[test]
fn hosts_and_pools_carry_on_after_redis_restarts_empty() {
    let mut redis = Redis::start();
    let url = redis.url();
    let _host = Host::start(&url, "amnesia");
    let pool = RedisPool::builder(&url).queue("amnesia").build().unwrap();
    let f = dilly::func_of!(slow_square);
    assert_eq!(pool.map(&f, 0..4u64).unwrap(), squares(4));
    // Without persistence, the stream, its consumer group and the heartbeat key
    // are gone after the restart: the host creates the group again, the pool
    // sets its heartbeat key again with its next chunks.
    redis.restart(Duration::from_millis(200));
    let out = exactly_once(&pool, &f, (0..10u64).map(|x| (x,)).collect(), 2);
    assert_eq!(ok(out), squares(10));
}

#[dilly::func]
fn five_seconds(x: u64) -> u64 {
    std::thread::sleep(Duration::from_secs(5));
    x
}

#[test]
fn a_chunk_running_past_the_visibility_timeout_is_not_stolen() {
    let redis = Redis::start();
    let url = redis.url();
    // Visibility 2 s (ten heartbeats: a loaded machine does not stall the
    // heartbeat that long); the task takes 5 s; a second host is idle and looking.
    let opts = HostOpts {
        visibility_ms: 2000,
        ..HostOpts::default()
    };
    let _a = Host::with(&url, "long", &opts);
    let _b = Host::with(&url, "long", &opts);
    let pool = RedisPool::builder(&url).queue("long").build().unwrap();
    let out = exactly_once(&pool, &dilly::func_of!(five_seconds), vec![(5,)], 1);
    assert_eq!(ok(out), [5]);
    let stats = pool.stats().unwrap();
    assert_eq!(
        stats.retried, 0,
        "the running chunk was taken by another host"
    );
}

#[test]
fn the_registration_of_a_killed_host_is_removed_by_the_others() {
    let redis = Redis::start();
    let url = redis.url();
    let mut killed = Host::start(&url, "forget");
    let _alive = Host::start(&url, "forget");
    let pool = RedisPool::builder(&url).queue("forget").build().unwrap();
    let pid = killed.pid();
    wait_for(Duration::from_secs(30), "both registrations", || {
        pool.stats().unwrap().hosts.len() == 2
    });
    killed.kill9();
    // Ten heartbeats (2 s) and two visibility timeouts (2 s) of silence, noticed
    // at the survivor's next clean-up (every 30 heartbeats, 6 s).
    wait_for(
        Duration::from_secs(60),
        "the killed host to be forgotten",
        || {
            let hosts = pool.stats().unwrap().hosts;
            hosts.len() == 1 && hosts[0].pid != pid
        },
    );
}
