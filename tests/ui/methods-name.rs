use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Counter(u64);

#[dilly::methods(name = "app::Counter")]
impl Counter {
    fn get(&self) -> u64 {
        self.0
    }
}

fn main() {
    let c = Counter(1);
    let _ = dilly::bind!(c.get);
}
