//! In a binary (here an example), workers never run the program's `main` — also
//! when the executable's file was deleted after the program started.

use std::process::Command;

fn run_example(args: &[&str]) -> String {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut cmd = Command::new(cargo);
    cmd.args([
        "run",
        "--quiet",
        "-p",
        "dilly-pool",
        "--example",
        "main_once",
    ]);
    if !cfg!(debug_assertions) {
        cmd.arg("--release");
    }
    cmd.arg("--").args(args);
    let out = cmd.output().expect("cargo runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.matches("main started").count(), 1, "{stdout}");
    let workers: usize = stdout
        .lines()
        .find_map(|l| l.strip_prefix("tasks ran in "))
        .and_then(|l| l.split(' ').next())
        .and_then(|n| n.parse().ok())
        .expect("a summary line");
    // 8 tasks, at most 2 per worker: at least 4 processes served them.
    assert!(workers >= 4, "{stdout}");
    stdout
}

#[test]
fn main_runs_once_in_a_binary() {
    run_example(&[]);
}

#[test]
fn workers_start_from_a_deleted_executable() {
    let stdout = run_example(&["--via-deleted-copy"]);
    assert!(
        stdout.contains("running from a deleted executable"),
        "{stdout}"
    );
}
