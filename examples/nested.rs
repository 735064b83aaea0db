//! Every kind of dilly function value in a few lines, with its payload size.
//!
//! `cargo run --example nested`

use dilly::{Func, Object, bind, closure, func_of};
use serde::{Deserialize, Serialize};

/// A free function.
#[dilly::func]
fn double(x: u64) -> u64 {
    x * 2
}

/// The seed example's class, as a Rust type with registered methods.
#[derive(Serialize, Deserialize)]
struct Transformer {
    factor: u64,
}

#[dilly::methods]
impl Transformer {
    fn process_data(&self, x: u64, y: u64) -> u64 {
        x * y * self.factor
    }
}

/// A registered type, sent type-erased.
#[derive(Debug, Serialize, Deserialize, dilly::Dilly)]
struct Point {
    x: i32,
    y: i32,
}

/// Sends `f` through bytes and back, and reports its size.
fn round_trip<A: 'static, R: 'static>(label: &str, f: &Func<A, R>) -> Func<A, R> {
    let bytes = dilly::to_bytes(f).expect("encode");
    let json = serde_json::to_string(f).expect("json");
    println!("{label:<14} {:>3} bytes  {json}", bytes.len());
    dilly::from_bytes(&bytes).expect("decode")
}

fn main() {
    // A nested function: Python's pickle refuses these ("Can't pickle local object").
    #[dilly::func]
    fn triple(x: u64) -> u64 {
        x * 3
    }

    let t = Transformer { factor: 1 };
    let offset = 10u64;
    let names = vec!["alpha".to_string(), "beta".into(), "gamma".into()];

    let free = round_trip("free fn", &func_of!(double));
    let nested = round_trip("nested fn", &func_of!(triple));
    let method = round_trip("bound method", &bind!(t.process_data));
    let lambda = round_trip(
        "closure",
        &closure!([offset: u64, names: Vec<String>] move |x: u64| x + offset + names.len() as u64),
    );

    let point: Box<dyn Object> = Box::new(Point { x: 3, y: 4 });
    let bytes = dilly::to_bytes(&point).expect("encode");
    println!(
        "{:<14} {:>3} bytes  {}",
        "object",
        bytes.len(),
        serde_json::to_string(&point).expect("json")
    );
    let point: Box<dyn Object> = dilly::from_bytes(&bytes).expect("decode");

    println!();
    println!("double(21)              = {}", free.call((21,)));
    println!("triple(14)              = {}", nested.call((14,)));
    println!("t.process_data(6, 7)    = {}", method.call((6, 7)));
    println!("x + offset + len(names) = {}", lambda.call((29,)));
    println!(
        "object                  = {:?}",
        point.downcast_ref::<Point>().expect("a Point")
    );
}
