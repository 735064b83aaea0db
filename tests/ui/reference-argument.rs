#[dilly::func]
fn length(s: &str) -> usize {
    s.len()
}

fn main() {
    let _ = dilly::func_of!(length);
}
