use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, dilly::Dilly)]
struct Scale {
    factor: u64,
}

impl dilly::Task for Scale {
    type Args = (u64,);
    type Output = u64;
    fn call(&self, (x,): (u64,)) -> u64 {
        x * self.factor
    }
}

fn main() {
    let _ = dilly::Func::from_task(Scale { factor: 3 });
}
