fn main() {
    let f = || ();
    let _ = dilly::closure!([f: impl Fn()] move |x: u64| {
        f();
        x
    });
}
