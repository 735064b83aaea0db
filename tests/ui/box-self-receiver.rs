use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Store(u64);

#[dilly::methods]
impl Store {
    fn take(self: Box<Self>) -> u64 {
        self.0
    }
}

fn main() {
    let s = Store(1);
    let f = dilly::bind!(s.take);
    println!("{}", f.call(()));
}
