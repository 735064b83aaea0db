fn main() {
    let pair = (1u64, 2u64);
    let _ = dilly::bind!(pair.0);
}
