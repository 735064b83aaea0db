#[dilly::func]
fn greeting() -> &'static str {
    "hello"
}

fn main() {}
