fn main() {
    // With a capture list the closure is registered by name, which needs a signature.
    let _ = dilly::closure!([] |x| x + 1u64);
}
