#[dilly::func]
fn identity<T>(x: T) -> T
where
    T: Clone,
{
    x
}

fn main() {
    let _ = dilly::func_of!(identity);
}
