fn main() {
    let _ = dilly::closure!([offset u64] |x: u64| x + 1);
}
