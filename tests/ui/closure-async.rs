fn main() {
    let _ = dilly::closure!(async |x: u64| x + 1);
}
