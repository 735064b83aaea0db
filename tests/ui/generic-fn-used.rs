#[dilly::func]
fn identity<T>(x: T) -> T {
    x
}

fn main() {
    let f = dilly::func_of!(identity);
    println!("{}", f.call((1,)));
}
