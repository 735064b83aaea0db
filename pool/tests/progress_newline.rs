//! A finished progress bar ends its line: the program's next output starts on a
//! line of its own. The bar is drawn only on a terminal, so the test runs itself
//! again under `script(1)`, which gives the child a pseudo-terminal.

use std::process::Command;

use dilly_pool::{Executor, ProcessPool};

const CHILD: &str = "DILLY_TEST_PROGRESS_CHILD";
const MARK: &str = "after-the-map";

#[dilly::func]
fn double(x: u64) -> u64 {
    x * 2
}

#[test]
fn output_after_a_finished_bar_starts_a_new_line() {
    if std::env::var_os(CHILD).is_some() {
        let pool = ProcessPool::builder()
            .workers(2)
            .progress(true)
            .build()
            .unwrap();
        assert_eq!(
            pool.map(&dilly::func_of!(double), 0..100u64).unwrap()[99],
            198
        );
        println!("{MARK}");
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let child = format!(
        "{} --exact output_after_a_finished_bar_starts_a_new_line --nocapture --test-threads=1",
        exe.display()
    );
    let out = Command::new("script")
        .args(["-qec", &child, "/dev/null"])
        .env(CHILD, "1")
        .env("TERM", "xterm")
        .output()
        .expect("script(1) from util-linux runs this test's child on a terminal");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "child failed: {text}");
    assert!(
        text.contains("tasks"),
        "no progress bar was drawn: {text:?}"
    );
    let at = text
        .find(MARK)
        .unwrap_or_else(|| panic!("no mark in {text:?}"));
    let before: String = text[..at]
        .chars()
        .rev()
        .take(60)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    assert!(
        before.ends_with('\n'),
        "the line after the bar continues it: {before:?} then {MARK:?}"
    );
}
