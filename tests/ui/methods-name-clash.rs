use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Counter(u64);

#[dilly::methods]
impl Counter {
    #[dilly(name = "app::count")]
    fn get(&self) -> u64 {
        self.0
    }

    #[dilly(name = "app::count")]
    fn twice(&self) -> u64 {
        self.0 * 2
    }
}

fn main() {
    let c = Counter(1);
    let _ = dilly::bind!(c.get);
    let _ = dilly::bind!(c.twice);
}
