//! Peak memory of the calling process for a large `map`, `imap` or many
//! outstanding `apply_async` handles, from `VmHWM` in `/proc/self/status`.
//!
//! ```text
//! cargo run --release -p dilly-pool --example peak_rss -- map 10000000
//! cargo run --release -p dilly-pool --example peak_rss -- imap 10000000
//! cargo run --release -p dilly-pool --example peak_rss -- apply_async 200000
//! ```
//!
//! The input is a `Vec<u64>` held for the whole run, so "input + output" is what a
//! program that has its data and keeps its results needs at the least; the report
//! gives the peak as a multiple of it.

use std::time::Instant;

use dilly_pool::{Executor, ProcessPool};

#[dilly::func]
fn next(x: u64) -> u64 {
    x.wrapping_add(1)
}

/// A `kB` field of `/proc/self/status`, in bytes.
fn status_bytes(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|kib| kib << 10)
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"))
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / f64::from(1 << 20)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "map".to_owned());
    let n: u64 = args
        .next()
        .map(|v| v.replace('_', "").parse().expect("a count"))
        .unwrap_or(10_000_000);
    let pool = ProcessPool::builder().workers(2).build().expect("a pool");
    let f = dilly::func_of!(next);
    // Warm the pool up (its first task loads the function), then measure from here.
    assert_eq!(pool.map(&f, [1u64]).expect("a warm-up task"), [2]);
    let input: Vec<u64> = (0..n).collect();
    let before = status_bytes("VmRSS:");
    let started = Instant::now();
    let output: Vec<u64> = match mode.as_str() {
        "map" => pool.map(&f, input.iter().copied()).expect("the map"),
        "imap" => pool
            .imap(&f, input.iter().copied())
            .expect("the imap")
            .collect::<Result<_, _>>()
            .expect("every task"),
        "apply_async" => {
            let handles: Vec<_> = input
                .iter()
                .map(|&x| pool.apply_async(&f, (x,)).expect("a submission"))
                .collect();
            handles
                .into_iter()
                .map(|h| h.get().expect("every task"))
                .collect()
        }
        other => panic!("unknown mode {other}: map, imap or apply_async"),
    };
    let elapsed = started.elapsed();
    assert_eq!(output.len() as u64, n);
    assert!(output.iter().zip(&input).all(|(o, i)| *o == i + 1));
    let peak = status_bytes("VmHWM:");
    let data = (input.len() + output.len()) as u64 * 8;
    println!(
        "{mode} of {n} u64: {:.2} s; peak RSS {:.1} MiB, {:.1} MiB before the call; \
         input + output {:.1} MiB; peak / (input + output) = {:.2}; {:.0} bytes per item \
         above the memory before the call",
        elapsed.as_secs_f64(),
        mib(peak),
        mib(before),
        mib(data),
        peak as f64 / data as f64,
        peak.saturating_sub(before) as f64 / n as f64
    );
}
