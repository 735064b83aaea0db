use std::rc::Rc;

fn main() {
    let shared = Rc::new(5u64);
    let _ = dilly::closure!([shared: Rc<u64>] move |x: u64| x + *shared);
}
