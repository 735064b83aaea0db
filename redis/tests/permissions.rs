//! A host or a pool whose Redis ACL user lacks a command it needs fails at
//! start, naming every missing command; a host whose permissions are taken
//! away while it runs says so through its handle.

mod common;

use std::time::Duration;

use common::{Redis, wait_for};
use dilly_pool::Executor;
use dilly_redis::{Error, RedisPool, WorkerHost};

#[test]
fn host_entry() {
    common::host_entry();
}

#[dilly::func]
fn square(x: u64) -> u64 {
    x * x
}

/// Every command a worker host runs.
const HOST: &[&str] = &[
    "XGROUP",
    "XADD",
    "XDEL",
    "XRANGE",
    "XPENDING",
    "PEXPIRE",
    "DEL",
    "HGETALL",
    "HINCRBY",
    "EXISTS",
    "EXEC",
    "MULTI",
    "XREADGROUP",
    "XCLAIM",
    "XACK",
    "HSET",
    "HDEL",
    "PTTL",
    "WATCH",
    "UNWATCH",
];

/// Every command a pool runs.
const POOL: &[&str] = &[
    "XGROUP", "XADD", "XDEL", "XRANGE", "XPENDING", "PEXPIRE", "DEL", "HGETALL", "HINCRBY", "EXEC",
    "MULTI", "SET", "XREAD", "XTRIM", "XLEN",
];

fn acl(redis: &Redis, user: &str, rules: &[&str]) -> String {
    let mut cmd = redis::cmd("ACL");
    cmd.arg("SETUSER")
        .arg(user)
        .arg("reset")
        .arg("on")
        .arg(">pw");
    for r in rules {
        cmd.arg(*r);
    }
    let _: () = cmd.query(&mut redis.conn()).unwrap();
    format!("redis://{user}:pw@127.0.0.1:{}", redis.port)
}

fn host(url: &str) -> dilly_redis::Result<dilly_redis::HostHandle> {
    WorkerHost::builder(url)
        .queue("acl")
        .workers(1)
        .reconnect_for(Duration::from_millis(500))
        .spawn()
}

#[test]
fn a_host_lacking_any_command_it_needs_fails_at_spawn_naming_it() {
    let redis = Redis::start();
    for &missing in HOST {
        let minus = format!("-{}", missing.to_lowercase());
        let url = acl(&redis, "lacking", &["~*", "&*", "+@all", &minus]);
        match host(&url) {
            Err(Error::Permissions { missing: named, .. }) => {
                assert_eq!(named, [missing], "a user without {missing}")
            }
            other => panic!("a user without {missing}: {other:?}"),
        }
    }
    // Two missing at once are both named, and the message says how to grant them.
    let url = acl(
        &redis,
        "lacking",
        &["~*", "&*", "+@all", "-xreadgroup", "-xack"],
    );
    let err = host(&url).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("XREADGROUP, XACK") && text.contains("+xreadgroup +xack"),
        "{text}"
    );
    assert!(!text.contains(":pw@"), "the password leaked: {text}");
}

#[test]
fn a_pool_lacking_any_command_it_needs_fails_at_build_naming_it() {
    let redis = Redis::start();
    for &missing in POOL {
        let minus = format!("-{}", missing.to_lowercase());
        let url = acl(&redis, "lacking", &["~*", "&*", "+@all", &minus]);
        match RedisPool::builder(&url).queue("acl").build() {
            Err(Error::Permissions { missing: named, .. }) => {
                assert_eq!(named, [missing], "a user without {missing}")
            }
            other => panic!("a user without {missing}: {other:?}"),
        }
    }
}

#[test]
fn users_with_exactly_the_listed_commands_serve_and_submit() {
    let redis = Redis::start();
    let grant = |list: &[&str]| -> Vec<String> {
        let mut rules = vec!["~dilly:{acl}:*".to_owned(), "+ping".to_owned()];
        rules.extend(list.iter().map(|c| format!("+{}", c.to_lowercase())));
        rules
    };
    let host_rules = grant(HOST);
    let host_url = acl(
        &redis,
        "host",
        &host_rules.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let pool_rules = grant(POOL);
    let pool_url = acl(
        &redis,
        "pool",
        &pool_rules.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let handle = host(&host_url).unwrap();
    let pool = RedisPool::builder(&pool_url).queue("acl").build().unwrap();
    assert_eq!(
        pool.map(&dilly::func_of!(square), 0..6u64).unwrap(),
        [0, 1, 4, 9, 16, 25]
    );
    assert_eq!(handle.last_error(), None);
    handle.stop().unwrap();
}

#[test]
fn a_host_whose_permissions_go_away_reports_through_its_handle() {
    let redis = Redis::start();
    let url = acl(&redis, "fickle", &["~*", "&*", "+@all"]);
    let handle = host(&url).unwrap();
    assert_eq!(handle.last_error(), None);
    acl(&redis, "fickle", &["~*", "&*", "+@all", "-xreadgroup"]);
    wait_for(Duration::from_secs(30), "the runner's error", || {
        handle.last_error().is_some()
    });
    let (error, count) = handle.last_error().unwrap();
    assert!(
        error.contains("NOPERM") || error.contains("permission"),
        "{error}"
    );
    assert!(count >= 1);
}

/// A host process whose runner errors repeat says so once on standard error,
/// without a `tracing` subscriber.
#[test]
fn a_host_process_prints_its_repeating_error_once_to_stderr() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    let redis = Redis::start();
    let url = acl(&redis, "fickle", &["~*", "&*", "+@all"]);
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "host_entry",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env("DILLY_REDIS_TEST_HOST", "1")
        .env("T_URL", &url)
        .env("T_QUEUE", "acl")
        .env("T_PROCESSES", "1")
        .env("T_VISIBILITY_MS", "1000")
        .env("T_MAX_DELIVERIES", "3")
        .env_remove("DILLY_REDIS_KEY")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let registered = || {
        let n: usize = redis::cmd("HLEN")
            .arg("dilly:{acl}:hosts")
            .query(&mut redis.conn())
            .unwrap();
        n == 1
    };
    wait_for(Duration::from_secs(60), "the host to register", registered);
    acl(&redis, "fickle", &["~*", "&*", "+@all", "-xreadgroup"]);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let line = BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .find(|l| l.contains("dilly-redis worker host"));
        let _ = tx.send(line);
    });
    // A hang detector, not a timing check.
    let line = rx.recv_timeout(Duration::from_secs(120));
    let _ = child.kill();
    let _ = child.wait();
    let line = line
        .expect("a line on standard error")
        .expect("a line on standard error");
    assert!(
        line.contains("queue `acl`") && line.contains("repeating") && line.contains("xreadgroup"),
        "{line}"
    );
}
