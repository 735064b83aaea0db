fn main() {
    let offset = 1u64;
    let _ = dilly::closure!([offset: u64] move |x: u64| {
        let offset = offset + 1;
        x + offset
    });
}
