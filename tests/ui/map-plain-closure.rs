use dilly_pool::{Executor, Serial};

fn main() {
    let pool = Serial::new();
    let _ = pool.map(&|x: u64| x + 1, [1, 2, 3]);
}
