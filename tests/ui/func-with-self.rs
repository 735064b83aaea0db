struct Counter;

impl Counter {
    #[dilly::func]
    fn count(&self) -> u64 {
        1
    }
}

fn main() {}
