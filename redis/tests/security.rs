//! Tags: with a shared key, entries without a valid HMAC tag are refused before
//! decoding, counted and dead-lettered, and honest work finishes; same-build
//! function values need a key.

mod common;

use std::time::Duration;

use common::{Host, HostOpts, Redis, exactly_once, wait_for};
use dilly::RawFunc;
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

const KEY: &str = "a shared secret for the tests";

#[test]
fn forged_entries_are_refused_dead_lettered_and_honest_tasks_finish() {
    let redis = Redis::start();
    let url = redis.url();
    let opts = HostOpts {
        key: Some(KEY.to_owned()),
        ..HostOpts::default()
    };
    let _host = Host::with(&url, "signed", &opts);
    let pool = RedisPool::builder(&url)
        .queue("signed")
        .key(KEY)
        .build()
        .unwrap();
    let mut con = redis.conn();
    // An honest-looking message with a wrong tag, one with no tag, and garbage.
    let honest_shape = b"\x01T\x00\x00\x00\x00\x00\x00\x00\x00".to_vec();
    let forged: [(&[u8], Option<&[u8]>); 3] = [
        (&honest_shape, Some(&[0u8; 32])),
        (&honest_shape, None),
        (b"\xff\xff\xff\xff garbage", Some(b"short")),
    ];
    for (m, t) in forged {
        let mut cmd = redis::cmd("XADD");
        cmd.arg("dilly:{signed}:tasks").arg("*").arg("m").arg(m);
        if let Some(t) = t {
            cmd.arg("t").arg(t);
        }
        let _: String = cmd.query(&mut con).unwrap();
    }
    let out = exactly_once(
        &pool,
        &dilly::func_of!(square),
        (0..20u64).map(|x| (x,)).collect(),
        3,
    );
    let out: Vec<u64> = out.into_iter().map(Result::unwrap).collect();
    assert_eq!(out, (0..20u64).map(|x| x * x).collect::<Vec<_>>());
    wait_for(Duration::from_secs(10), "three refusals", || {
        pool.stats().unwrap().refused == 3
    });
    let dead = pool.dead_letters(10).unwrap();
    assert_eq!(dead.len(), 3, "{dead:?}");
    // Two runners take entries at once: the dead letters' order may vary.
    let wrong = dead
        .iter()
        .filter(|d| d.reason.contains("tag is wrong"))
        .count();
    let missing = dead
        .iter()
        .filter(|d| d.reason.contains("no HMAC tag"))
        .count();
    assert_eq!((wrong, missing), (2, 1), "{dead:?}");

    // A dead letter re-queued as it was is refused again.
    pool.requeue_dead_letter(&dead[0].id).unwrap();
    wait_for(Duration::from_secs(10), "a fourth refusal", || {
        pool.stats().unwrap().refused == 4
    });
    assert_eq!(pool.dead_letters(10).unwrap().len(), 3);
    assert!(matches!(
        pool.requeue_dead_letter("1-1"),
        Err(dilly_redis::Error::NoSuchDeadLetter { .. })
    ));
}

#[test]
fn a_forged_result_is_refused_and_the_real_one_delivered() {
    let redis = Redis::start();
    let url = redis.url();
    let pool = RedisPool::builder(&url)
        .queue("results")
        .key(KEY)
        .build()
        .unwrap();
    let mut con = redis.conn();
    let handle = pool.apply_async(&dilly::func_of!(square), (7,)).unwrap();
    let streams: Vec<String> = redis::cmd("KEYS")
        .arg("dilly:{results}:results:*")
        .query(&mut con)
        .unwrap_or_default();
    // The result stream may not exist yet: name it from the submitter key.
    let submitters: Vec<String> = redis::cmd("KEYS")
        .arg("dilly:{results}:submitter:*")
        .query(&mut con)
        .unwrap();
    assert_eq!(submitters.len(), 1);
    let results = streams
        .into_iter()
        .next()
        .unwrap_or_else(|| submitters[0].replace(":submitter:", ":results:"));
    // A result claiming task 0 is 0, with a wrong tag.
    let _: String = redis::cmd("XADD")
        .arg(&results)
        .arg("*")
        .arg("m")
        .arg(&b"\x01R\x00\x00\x00\x00\x00\x00\x00\x00"[..])
        .arg("t")
        .arg(&[7u8; 32][..])
        .query(&mut con)
        .unwrap();
    wait_for(Duration::from_secs(10), "the refusal", || {
        pool.stats().unwrap().refused == 1
    });
    assert!(!handle.ready());
    let opts = HostOpts {
        key: Some(KEY.to_owned()),
        ..HostOpts::default()
    };
    let _host = Host::with(&url, "results", &opts);
    assert_eq!(handle.get().unwrap(), 49);
}

#[test]
fn same_build_values_need_a_key() {
    let redis = Redis::start();
    let pool = RedisPool::builder(redis.url())
        .queue("samebuild")
        .build()
        .unwrap();
    let raw = RawFunc::SameBuild {
        build: dilly::same_build::this_build().unwrap(),
        offset: 0,
        state: Vec::new(),
    };
    let err = pool.open(&raw).map(|_| ()).unwrap_err();
    match err {
        Error::Task {
            error:
                TaskError::Rejected {
                    error: dilly::Error::SameBuildUnavailable { detail },
                },
            ..
        } => assert!(detail.contains("HMAC key"), "{detail}"),
        other => panic!("{other}"),
    }
    let keyed = RedisPool::builder(redis.url())
        .queue("samebuild")
        .key(KEY)
        .build()
        .unwrap();
    assert!(keyed.open(&raw).is_ok());
}

/// The live hosts' registrations in the queue's hash.
fn registered(redis: &Redis, queue: &str) -> usize {
    let n: usize = redis::cmd("HLEN")
        .arg(format!("dilly:{{{queue}}}:hosts"))
        .query(&mut redis.conn())
        .unwrap();
    n
}

#[test]
fn a_pool_whose_key_no_live_host_has_is_refused_at_build() {
    let redis = Redis::start();
    let url = redis.url();
    let opts = HostOpts {
        key: Some(KEY.to_owned()),
        processes: 1,
        ..HostOpts::default()
    };
    let _host = Host::with(&url, "keyed", &opts);
    wait_for(Duration::from_secs(60), "the host to register", || {
        registered(&redis, "keyed") == 1
    });
    for key in [Some("another secret"), None] {
        let mut builder = RedisPool::builder(&url).queue("keyed");
        if let Some(key) = key {
            builder = builder.key(key);
        }
        match builder.build() {
            Err(dilly_redis::Error::KeyMismatch { queue, pool, hosts }) => {
                assert_eq!(queue, "keyed");
                assert_eq!(pool == "none", key.is_none(), "{pool}");
                assert!(!hosts.contains(KEY), "{hosts}");
                let shown = dilly_redis::Error::KeyMismatch { queue, pool, hosts }.to_string();
                assert!(shown.contains("same key"), "{shown}");
            }
            other => panic!("key {key:?}: {other:?}"),
        }
    }
    let pool = RedisPool::builder(&url)
        .queue("keyed")
        .key(KEY)
        .build()
        .unwrap();
    let key_ids: Vec<_> = pool
        .stats()
        .unwrap()
        .hosts
        .into_iter()
        .map(|h| h.key_id)
        .collect();
    assert_eq!(key_ids.len(), 1);
    assert!(key_ids[0].as_ref().is_some_and(|id| id.len() == 16));
}

#[test]
fn tasks_refused_by_hosts_with_another_key_fail_typed_instead_of_hanging() {
    let redis = Redis::start();
    let url = redis.url();
    // Pool key, host key: another key; a key and none; none and a key.
    let cases = [
        ("other-key", Some(KEY), Some("another secret")),
        ("host-no-key", Some(KEY), None),
        ("pool-no-key", None, Some(KEY)),
    ];
    for (queue, pool_key, host_key) in cases {
        let mut builder = RedisPool::builder(&url).queue(queue);
        if let Some(key) = pool_key {
            builder = builder.key(key);
        }
        // No host yet: build() has nothing to compare with.
        let pool = builder.build().unwrap();
        let opts = HostOpts {
            key: host_key.map(str::to_owned),
            processes: 1,
            ..HostOpts::default()
        };
        let _host = Host::with(&url, queue, &opts);
        let out = exactly_once(
            &pool,
            &dilly::func_of!(square),
            (0..6u64).map(|x| (x,)).collect(),
            2,
        );
        for (i, r) in out.iter().enumerate() {
            match r {
                Err(TaskError::GivenUp { last_error, .. }) => {
                    assert!(
                        last_error.contains("different HMAC keys"),
                        "{queue}, task {i}: {last_error}"
                    );
                }
                other => panic!("{queue}, task {i}: {other:?}"),
            }
        }
        let stats = pool.stats().unwrap();
        assert_eq!((stats.refused, stats.dead_letters), (3, 3), "{queue}");
    }
}
