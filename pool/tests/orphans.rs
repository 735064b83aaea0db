//! Workers and the fork server die with the pool's process, whatever they are
//! doing: a parent killed with `kill -9` while its tasks run leaves no process
//! behind, with every start method.
//!
//! No harness: `main` runs on the only thread, so the helper role (re-executed
//! from here with [`PARENT`] set) can build a `StartMethod::Fork` pool.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use dilly_pool::{Executor, ProcessPool, StartMethod};

/// Set in the helper's environment: build a busy pool with this start method.
const PARENT: &str = "DILLY_POOL_TEST_ORPHAN_PARENT";

/// How long the descendants of the killed parent may take to go: a hang detector
/// (they go in milliseconds), never reached by a correct pool.
const PATIENCE: Duration = Duration::from_secs(30);

/// Busy forever: says which worker runs it, then sleeps (blocked in a system call).
#[dilly::func]
fn sleep_forever(tag: u64) -> u64 {
    println!("busy {tag} {}", std::process::id());
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

/// Busy forever: says which worker runs it, then spins on the CPU.
#[dilly::func]
fn spin_forever(tag: u64) -> u64 {
    println!("busy {tag} {}", std::process::id());
    let mut x = tag;
    loop {
        x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
    }
}

fn method(name: &str) -> StartMethod {
    match name {
        "spawn" => StartMethod::Spawn,
        "forkserver" => StartMethod::ForkServer,
        "fork" => StartMethod::Fork,
        other => panic!("unknown start method {other}"),
    }
}

/// The helper: a pool of two workers, both in a task that never ends (one asleep,
/// one spinning, in either order), and this process waiting to be killed.
fn parent(name: &str) -> ! {
    let pool = ProcessPool::builder()
        .workers(2)
        .start_method(method(name))
        .build()
        .expect("a pool");
    // Four tasks: a slot may queue a second task behind its first on the same
    // worker, so two would not always keep both workers busy.
    let handles: Vec<_> = (1..=4)
        .map(|tag| {
            if tag % 2 == 1 {
                pool.apply_async(&dilly::func_of!(sleep_forever), (tag,))
            } else {
                pool.apply_async(&dilly::func_of!(spin_forever), (tag,))
            }
            .unwrap()
        })
        .collect();
    println!("ready");
    std::thread::sleep(Duration::from_secs(3600));
    drop((handles, pool));
    unreachable!("the test kills this process long before")
}

/// A process as `/proc/<pid>/stat` shows it: parent, state and start time (which
/// tells a process from a later one that got its PID).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stat {
    ppid: u32,
    state: char,
    start: u64,
}

fn stat(pid: u32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name, in parentheses, may hold spaces: parse after its end.
    let rest = &text[text.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    Some(Stat {
        state: fields.first()?.chars().next()?,
        ppid: fields.get(1)?.parse().ok()?,
        start: fields.get(19)?.parse().ok()?,
    })
}

/// Every live process below `root`, by PID.
fn descendants(root: u32) -> HashMap<u32, Stat> {
    let all: Vec<(u32, Stat)> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| Some((pid, stat(pid)?)))
        .collect();
    let mut found = HashMap::new();
    let mut frontier = vec![root];
    while let Some(parent) = frontier.pop() {
        for (pid, s) in &all {
            if s.ppid == parent && s.state != 'Z' && found.insert(*pid, *s).is_none() {
                frontier.push(*pid);
            }
        }
    }
    found
}

/// Whether the process `pid` (as `was`) still runs: a zombie waiting for its new
/// parent to reap it, or a later process with its PID, does not.
fn alive(pid: u32, was: Stat) -> bool {
    stat(pid).is_some_and(|now| now.start == was.start && now.state != 'Z')
}

fn orphans_of_a_killed_parent_die(name: &str) {
    let mut helper = Command::new(std::env::current_exe().unwrap())
        .env(PARENT, name)
        .stdout(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(helper.stdout.take().unwrap()).lines();
    let mut busy = HashSet::new();
    let mut ready = false;
    while !(ready && busy.len() == 2) {
        let line = lines
            .next()
            .expect("the helper ended before its tasks ran")
            .unwrap();
        match line.split(' ').collect::<Vec<_>>()[..] {
            ["ready"] => ready = true,
            ["busy", _, pid] => {
                busy.insert(pid.parse::<u32>().unwrap());
            }
            _ => panic!("unexpected helper output {line:?}"),
        }
    }
    let tree = descendants(helper.id());
    for pid in &busy {
        assert!(
            tree.contains_key(pid),
            "worker {pid} is not below the helper"
        );
    }
    let expected = match name {
        "spawn" => 2,
        // The fork server and its two workers.
        _ => 3,
    };
    assert_eq!(
        tree.len(),
        expected,
        "{name}: the helper's processes: {tree:?}"
    );

    helper.kill().unwrap();
    let killed = Instant::now();
    helper.wait().unwrap();
    loop {
        let left: Vec<u32> = tree
            .iter()
            .filter(|(pid, was)| alive(**pid, **was))
            .map(|(pid, _)| *pid)
            .collect();
        if left.is_empty() {
            break;
        }
        if killed.elapsed() > PATIENCE {
            // Not left running (holding this test's output open) when it fails.
            for pid in &left {
                let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            }
            panic!("{name}: {left:?} still ran {PATIENCE:?} after their pool's process was killed");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    println!(
        "{name}: the pool's {} processes were gone {:?} after kill -9 of its process",
        tree.len(),
        killed.elapsed()
    );
    drop(lines);
}

#[dilly::func]
fn worker_pid(_x: u64) -> u32 {
    std::process::id()
}

/// Dying with the parent must not mean dying with the thread that happened to
/// start a process (which is what the kernel's parent-death signal tracks): a
/// pool built on a thread that then ended keeps its fork server and workers, and
/// so do workers started while a caller's thread ran its task.
fn processes_outlive_the_threads_that_started_them(name: &str) {
    let start_method = method(name);
    let pool = std::thread::spawn(move || {
        ProcessPool::builder()
            .workers(2)
            .start_method(start_method)
            .max_tasks_per_child(2)
            .build()
            .expect("a pool")
    })
    .join()
    .unwrap();
    let tree = descendants(std::process::id());
    let f = dilly::func_of!(worker_pid);
    // `apply` from threads that end right after: a worker retiring under one of
    // them has its successor started then.
    for round in 0..6u64 {
        let pool = &pool;
        let f = &f;
        std::thread::scope(|scope| {
            scope.spawn(move || pool.apply(f, (round,)).unwrap());
        });
    }
    std::thread::sleep(Duration::from_millis(200));
    // The workers the pool holds now run (a killed one would be a zombie until
    // the pool noticed), and serve.
    let now = descendants(std::process::id());
    for pid in pool.worker_pids() {
        let state = stat(pid).map(|s| s.state);
        assert!(
            state.is_some_and(|s| s != 'Z'),
            "{name}: worker {pid} ended ({state:?}) with the thread that started it"
        );
        assert!(now.contains_key(&pid) || name == "forkserver");
    }
    assert_eq!(pool.map(&f, 0..4u64).unwrap().len(), 4);
    if name == "forkserver" {
        let server = tree
            .iter()
            .find(|(_, s)| s.ppid == std::process::id())
            .map(|(pid, s)| (*pid, *s))
            .expect("the fork server");
        assert!(
            alive(server.0, server.1),
            "{name}: the fork server died with the thread that built the pool"
        );
    }
    println!("{name}: workers and server outlive the threads that started them");
}

fn main() {
    if let Ok(name) = std::env::var(PARENT) {
        parent(&name);
    }
    for name in ["spawn", "forkserver", "fork"] {
        orphans_of_a_killed_parent_die(name);
    }
    for name in ["spawn", "forkserver"] {
        processes_outlive_the_threads_that_started_them(name);
    }
    println!("orphans: passed");
}
