use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, dilly::Dilly)]
#[dilly(skip)]
struct Job(u64);

fn main() {}
