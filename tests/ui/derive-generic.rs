use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, dilly::Dilly)]
struct Queue<T> {
    items: Vec<T>,
}

fn main() {
    let queue = Queue { items: vec![1u64] };
    let _: Box<dyn dilly::Object> = Box::new(queue);
}
