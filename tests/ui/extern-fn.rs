#[dilly::func]
extern "C" fn add_one(x: u64) -> u64 {
    x + 1
}

fn main() {}
