//! Prepared functions: the [`ErasedFunc`] implementations behind every registered
//! function, holding decoded state and the typed code that runs on it.

use std::any::Any;
use std::marker::PhantomData;
use std::sync::{Arc, OnceLock};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::codec;
use crate::entry::{ErasedFunc, FuncTypes, Output};
use crate::error::Result;

/// Decodes `S` and pairs it with code that borrows it.
pub fn prepare_shared<S, A, R, F>(encoded: &[u8], call: F) -> Result<Arc<dyn ErasedFunc>>
where
    S: Serialize + DeserializeOwned + Send + Sync + 'static,
    A: DeserializeOwned + 'static,
    R: Output,
    F: Fn(&S, A) -> R + Send + Sync + 'static,
{
    let state: S = codec::decode(encoded, "state")?;
    Ok(Arc::new(Shared {
        state,
        // Encoded again only if the value is sent on: receiving allocates nothing
        // for the bytes.
        encoded: OnceLock::new(),
        call,
        types: PhantomData,
    }))
}

/// Checks that `S` decodes and pairs the bytes with code that consumes a fresh copy
/// per call.
pub fn prepare_owned<S, A, R, F>(state: &[u8], call: F) -> Result<Arc<dyn ErasedFunc>>
where
    S: DeserializeOwned + 'static,
    A: DeserializeOwned + 'static,
    R: Output,
    F: Fn(S, A) -> R + Send + Sync + 'static,
{
    let _: S = codec::decode(state, "state")?;
    Ok(Arc::new(Owned {
        state: state.to_vec(),
        call,
        types: PhantomData,
    }))
}

/// The body of [`ErasedFunc::call_any`]: takes the `Option<A>` behind `args`, runs
/// `call` and stores its result in the `Option<R>` behind `out`; false if either has
/// another type.
fn call_typed<A: 'static, R: 'static>(
    args: &mut dyn Any,
    out: &mut dyn Any,
    call: impl FnOnce(A) -> R,
) -> bool {
    match (
        args.downcast_mut::<Option<A>>(),
        out.downcast_mut::<Option<R>>(),
    ) {
        (Some(args), Some(out)) => match args.take() {
            Some(args) => {
                *out = Some(call(args));
                true
            }
            None => false,
        },
        _ => false,
    }
}

/// Prepared state for functions whose code borrows the state (`&self` methods,
/// closures, free functions with `S = ()`).
pub(crate) struct Shared<S, A, R, F> {
    pub(crate) state: S,
    /// The encoding of `state`: set when the value is made locally, computed on
    /// first use when it was received.
    pub(crate) encoded: OnceLock<Vec<u8>>,
    pub(crate) call: F,
    pub(crate) types: PhantomData<fn(A) -> R>,
}

impl<S, A, R, F> ErasedFunc for Shared<S, A, R, F>
where
    S: Serialize + DeserializeOwned + Send + Sync + 'static,
    A: DeserializeOwned + 'static,
    R: Output,
    F: Fn(&S, A) -> R + Send + Sync + 'static,
{
    fn call_bytes(&self, args: &[u8]) -> Result<Vec<u8>> {
        let args: A = codec::decode(args, "arguments")?;
        codec::encode_typed(&(self.call)(&self.state, args), "result")
    }

    fn call_into(&self, args: &[u8], out: &mut Vec<u8>) -> Result<()> {
        let args: A = codec::decode(args, "arguments")?;
        codec::encode_into_typed(&(self.call)(&self.state, args), "result", out)
    }

    fn state(&self) -> &[u8] {
        self.encoded
            .get_or_init(|| match codec::encode_typed(&self.state, "state") {
                Ok(bytes) => bytes,
                // The state was decoded from bytes; only a `Serialize` impl that fails on
                // a value its `Deserialize` produced gets here.
                Err(err) => panic!("dilly: a received state does not encode again: {err}"),
            })
    }

    fn types(&self) -> FuncTypes {
        FuncTypes::of::<A, R>()
    }

    fn call_any(&self, args: &mut dyn Any, out: &mut dyn Any) -> bool {
        call_typed(args, out, |args| (self.call)(&self.state, args))
    }
}

/// Prepared state for methods that take the receiver by value or `&mut`: each call
/// gets a fresh copy decoded from the state bytes, as a worker process would.
pub(crate) struct Owned<S, A, R, F> {
    pub(crate) state: Vec<u8>,
    pub(crate) call: F,
    pub(crate) types: PhantomData<fn(S, A) -> R>,
}

impl<S, A, R, F> Owned<S, A, R, F>
where
    S: DeserializeOwned,
{
    fn fresh_state(&self) -> S {
        match codec::decode(&self.state, "state") {
            Ok(state) => state,
            // The bytes decoded once when this value was prepared; decoding is
            // deterministic, so this only fires on a non-deterministic Deserialize impl.
            Err(err) => panic!("dilly: state decoded once but not twice: {err}"),
        }
    }
}

impl<S, A, R, F> ErasedFunc for Owned<S, A, R, F>
where
    S: DeserializeOwned + 'static,
    A: DeserializeOwned + 'static,
    R: Output,
    F: Fn(S, A) -> R + Send + Sync + 'static,
{
    fn call_bytes(&self, args: &[u8]) -> Result<Vec<u8>> {
        let args: A = codec::decode(args, "arguments")?;
        codec::encode_typed(&(self.call)(self.fresh_state(), args), "result")
    }

    fn call_into(&self, args: &[u8], out: &mut Vec<u8>) -> Result<()> {
        let args: A = codec::decode(args, "arguments")?;
        codec::encode_into_typed(&(self.call)(self.fresh_state(), args), "result", out)
    }

    fn state(&self) -> &[u8] {
        &self.state
    }

    fn types(&self) -> FuncTypes {
        FuncTypes::of::<A, R>()
    }

    fn call_any(&self, args: &mut dyn Any, out: &mut dyn Any) -> bool {
        call_typed(args, out, |args| (self.call)(self.fresh_state(), args))
    }
}
