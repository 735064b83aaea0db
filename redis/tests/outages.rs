//! Nothing waits forever: Redis killed for good fails every outstanding task of
//! every job, chunks still waiting in the submitter included, with a typed
//! error; a Redis restart that lost the stream data completes the job from the
//! chunks the submitter holds (0 lost, 0 duplicated); a chunk that finishes after
//! its submitter cleaned up does not bring its result stream back.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{Host, Redis, exactly_once, wait_for};
use dilly_pool::{Error, Executor, TaskError};
use dilly_redis::RedisPool;

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
    std::thread::sleep(Duration::from_millis(20));
    x * x
}

#[dilly::func]
fn two_seconds(x: u64) -> u64 {
    std::thread::sleep(Duration::from_secs(2));
    x
}

/// Whether `outcome` is the typed error of a lost Redis, naming its URL: lost
/// while the task was outstanding, or when its chunk was to be added.
fn lost_redis(outcome: &TaskError, url: &str) -> bool {
    matches!(outcome, TaskError::WorkerStart { reason }
        if (reason.contains("lost the connection to Redis") || reason.contains("cannot queue the task in Redis"))
            && reason.contains(url))
}

/// A pool with a window of 4 chunks of 2 tasks, no host serving: Redis is
/// killed with jobs of 1, 3 and 10 windows outstanding, submitted through
/// every typed method; each fails every task with a typed error.
#[test]
fn redis_killed_for_good_fails_every_outstanding_task_whatever_the_window() {
    let mut redis = Redis::start();
    let url = redis.url();
    let pool = RedisPool::builder(&url)
        .queue("gone")
        .window(4)
        .chunk_size(2)
        .reconnect_for(Duration::from_secs(1))
        .build()
        .unwrap();
    let f = dilly::func_of!(square);
    // 8 tasks = 1 window, 24 = 3 windows, 80 = 10 windows.
    let small = pool.map_async(&f, 0..8u64).unwrap();
    let middle = pool.imap(&f, 0..24u64).unwrap();
    let large = pool.starmap_async(&f, (0..80u64).map(|x| (x,))).unwrap();
    let single = pool.apply_async(&f, (7,)).unwrap();
    // The jobs submitted at once keep their windows in Redis (4 chunks each,
    // and the apply's 1); the rest of each waits in this process.
    let windows = 4 + 4 + 1;
    wait_for(Duration::from_secs(10), "the windows in Redis", || {
        pool.stats().unwrap().queued >= windows
    });
    redis.kill();
    let started = AtomicBool::new(false);
    std::thread::scope(|s| {
        // A blocking map submitted after Redis went away fails too.
        let blocking = s.spawn(|| {
            started.store(true, Ordering::SeqCst);
            pool.map(&f, 0..40u64)
        });
        wait_for(Duration::from_secs(10), "the blocking map to start", || {
            started.load(Ordering::SeqCst)
        });
        match small.get() {
            Err(Error::Task { error, .. }) => assert!(lost_redis(&error, &url), "{error}"),
            other => panic!("the 1-window job: {other:?}"),
        }
        let outcomes: Vec<Result<u64, TaskError>> = middle.collect();
        assert_eq!(outcomes.len(), 24, "every task of the 3-window job reports");
        for (i, o) in outcomes.iter().enumerate() {
            match o {
                Err(e) => assert!(lost_redis(e, &url), "task {i}: {e}"),
                Ok(v) => panic!("task {i} of a job no host served succeeded: {v}"),
            }
        }
        match large.get() {
            Err(Error::Task { error, .. }) => assert!(lost_redis(&error, &url), "{error}"),
            other => panic!("the 10-window job: {other:?}"),
        }
        match single.get() {
            Err(Error::Task { error, .. }) => assert!(lost_redis(&error, &url), "{error}"),
            other => panic!("the apply: {other:?}"),
        }
        assert!(
            blocking.join().unwrap().is_err(),
            "a map after Redis went away"
        );
    });
    // The other typed methods, after Redis went away.
    match pool.apply(&f, (3,)) {
        Err(Error::Task { error, .. }) => assert!(lost_redis(&error, &url), "{error}"),
        other => panic!("apply: {other:?}"),
    }
    let unordered: Vec<Result<u64, TaskError>> =
        pool.imap_unordered(&f, 0..10u64).unwrap().collect();
    assert_eq!(unordered.len(), 10);
    for o in &unordered {
        assert!(matches!(o, Err(e) if lost_redis(e, &url)), "{o:?}");
    }
}

/// Redis restarted without persistence in the middle of a map: the task
/// stream, the consumer group, the result stream and the heartbeat key are
/// gone. The pool notices that its chunks' entries vanished and adds them
/// again; every task's outcome arrives exactly once.
#[test]
fn a_restart_without_persistence_mid_map_loses_and_duplicates_nothing() {
    let mut redis = Redis::start();
    let url = redis.url();
    let _a = Host::start(&url, "amnesia");
    let _b = Host::start(&url, "amnesia");
    let pool = RedisPool::builder(&url)
        .queue("amnesia")
        .window(8)
        .build()
        .unwrap();
    let n = 600u64;
    let started = AtomicBool::new(false);
    let out = std::thread::scope(|s| {
        let run = s.spawn(|| {
            started.store(true, Ordering::SeqCst);
            exactly_once(
                &pool,
                &dilly::func_of!(slow_square),
                (0..n).map(|x| (x,)).collect(),
                5,
            )
        });
        wait_for(Duration::from_secs(10), "the map to start", || {
            started.load(Ordering::SeqCst)
        });
        // Some chunks are done, others in Redis or in the hosts' hands.
        wait_for(Duration::from_secs(60), "the first results", || {
            pool.stats().unwrap().hosts.iter().any(|h| h.tasks_done > 0)
        });
        redis.restart(Duration::from_millis(300));
        run.join().unwrap()
    });
    let values: Vec<u64> = out.into_iter().map(Result::unwrap).collect();
    assert_eq!(values, (0..n).map(|x| x * x).collect::<Vec<_>>());
}

/// Entries deleted from the task stream behind the pool's back (an operator's
/// `XTRIM` or `DEL`) are added again from the chunks the pool holds.
#[test]
fn entries_deleted_from_the_task_stream_are_added_again() {
    let redis = Redis::start();
    let url = redis.url();
    let pool = RedisPool::builder(&url)
        .queue("trimmed")
        .window(4)
        .chunk_size(1)
        .build()
        .unwrap();
    let handle = pool.map_async(&dilly::func_of!(square), 0..6u64).unwrap();
    wait_for(Duration::from_secs(10), "the window in Redis", || {
        pool.stats().unwrap().queued == 4
    });
    let mut con = redis.conn();
    let _: () = redis::cmd("DEL")
        .arg("dilly:{trimmed}:tasks")
        .query(&mut con)
        .unwrap();
    // The pool adds its 4 chunks again; a host started now runs them.
    wait_for(
        Duration::from_secs(30),
        "the chunks to be added again",
        || {
            let n: u64 = redis::cmd("XLEN")
                .arg("dilly:{trimmed}:tasks")
                .query(&mut con)
                .unwrap();
            n == 4
        },
    );
    let _host = Host::start(&url, "trimmed");
    assert_eq!(handle.get().unwrap(), [0, 1, 4, 9, 16, 25]);
}

/// A chunk whose entry keeps vanishing (deleted each time it is added again)
/// fails after the fifth time it was added again, with a typed error that
/// names the cause.
#[test]
fn a_chunk_whose_entry_keeps_vanishing_fails_naming_the_cause() {
    let redis = Redis::start();
    let pool = RedisPool::builder(redis.url())
        .queue("vanishing")
        .build()
        .unwrap();
    let handle = pool.apply_async(&dilly::func_of!(square), (2,)).unwrap();
    let mut con = redis.conn();
    let mut deleted = 0;
    wait_for(Duration::from_secs(120), "the chunk to fail", || {
        let n: u64 = redis::cmd("XLEN")
            .arg("dilly:{vanishing}:tasks")
            .query(&mut con)
            .unwrap();
        if n > 0 {
            let _: () = redis::cmd("DEL")
                .arg("dilly:{vanishing}:tasks")
                .query(&mut con)
                .unwrap();
            deleted += 1;
        }
        handle.ready()
    });
    match handle.get() {
        Err(Error::Task {
            error: TaskError::WorkerStart { reason },
            ..
        }) => assert!(
            reason.contains("vanished") && reason.contains("6 times") && reason.contains("AOF"),
            "{reason}"
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(deleted, 6, "added once and again five times");
}

/// A chunk still running when its submitter is dropped writes no outcomes
/// afterwards: the deleted result stream does not come back.
#[test]
fn a_chunk_finishing_after_its_submitter_cleaned_up_leaves_no_result_stream() {
    let redis = Redis::start();
    let url = redis.url();
    let _host = Host::start(&url, "late");
    let pool = RedisPool::builder(&url).queue("late").build().unwrap();
    let handle = pool
        .apply_async(&dilly::func_of!(two_seconds), (1,))
        .unwrap();
    wait_for(Duration::from_secs(60), "a host to take the chunk", || {
        pool.stats().unwrap().in_flight == 1
    });
    drop(handle);
    drop(pool);
    let mut con = redis.conn();
    let results = |con: &mut redis::Connection| -> Vec<String> {
        redis::cmd("KEYS")
            .arg("dilly:{late}:results:*")
            .query(con)
            .unwrap()
    };
    assert!(results(&mut con).is_empty(), "the pool deletes its stream");
    // The host finishes the chunk, finds its submitter gone, and counts the
    // chunk as skipped instead of writing its outcome.
    wait_for(
        Duration::from_secs(60),
        "the host to finish the chunk",
        || {
            let skipped: Option<u64> = redis::cmd("HGET")
                .arg("dilly:{late}:stats")
                .arg("skipped")
                .query(&mut con)
                .unwrap();
            skipped == Some(1)
        },
    );
    assert_eq!(results(&mut con), Vec::<String>::new());
}
