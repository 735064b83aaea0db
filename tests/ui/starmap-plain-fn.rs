use std::iter::zip;

use dilly_pool::{Executor, Serial};

fn add(x: u64, y: u64) -> u64 {
    x + y
}

fn main() {
    let pool = Serial::new();
    let _ = pool.starmap(&add, zip([1, 2], [3, 4]));
}
