#[dilly::func]
async fn fetch(x: u64) -> u64 {
    x
}

fn main() {
    let f = dilly::func_of!(fetch);
    println!("{}", f.call((1,)));
}
