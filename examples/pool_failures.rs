//! Failures are values: a panic, a crash and a timeout each fail one task, and the
//! pool keeps serving. Run with `cargo run --example pool_failures`.

use std::time::Duration;

use dilly_pool::{Executor, ProcessPool, TaskError};

#[dilly::func]
fn risky(x: u64) -> u64 {
    match x {
        2 => panic!("no twos allowed"),
        4 => std::process::abort(),
        6 => loop {
            std::thread::sleep(Duration::from_secs(1));
        },
        _ => x * 100,
    }
}

fn main() -> Result<(), dilly_pool::Error> {
    let pool = ProcessPool::builder()
        .workers(2)
        .task_timeout(Duration::from_millis(500))
        .build()?;
    for (x, result) in pool.imap(&dilly::func_of!(risky), 0..8u64)?.enumerate() {
        match result {
            Ok(v) => println!("task {x}: {v}"),
            Err(e @ TaskError::Panicked { .. }) => println!("task {x}: panicked — {e}"),
            Err(e @ TaskError::WorkerDied { .. }) => println!("task {x}: crashed — {e}"),
            Err(e @ TaskError::TimedOut { .. }) => println!("task {x}: timed out — {e}"),
            Err(e) => println!("task {x}: {e}"),
        }
    }
    // Still serving, with replaced workers.
    println!("{:?}", pool.map(&dilly::func_of!(risky), [1u64, 3, 5])?);
    Ok(())
}
