#[dilly::func]
struct Point {
    x: u64,
}

fn main() {
    let p = Point { x: 1 };
    let _ = p.x;
}
