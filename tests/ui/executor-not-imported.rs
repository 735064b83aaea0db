use dilly_pool::Serial;

#[dilly::func]
fn double(x: u64) -> u64 {
    x * 2
}

fn main() {
    let pool = Serial::new();
    let _ = pool.map(&dilly::func_of!(double), [1, 2, 3]);
}
