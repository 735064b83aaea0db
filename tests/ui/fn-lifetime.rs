#[dilly::func]
fn first<'a>(x: Vec<u64>) -> u64 {
    x[0]
}

fn main() {}
