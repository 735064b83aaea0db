//! What the benchmark binaries share: where their reports go.

use std::path::PathBuf;

/// The cargo target directory (`CARGO_TARGET_DIR`, else three levels above the
/// bench binary, `target/release/deps/<bench>`).
fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.ancestors().nth(3).map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("target"))
}

/// Writes `json` to `<target>/dilly-bench/<file>` for `benches/compare.sh`, and says
/// where `what` went (or warns, without failing the bench, when it cannot).
pub(crate) fn write_report(file: &str, json: &str, what: &str) {
    let dir = target_dir().join("dilly-bench");
    let path = dir.join(file);
    match std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, json)) {
        Ok(()) => println!("{what} written to {}", path.display()),
        Err(err) => eprintln!("warning: cannot write {}: {err}", path.display()),
    }
}
