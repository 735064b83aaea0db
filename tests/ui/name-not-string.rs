#[dilly::func(name = my_app::double)]
fn double(x: u64) -> u64 {
    x * 2
}

fn main() {}
