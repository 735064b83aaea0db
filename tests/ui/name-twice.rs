#[dilly::func(name = "app::double", name = "app::twice")]
fn double(x: u64) -> u64 {
    x * 2
}

fn main() {}
