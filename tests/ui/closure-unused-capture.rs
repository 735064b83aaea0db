fn main() {
    let offset = 1u64;
    let f: dilly::Func<(u64,), u64> = dilly::closure!([offset: u64] move |x: u64| x + 1);
    assert_eq!(f.call((1,)), 2);
    let _ = offset;
}
