#[derive(dilly::Dilly)]
union Bits {
    int: u64,
    float: f64,
}

fn main() {}
