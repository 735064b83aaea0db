fn main() {
    let offset = 1u64;
    let _ = dilly::closure!([offset: _] move |x: u64| x + offset);
}
