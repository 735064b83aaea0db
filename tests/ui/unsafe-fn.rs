#[dilly::func]
unsafe fn poke(x: u64) -> u64 {
    x
}

fn main() {
    let _ = dilly::func_of!(poke);
}
