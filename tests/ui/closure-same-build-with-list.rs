fn main() {
    let offset = 1u64;
    let _ = dilly::closure!(same_build [offset: u64] move |x: u64| x + offset);
}
