fn main() {
    let _ = dilly::closure!(|x: u64| x + 1, 2);
}
