//! The typed API through a real Redis and real worker-host processes.

mod common;

use std::iter::zip;
use std::time::Duration;

use common::{Host, Redis, exactly_once, wait_for};
use dilly_pool::{Error, Executor, TaskError};
use dilly_redis::RedisPool;
use serde::{Deserialize, Serialize};

#[test]
fn host_entry() {
    common::host_entry();
}

#[dilly::func]
fn square(x: u64) -> u64 {
    x * x
}

#[dilly::func]
fn slow_square(x: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(50));
    x * x
}

#[dilly::func]
fn fails_on_three(x: u64) -> u64 {
    assert!(x != 3, "three is not allowed");
    x
}

#[derive(Serialize, Deserialize)]
struct Transformer;

#[dilly::methods]
impl Transformer {
    fn process_data(&self, x: u64, y: u64) -> u64 {
        x * y
    }
}

#[test]
fn every_typed_method_runs_on_a_remote_host() {
    let redis = Redis::start();
    let _host = Host::start(&redis.url(), "typed");
    let pool = RedisPool::builder(redis.url())
        .queue("typed")
        .build()
        .unwrap();
    let f = dilly::func_of!(square);
    assert_eq!(pool.map(&f, 1..=4u64).unwrap(), [1, 4, 9, 16]);
    let t = Transformer;
    assert_eq!(
        pool.starmap(
            &dilly::bind!(t.process_data),
            zip([1, 2, 3, 4], [5, 6, 7, 8])
        )
        .unwrap(),
        [5, 12, 21, 32]
    );
    let ordered: Vec<u64> = pool
        .imap(&f, 0..50u64)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(ordered, (0..50u64).map(|x| x * x).collect::<Vec<_>>());
    let mut unordered: Vec<u64> = pool
        .imap_unordered(&f, 0..50u64)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    unordered.sort_unstable();
    assert_eq!(unordered, ordered);
    assert_eq!(pool.apply(&f, (12,)).unwrap(), 144);
    let handles: Vec<_> = (0..20u64)
        .map(|x| pool.apply_async(&f, (x,)).unwrap())
        .collect();
    let got: Vec<u64> = handles.into_iter().map(|h| h.get().unwrap()).collect();
    assert_eq!(got, (0..20u64).map(|x| x * x).collect::<Vec<_>>());
    let many = pool.map_async(&f, 0..1000u64).unwrap();
    assert_eq!(
        many.get().unwrap(),
        (0..1000u64).map(|x| x * x).collect::<Vec<_>>()
    );
}

#[test]
fn a_panic_is_that_task_s_error_and_the_rest_complete() {
    let redis = Redis::start();
    let _host = Host::start(&redis.url(), "panics");
    let pool = RedisPool::builder(redis.url())
        .queue("panics")
        .build()
        .unwrap();
    let out = exactly_once(
        &pool,
        &dilly::func_of!(fails_on_three),
        (0..10u64).map(|x| (x,)).collect(),
        3,
    );
    for (x, r) in out.into_iter().enumerate() {
        match r {
            Err(TaskError::Panicked { message, .. }) => {
                assert_eq!(x, 3);
                assert!(message.contains("three is not allowed"), "{message}");
            }
            Ok(v) => assert_eq!(v, x as u64),
            other => panic!("task {x}: {other:?}"),
        }
    }
    let err = pool
        .map(&dilly::func_of!(fails_on_three), 0..10u64)
        .unwrap_err();
    assert!(matches!(err, Error::Task { index: 3, .. }), "{err}");
}

#[test]
fn a_long_map_keeps_at_most_its_window_in_redis() {
    let redis = Redis::start();
    let _host = Host::start(&redis.url(), "window");
    let pool = RedisPool::builder(redis.url())
        .queue("window")
        .chunk_size(5)
        .window(2)
        .build()
        .unwrap();
    let f = dilly::func_of!(slow_square);
    let handle = pool.map_async(&f, 0..60u64).unwrap();
    // While the map runs, the task stream never holds more than two chunks.
    let mut con = redis.conn();
    let mut max_seen = 0;
    while !handle.ready() {
        let len: u64 = redis::cmd("XLEN")
            .arg("dilly:{window}:tasks")
            .query(&mut con)
            .unwrap();
        max_seen = max_seen.max(len);
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(
        handle.get().unwrap(),
        (0..60u64).map(|x| x * x).collect::<Vec<_>>()
    );
    assert!(max_seen <= 2, "{max_seen} chunks in Redis at once");
    assert!(max_seen >= 1);
}

#[test]
fn dropping_a_job_deletes_its_queued_chunks() {
    let redis = Redis::start();
    // No host yet: everything stays queued.
    let pool = RedisPool::builder(redis.url())
        .queue("cancel")
        .chunk_size(1)
        .window(4)
        .build()
        .unwrap();
    let f = dilly::func_of!(square);
    let handle = pool.map_async(&f, 0..10u64).unwrap();
    let mut con = redis.conn();
    let len = |con: &mut redis::Connection| -> u64 {
        redis::cmd("XLEN")
            .arg("dilly:{cancel}:tasks")
            .query(con)
            .unwrap()
    };
    assert_eq!(len(&mut con), 4);
    assert_eq!(pool.stats().unwrap().queued, 4);
    drop(handle);
    assert_eq!(len(&mut con), 0);
}

#[test]
fn close_join_and_terminate() {
    let redis = Redis::start();
    let _host = Host::start(&redis.url(), "lifecycle");
    let pool = RedisPool::builder(redis.url())
        .queue("lifecycle")
        .build()
        .unwrap();
    let f = dilly::func_of!(slow_square);
    assert!(matches!(pool.join(), Err(Error::NotClosed)));
    let pending = pool.map_async(&f, 0..8u64).unwrap();
    pool.close();
    assert!(matches!(pool.map(&f, [1u64]), Err(Error::Closed)));
    pool.join().unwrap();
    assert!(pending.ready());
    assert_eq!(
        pending.get().unwrap(),
        (0..8u64).map(|x| x * x).collect::<Vec<_>>()
    );

    // Terminate: with no host, nothing runs, and every task ends Terminated.
    let idle = RedisPool::builder(redis.url())
        .queue("nobody")
        .build()
        .unwrap();
    let stuck = idle.map_async(&f, 0..4u64).unwrap();
    idle.terminate();
    let err = stuck.get().unwrap_err();
    assert!(
        matches!(err.task_error(), Some(TaskError::Terminated)),
        "{err}"
    );
    idle.join().unwrap();
}

#[test]
fn stats_show_live_hosts_and_a_stopped_host_deregisters() {
    let redis = Redis::start();
    let mut host = Host::start(&redis.url(), "stats");
    let pool = RedisPool::builder(redis.url())
        .queue("stats")
        .build()
        .unwrap();
    assert_eq!(
        pool.map(&dilly::func_of!(square), 0..10u64).unwrap().len(),
        10
    );
    let stats = pool.stats().unwrap();
    assert_eq!(stats.hosts.len(), 1);
    let h = &stats.hosts[0];
    assert_eq!(h.pid, host.pid());
    assert_eq!(h.processes, 2);
    assert!(h.is_live(Duration::from_secs(10)));
    assert_eq!(h.registry, dilly::registry::fingerprint().to_string());
    assert_eq!(
        (stats.queued, stats.in_flight, stats.dead_letters),
        (0, 0, 0)
    );
    // The result stream the host wrote to carries a time to live.
    let mut con = redis.conn();
    let streams: Vec<String> = redis::cmd("KEYS")
        .arg("dilly:{stats}:results:*")
        .query(&mut con)
        .unwrap();
    assert_eq!(streams.len(), 1);
    let ttl: i64 = redis::cmd("PTTL").arg(&streams[0]).query(&mut con).unwrap();
    assert!(ttl > 0, "PTTL {ttl}");
    host.kill9();

    // A host that stops through its handle deregisters.
    let handle = dilly_redis::WorkerHost::builder(redis.url())
        .queue("stats")
        .workers(1)
        .spawn()
        .unwrap();
    let name = handle.name().to_owned();
    wait_for(Duration::from_secs(10), "registration", || {
        pool.stats().unwrap().hosts.iter().any(|h| h.name == name)
    });
    handle.stop().unwrap();
    assert!(!pool.stats().unwrap().hosts.iter().any(|h| h.name == name));
}

#[test]
fn a_wrong_password_is_a_clear_error_at_build() {
    let redis = Redis::start_with_password("s3cret");
    let wrong = format!("redis://:wrong@127.0.0.1:{}", redis.port);
    let err = RedisPool::builder(&wrong)
        .queue("auth")
        .build()
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, dilly_redis::Error::Redis { .. }), "{err:?}");
    assert!(text.contains("password"), "{text}");
    assert!(!text.contains("wrong@"), "the password leaked: {text}");
    let none = format!("redis://127.0.0.1:{}", redis.port);
    assert!(RedisPool::builder(&none).queue("auth").build().is_err());
    // The right one works end to end.
    let _host = Host::start(&redis.url(), "auth");
    let pool = RedisPool::builder(redis.url())
        .queue("auth")
        .build()
        .unwrap();
    assert_eq!(pool.apply(&dilly::func_of!(square), (9,)).unwrap(), 81);
    // An ACL user and its password, from the URL.
    let _: () = redis::cmd("ACL")
        .arg(&["SETUSER", "dilly", "on", ">userpw", "~*", "&*", "+@all"])
        .query(&mut redis.conn())
        .unwrap();
    let user = format!("redis://dilly:userpw@127.0.0.1:{}", redis.port);
    let pool = RedisPool::builder(&user).queue("auth").build().unwrap();
    assert_eq!(pool.apply(&dilly::func_of!(square), (5,)).unwrap(), 25);
    let wrong_user = format!("redis://dilly:nope@127.0.0.1:{}", redis.port);
    let err = RedisPool::builder(&wrong_user)
        .queue("auth")
        .build()
        .unwrap_err();
    assert!(
        !err.to_string().contains("nope"),
        "the password leaked: {err}"
    );
}

#[test]
fn bad_options_are_refused() {
    assert!(matches!(
        RedisPool::builder("redis://127.0.0.1:1")
            .queue("a b")
            .build(),
        Err(dilly_redis::Error::Config(_))
    ));
    assert!(matches!(
        RedisPool::builder("nonsense://x").build(),
        Err(dilly_redis::Error::Url { .. })
    ));
}
