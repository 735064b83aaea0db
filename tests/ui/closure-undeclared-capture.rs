fn main() {
    let offset = 1u64;
    let scale = 2u64;
    // The list makes the closure portable, so every capture must be in it.
    let _ = dilly::closure!([scale: u64] move |x: u64| x * scale + offset);
}
