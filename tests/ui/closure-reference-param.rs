fn main() {
    let _ = dilly::closure!(|s: &str| s.len());
}
