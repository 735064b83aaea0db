fn main() {
    let _ = dilly::bind!();
}
