//! Prints one line from `main`, then runs tasks in worker processes. Workers are
//! this program started again; `main` must not run in them, so the line appears
//! exactly once (checked by `tests/main_once.rs`).
//!
//! With `--via-deleted-copy` it copies itself to a temporary file, runs the copy,
//! and the copy deletes its own file before starting the pool: workers must still
//! start (they are the running build, not whatever is on disk).

use dilly_pool::{Executor, ProcessPool};

#[dilly::func]
fn pid(_x: u64) -> u32 {
    std::process::id()
}

const COPY: &str = "DILLY_POOL_EXAMPLE_DELETE_SELF";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::args().any(|a| a == "--via-deleted-copy") {
        let copy =
            std::env::temp_dir().join(format!("dilly-pool-main-once-{}", std::process::id()));
        std::fs::copy(std::env::current_exe()?, &copy)?;
        let status = std::process::Command::new(&copy)
            .env(COPY, &copy)
            .status()?;
        let _ = std::fs::remove_file(&copy);
        std::process::exit(status.code().unwrap_or(1));
    }
    if let Some(path) = std::env::var_os(COPY) {
        std::fs::remove_file(path)?;
        println!("running from a deleted executable");
    }
    println!("main started in {}", std::process::id());
    let pool = ProcessPool::builder()
        .workers(2)
        .max_tasks_per_child(2)
        .build()?;
    let pids = pool.map(&dilly::func_of!(pid), 0..8u64)?;
    assert!(pids.iter().all(|&p| p != std::process::id()));
    let mut distinct = pids.clone();
    distinct.sort_unstable();
    distinct.dedup();
    println!("tasks ran in {} worker processes", distinct.len());
    Ok(())
}
