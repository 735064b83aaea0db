use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Wrapper<T>(T);

#[dilly::methods]
impl<T> Wrapper<T> {
    fn get(&self) -> u64 {
        1
    }
}

fn main() {
    let w = Wrapper(1u8);
    let _ = dilly::bind!(w.get);
}
