//! `?` carries dilly's errors into dilly-pool's: a program whose `main` returns
//! `dilly_pool::Error` can encode and decode function values with `?`.

use dilly::Func;
use dilly_pool::Error;

#[dilly::func]
fn double(x: u64) -> u64 {
    x * 2
}

fn send_and_receive(bytes: Option<&[u8]>) -> Result<u64, Error> {
    let sent = dilly::to_bytes(&dilly::func_of!(double))?;
    let f: Func<(u64,), u64> = dilly::from_bytes(bytes.unwrap_or(&sent))?;
    Ok(f.call((21,)))
}

#[test]
fn dilly_errors_convert_with_the_question_mark() {
    assert_eq!(send_and_receive(None).unwrap(), 42);
    match send_and_receive(Some(&[])) {
        Err(Error::Dilly(inner @ dilly::Error::Truncated { .. })) => {
            // The message is dilly's own, not wrapped in another prefix.
            let err = Error::Dilly(inner.clone());
            assert_eq!(err.to_string(), inner.to_string());
        }
        other => panic!("expected Error::Dilly(Truncated), got {other:?}"),
    }
}
