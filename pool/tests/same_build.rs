//! Same-build closures — no capture types written, closures of generic functions —
//! run in pool workers, which are this very executable started again.

use std::ops::Mul;

use dilly::{Func, SameBuild, closure};
use dilly_pool::{Executor, ProcessPool, StartMethod};
use serde::Serialize;
use serde::de::DeserializeOwned;

fn scale_by<T>(factor: T) -> Func<(T,), T, SameBuild>
where
    T: Serialize + DeserializeOwned + Mul<Output = T> + Copy + Send + Sync + 'static,
{
    closure!(move |x: T| x * factor)
}

#[test]
fn a_closure_with_an_inferred_capture_runs_in_workers() {
    let pool = ProcessPool::builder().workers(2).build().unwrap();
    let factor = 3; // its type, u64, is only inferred from the use below
    let f = closure!(move |x: u64| x * factor);
    assert!(!f.is_portable());
    assert_eq!(pool.map(&f, 1..=4).unwrap(), [3, 6, 9, 12]);
    let pids = pool.worker_pids();
    assert!(!pids.contains(&std::process::id()));
}

#[test]
fn closures_of_a_generic_function_run_for_two_types() {
    for method in [StartMethod::Spawn, StartMethod::ForkServer] {
        let pool = ProcessPool::builder()
            .workers(2)
            .start_method(method)
            .build()
            .unwrap();
        assert_eq!(pool.map(&scale_by(2u32), [1, 2, 3]).unwrap(), [2, 4, 6]);
        assert_eq!(
            pool.map(&scale_by(0.5f64), [1.0, 3.0]).unwrap(),
            [0.5, 1.5],
            "{method:?}"
        );
    }
}

#[test]
fn captured_collections_travel_to_the_workers() {
    let pool = ProcessPool::builder().workers(2).build().unwrap();
    let words = vec!["alpha".to_string(), "beta".to_string()];
    let sep = String::from(", ");
    let f: Func<(usize,), String, SameBuild> =
        closure!(move |n| format!("{}{sep}{n}", words.join(&sep)));
    assert_eq!(
        pool.map(&f, [1, 2]).unwrap(),
        ["alpha, beta, 1", "alpha, beta, 2"]
    );
}

#[test]
fn a_pool_running_another_build_refuses_same_build_values_at_submit_time() {
    // A copy of this test binary whose build-id note differs: another build with
    // the same registry, so its workers start and serve portable values.
    let exe = std::fs::read("/proc/self/exe").unwrap();
    let id = dilly::same_build::this_build().unwrap();
    let at = exe
        .windows(16)
        .position(|w| w == id.0)
        .expect("the build-id note is in the file");
    let mut other = exe.clone();
    other[at] ^= 0xff;
    let dir = std::env::temp_dir().join(format!("dilly-pool-other-build-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let program = dir.join("worker");
    std::fs::write(&program, &other).unwrap();
    std::fs::set_permissions(
        &program,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();

    // Another test's process start may still hold a copy of the descriptor that
    // wrote the file (forked before the write closed it, until its `exec`); the
    // kernel refuses to execute a file open for writing until then.
    let mut attempts = 0;
    let pool = loop {
        match ProcessPool::builder().workers(1).program(&program).build() {
            Err(dilly_pool::Error::WorkerStart { reason })
                if reason.contains("os error 26") && attempts < 100 =>
            {
                attempts += 1;
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            other => break other.unwrap(),
        }
    };
    let k = 1u64;
    let portable: Func<(u64,), u64> = closure!([k: u64] move |x: u64| x + k);
    assert_eq!(pool.map(&portable, [1, 2]).unwrap(), [2, 3]);

    let same_build = closure!(move |x: u64| x + k);
    match pool.map(&same_build, [1, 2]) {
        Err(dilly_pool::Error::NotSameBuild { found, .. }) => assert_eq!(found, id),
        other => panic!("expected NotSameBuild, got {other:?}"),
    }
    drop(pool);
    let _ = std::fs::remove_dir_all(&dir);
}
