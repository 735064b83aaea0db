//! Dropping a `ForkServer` or `Fork` pool never stalls: several of the pool's
//! threads wait for the fork server's reports of their workers' ends at once, and
//! each must get its own, whichever thread read it.
//!
//! No harness: `main` runs on the only thread, so `StartMethod::Fork` pools can be
//! built again and again (each dropped pool leaves no thread behind, though the
//! kernel may list a just-joined one for a moment: building the next `Fork` pool
//! must wait that out, not refuse).

use std::time::{Duration, Instant};

use dilly_pool::{Executor, ProcessPool, StartMethod};

/// Pools built and dropped per start method: enough to meet a stall that hit
/// about one drop in fifty.
const ROUNDS: usize = 500;

/// The longest a drop may take: a drop takes about a millisecond, and a waiter
/// that sleeps through its report waits out a patience of two seconds. A hang
/// detector with a wide margin, not a timing test.
const BOUND: Duration = Duration::from_millis(1500);

#[dilly::func]
fn double(x: u64) -> u64 {
    x * 2
}

fn main() {
    let f = dilly::func_of!(double);
    for method in [StartMethod::ForkServer, StartMethod::Fork] {
        let mut slowest = Duration::ZERO;
        let mut total = Duration::ZERO;
        for round in 0..ROUNDS {
            let pool = ProcessPool::builder()
                .workers(2)
                .start_method(method)
                .build()
                .unwrap_or_else(|e| panic!("{method:?} pool {round}: {e}"));
            // Both workers ran a task, so both are waited for at the drop.
            assert_eq!(pool.map(&f, 0..4u64).unwrap(), [0, 2, 4, 6]);
            let started = Instant::now();
            drop(pool);
            let took = started.elapsed();
            assert!(
                took < BOUND,
                "{method:?}: dropping pool {round} took {took:?} (a waiter missed its report)"
            );
            slowest = slowest.max(took);
            total += took;
        }
        println!(
            "{method:?}: {ROUNDS} drops, mean {:?}, slowest {slowest:?}",
            total / ROUNDS as u32
        );
    }
}
