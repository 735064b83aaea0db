use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Store(u64);

#[dilly::methods]
impl Store {
    #[dilly(rename = "get")]
    fn get(&self) -> u64 {
        self.0
    }
}

fn main() {
    let s = Store(1);
    let _ = dilly::bind!(s.get);
}
