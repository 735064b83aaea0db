use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Meters(u64);

#[dilly::methods]
impl std::fmt::Display for Meters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}m", self.0)
    }
}

fn main() {
    let m = Meters(1);
    let _ = dilly::bind!(m.fmt);
}
