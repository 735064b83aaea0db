use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Store(u64);

#[dilly::methods]
impl Store {
    fn convert<T: From<u64>>(&self) -> T {
        T::from(self.0)
    }
}

fn main() {
    let s = Store(1);
    let _ = dilly::bind!(s.convert);
}
