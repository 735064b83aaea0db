#[dilly::func]
fn double(x: u64) -> u64 {
    x * 2
}

fn main() {
    let _ = dilly::func_of!(double::<u64>);
}
