use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, dilly::Dilly)]
#[dilly = "task"]
struct Job(u64);

fn main() {}
