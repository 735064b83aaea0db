use dilly_pool::{Executor, Serial};

#[dilly::func]
fn add(x: u64, y: u64) -> u64 {
    x + y
}

fn main() {
    let pool = Serial::new();
    let _ = pool.map(&dilly::func_of!(add), [1, 2, 3]);
}
