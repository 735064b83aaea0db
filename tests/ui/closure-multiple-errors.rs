fn main() {
    let offset = 1u64;
    let f = dilly::closure!([offset: u64] |x, y: &str| x + y.len());
    let _ = f.call((1, "a"));
    let _ = offset;
}
