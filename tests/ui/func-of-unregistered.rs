fn plain(x: u64) -> u64 {
    x + 1
}

fn main() {
    let _ = dilly::func_of!(plain);
}
