fn main() {
    let _ = dilly::func_of!(|x: u64| x);
}
