//! Running a function in this process: what the serial and thread executors do
//! for every task, and what a worker does for the tasks it is sent.

use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;

use dilly::{ErasedFunc, RawFunc};

use crate::error::{Error, Result, TaskError};

/// Looks a function up and prepares it in this process.
pub(crate) fn prepare(func: &RawFunc) -> Result<Arc<dyn ErasedFunc>> {
    func.prepare().map_err(|error| Error::Task {
        index: 0,
        error: TaskError::Rejected { error },
    })
}

/// Runs one task in this thread, catching a panic.
pub(crate) fn run_local(
    func: &dyn ErasedFunc,
    args: &[u8],
) -> std::result::Result<Vec<u8>, TaskError> {
    match panic::catch_unwind(AssertUnwindSafe(|| func.call_bytes(args))) {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(error @ dilly::Error::Encode { .. })) => Err(TaskError::Unserializable { error }),
        Ok(Err(error)) => Err(TaskError::Arguments { error }),
        Err(payload) => Err(TaskError::Panicked {
            message: panic_message(payload.as_ref()),
            location: None,
            backtrace: None,
        }),
    }
}

/// The message of a panic payload (`&str` or `String`; other payloads get a
/// placeholder).
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "Box<dyn Any>".to_owned()
    }
}
