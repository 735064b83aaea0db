#[dilly::func]
unsafe extern "C" fn sum(count: u32, _args: ...) -> u32 {
    count
}

fn main() {}
