//! `?` carries dilly's and dilly-pool's errors into dilly-redis's, so a program
//! whose `main` returns `dilly_redis::Error` needs no `map_err`. No Redis needed.

use dilly::Func;
use dilly_pool::{Executor, Serial};

#[dilly::func]
fn double(x: u64) -> u64 {
    x * 2
}

fn decode(bytes: &[u8]) -> Result<u64, dilly_redis::Error> {
    let f: Func<(u64,), u64> = dilly::from_bytes(bytes)?;
    Ok(f.call((21,)))
}

fn run_locally() -> Result<Vec<u64>, dilly_redis::Error> {
    let f = dilly::func_of!(double);
    Ok(Serial::new().map(&f, [1, 2])?)
}

#[test]
fn dilly_and_pool_errors_convert_with_the_question_mark() {
    let bytes = dilly::to_bytes(&dilly::func_of!(double)).unwrap();
    assert_eq!(decode(&bytes).unwrap(), 42);
    match decode(&[]) {
        Err(dilly_redis::Error::Pool(dilly_pool::Error::Dilly(dilly::Error::Truncated {
            ..
        }))) => {}
        other => panic!("expected Pool(Dilly(Truncated)), got {other:?}"),
    }
    assert_eq!(run_locally().unwrap(), [2, 4]);
    let err = dilly_redis::Error::from(dilly_pool::Error::Closed);
    assert_eq!(err.to_string(), dilly_pool::Error::Closed.to_string());
}
