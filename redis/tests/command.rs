//! The `dilly-redis` command, run as a real process against a real
//! redis-server: a queue's state with its hosts and throughput, dead letters
//! listed, shown, re-queued and purged, `--json` for scripts and `--watch`.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{Host, Redis, wait_for};
use dilly_pool::Executor;
use dilly_redis::RedisPool;
use serde_json::Value;

#[test]
fn host_entry() {
    common::host_entry();
}

#[dilly::func]
fn square(x: u64) -> u64 {
    x * x
}

fn command(url: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dilly-redis"));
    cmd.args(args)
        .env("DILLY_REDIS_URL", url)
        .env("DILLY_REDIS_QUEUE", "ops")
        .env_remove("DILLY_REDIS_KEY");
    cmd
}

fn run(url: &str, args: &[&str]) -> Output {
    command(url, args).output().unwrap()
}

/// Runs the command, asserts that it succeeded, returns its standard output.
fn ok(url: &str, args: &[&str]) -> String {
    let out = run(url, args);
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "dilly-redis {args:?}: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn json(url: &str, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    serde_json::from_str(&ok(url, &all)).unwrap()
}

/// Adds an entry no host can decode: hosts dead-letter it as malformed.
fn poison(redis: &Redis) -> String {
    redis::cmd("XADD")
        .arg("dilly:{ops}:tasks")
        .arg("*")
        .arg("m")
        .arg("not a task message")
        .query(&mut redis.conn())
        .unwrap()
}

#[test]
fn info_shows_counters_hosts_and_throughput() {
    let redis = Redis::start();
    let url = redis.url();
    let empty = json(&url, &["info"]);
    assert_eq!(empty["queue"], "ops");
    assert_eq!(empty["hosts"].as_array().unwrap().len(), 0);
    let _host = Host::start(&url, "ops");
    let pool = RedisPool::builder(&url).queue("ops").build().unwrap();
    assert_eq!(
        pool.map(&dilly::func_of!(square), 0..30u64).unwrap().len(),
        30
    );
    // The host reports its work with its next heartbeat.
    wait_for(Duration::from_secs(30), "the host's count", || {
        json(&url, &[])["tasks_last_minute"] == 30
    });
    let info = json(&url, &[]);
    let host = &info["hosts"][0];
    assert_eq!(host["live"], true);
    assert_eq!(host["processes"], 2);
    assert_eq!(host["tasks_done"], 30);
    assert_eq!(host["key_id"], "none");
    assert_eq!(
        host["build"],
        dilly::same_build::this_build().unwrap().to_string()
    );
    assert_eq!(
        (info["queued"].as_u64(), info["in_flight"].as_u64()),
        (Some(0), Some(0))
    );
    let text = ok(&url, &[]);
    assert!(text.contains("queue `ops` at redis://127.0.0.1:"), "{text}");
    assert!(text.contains("30 tasks in the last minute"), "{text}");
    assert!(text.contains("1 live, 0 silent"), "{text}");
    assert!(
        text.lines().all(|l| l.chars().count() <= 80),
        "a line wider than a terminal:\n{text}"
    );
}

#[test]
fn dead_letters_are_listed_shown_requeued_and_purged() {
    let redis = Redis::start();
    let url = redis.url();
    let _host = Host::start(&url, "ops");
    let entry = poison(&redis);
    wait_for(Duration::from_secs(30), "the dead letter", || {
        json(&url, &["dead"]).as_array().unwrap().len() == 1
    });
    let list = json(&url, &["dead", "list"]);
    let letter = &list[0];
    assert_eq!(letter["entry"], entry.as_str());
    assert!(
        letter["reason"]
            .as_str()
            .unwrap()
            .contains("does not decode")
    );
    let id = letter["id"].as_str().unwrap().to_owned();
    let text = ok(&url, &["dead"]);
    assert!(text.contains(&id), "{text}");
    assert!(text.lines().all(|l| l.chars().count() <= 80), "{text}");
    let shown = json(&url, &["dead", "show", &id]);
    assert_eq!(shown["tag_ok"], true);
    assert!(shown["malformed"].as_str().is_some(), "{shown}");
    let text = ok(&url, &["dead", "show", &id]);
    assert!(text.contains(&format!("task entry   {entry}")), "{text}");
    // Re-queued, the host refuses it again: a new dead letter for a new entry.
    let requeued = json(&url, &["dead", "requeue", &id]);
    assert_eq!(requeued["count"], 1);
    let new_entry = requeued["letters"][0]["new_entry"]
        .as_str()
        .unwrap()
        .to_owned();
    wait_for(
        Duration::from_secs(30),
        "the re-queued entry's dead letter",
        || {
            let list = json(&url, &["dead"]);
            list.as_array().unwrap().len() == 1 && list[0]["entry"] == new_entry.as_str()
        },
    );
    // An unknown ID is an error, with exit status 1.
    let missing = run(&url, &["dead", "purge", "1-1"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no dead letter with entry ID 1-1"));
    poison(&redis);
    wait_for(Duration::from_secs(30), "a second dead letter", || {
        json(&url, &["dead"]).as_array().unwrap().len() == 2
    });
    let purged = ok(&url, &["dead", "purge", "--all"]);
    assert!(purged.contains("purged 2 dead letters"), "{purged}");
    assert_eq!(json(&url, &["dead"]).as_array().unwrap().len(), 0);
    assert_eq!(json(&url, &[])["dead_letters"], 0);
}

#[test]
fn watch_prints_the_state_again_until_interrupted() {
    let redis = Redis::start();
    let mut child = command(&redis.url(), &["--watch", "--interval", "0.2", "--json"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    for _ in 0..3 {
        let line = lines.next().unwrap().unwrap();
        let state: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(state["queue"], "ops");
    }
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn usage_errors_exit_with_status_2_and_help_with_0() {
    let redis = Redis::start();
    let url = redis.url();
    for args in [
        &["nonsense"][..],
        &["--count"],
        &["dead", "purge"],
        &["dead", "--watch"],
    ] {
        let out = run(&url, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("usage: dilly-redis"));
    }
    assert!(ok(&url, &["--help"]).contains("dead requeue"));
    // A Redis that is not there is an error naming it, with status 1.
    let out = run("redis://127.0.0.1:1", &["info"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("127.0.0.1:1"));
}
