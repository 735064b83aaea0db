//! The seed: pathos's
//! `ProcessingPool().map(t.process_data, [1, 2, 3, 4], [5, 6, 7, 8])`, which prints
//! `[5, 12, 21, 32]`, with a bound method running in worker processes — plus a
//! closure and a nested function through the same pool.
//!
//! Run with `cargo run --release --example seed`.

use std::iter::zip;

use dilly_pool::{Executor, ProcessPool};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Transformer {
    name: String,
}

#[dilly::methods]
impl Transformer {
    fn process_data(&self, x: u64, y: u64) -> u64 {
        x * y
    }
}

fn main() -> Result<(), dilly_pool::Error> {
    // Workers are this program started again; `main` runs only here.
    let pool = ProcessPool::new()?;

    // A closure: its captured `offset` travels with it.
    let offset = 100u64;
    let add_offset = dilly::closure!([offset: u64] move |x: u64| x + offset);
    println!("closure:     {:?}", pool.map(&add_offset, [1u64, 2, 3])?);

    // A nested function, registered where it is defined.
    #[dilly::func]
    fn square(x: u64) -> u64 {
        x * x
    }
    println!(
        "nested fn:   {:?}",
        pool.map(&dilly::func_of!(square), [1u64, 2, 3])?
    );

    // The seed case: a bound method over two argument lists.
    let t = Transformer {
        name: "t".to_owned(),
    };
    let out = pool.starmap(
        &dilly::bind!(t.process_data),
        zip([1u64, 2, 3, 4], [5u64, 6, 7, 8]),
    )?;
    println!("bound method ({}.process_data):", t.name);
    println!("{out:?}");
    Ok(())
}
