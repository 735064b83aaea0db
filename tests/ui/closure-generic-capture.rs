fn scale<T: Clone + Into<u64> + Send + Sync + 'static>(t: T) -> dilly::Func<(u64,), u64> {
    dilly::closure!([t: T] move |x: u64| x * t.clone().into())
}

fn main() {
    let _ = scale(2u8);
}
