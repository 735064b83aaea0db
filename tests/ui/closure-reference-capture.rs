fn main() {
    let name = "alpha";
    let _ = dilly::closure!([name: &str] move |x: u64| x + name.len() as u64);
}
