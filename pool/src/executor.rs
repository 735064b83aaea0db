//! [`Executor`]: the typed API, by the names of Python's `multiprocessing.Pool`,
//! written once over the [backend seam](crate::backend).

use dilly::{Func, Mode, RawFunc};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::backend::{Items, Job, Shape};
use crate::error::{Error, Result};
use crate::handle::AsyncResult;
use crate::imap::Imap;
use crate::map;

/// A function value an [`Executor`] can run: a [`Func`] (of any arity and mode),
/// passed by reference. Plain Rust closures and `fn` items are not: make them
/// values with `dilly::closure!` or `#[dilly::func]` and `dilly::func_of!`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a dilly function value, so it cannot be sent to a worker",
    label = "expected `&dilly::Func<Args, R>`",
    note = "a closure becomes a value with `dilly::closure!([capture: Type] move |x: T| ...)`",
    note = "a `fn` becomes one with `#[dilly::func]` on it and `&dilly::func_of!(name)` here"
)]
pub trait FuncValue: sealed::Sealed {
    /// The argument tuple.
    type Args;
    /// The result.
    type Output;
    /// [`dilly::Portable`] or [`dilly::SameBuild`].
    type Mode: Mode;
    /// The value itself.
    fn as_func(&self) -> &Func<Self::Args, Self::Output, Self::Mode>;
}

impl<A, R, M: Mode> FuncValue for Func<A, R, M> {
    type Args = A;
    type Output = R;
    type Mode = M;
    fn as_func(&self) -> &Func<A, R, M> {
        self
    }
}

/// A function value of one argument, `Func<(T,), R>`: what
/// [`map`](Executor::map), [`imap`](Executor::imap),
/// [`imap_unordered`](Executor::imap_unordered) and
/// [`map_async`](Executor::map_async) call once per item. A function of several
/// arguments goes to [`starmap`](Executor::starmap) and its kin, with tuples.
#[diagnostic::on_unimplemented(
    message = "`map` calls its function with one argument per item, and `{Self}` is not a dilly function of one argument",
    label = "expected `&dilly::Func<(T,), R>`",
    note = "a function of several arguments: call `starmap` (`istarmap`, `starmap_async`) with argument tuples, e.g. `pool.starmap(&f, std::iter::zip(xs, ys))`",
    note = "a closure becomes a value with `dilly::closure!([capture: Type] move |x: T| ...)`; a `fn` with `#[dilly::func]` and `&dilly::func_of!(name)`"
)]
pub trait UnaryFunc: sealed::Sealed {
    /// The one argument.
    type Arg;
    /// The result.
    type Output;
    /// [`dilly::Portable`] or [`dilly::SameBuild`].
    type Mode: Mode;
    /// The value itself.
    fn as_func(&self) -> &Func<(Self::Arg,), Self::Output, Self::Mode>;
}

impl<T, R, M: Mode> UnaryFunc for Func<(T,), R, M> {
    type Arg = T;
    type Output = R;
    type Mode = M;
    fn as_func(&self) -> &Func<(T,), R, M> {
        self
    }
}

mod sealed {
    /// Only [`dilly::Func`] values are function values.
    pub trait Sealed {}
    impl<A, R, M: dilly::Mode> Sealed for dilly::Func<A, R, M> {}
}

/// What [`ProcessPool`](crate::ProcessPool), [`ThreadPool`](crate::ThreadPool) and
/// [`Serial`](crate::Serial) have in common — and what a remote backend implements:
/// open a [`Job`] for a function. The typed methods, by the names of Python's
/// `multiprocessing.Pool`, are provided on top.
///
/// Functions are [`Func`] values: `Func<(T,), R>` for [`map`](Executor::map),
/// any `Func<A, R>` for [`starmap`](Executor::starmap) and
/// [`apply`](Executor::apply).
pub trait Executor: Send + Sync {
    /// Starts a job for `func`.
    fn open(&self, func: &RawFunc) -> Result<Box<dyn Job>>;

    /// Worker count, chunk size and progress settings.
    fn shape(&self) -> Shape;

    /// Calls `func` on every item, in parallel, and returns the results in input
    /// order; the first failed task (lowest index) is the error, after all tasks
    /// have finished. See [`imap`](Executor::imap) to keep partial results.
    fn map<F, I>(&self, func: &F, items: I) -> Result<Vec<F::Output>>
    where
        Self: Sized,
        F: UnaryFunc,
        F::Arg: Serialize + 'static,
        F::Output: DeserializeOwned + 'static,
        I: IntoIterator<Item = F::Arg>,
    {
        self.starmap(func.as_func(), items.into_iter().map(|x| (x,)))
    }

    /// Calls `func` with each argument tuple — Python's `starmap`. Several
    /// iterables are zipped with `std::iter::zip`:
    /// `pool.starmap(&f, zip([1, 2], [3, 4]))` calls `f(1, 3)` and `f(2, 4)`.
    fn starmap<F, I>(&self, func: &F, args: I) -> Result<Vec<F::Output>>
    where
        Self: Sized,
        F: FuncValue,
        F::Args: Serialize + 'static,
        F::Output: DeserializeOwned + 'static,
        I: IntoIterator<Item = F::Args>,
    {
        map::map(
            self.shape(),
            |raw| self.open(raw),
            func.as_func(),
            args.into_iter(),
        )
    }

    /// Like [`map`](Executor::map), but an iterator that yields each result in
    /// input order as soon as it (and every earlier one) is done, one `Result` per
    /// item. The input is consumed lazily, a few chunks ahead of the results
    /// (more while tiny tasks come back fast: [`Imap`]).
    fn imap<'a, F, I>(&'a self, func: &F, items: I) -> Result<Imap<'a, F::Output>>
    where
        Self: Sized,
        F: UnaryFunc,
        F::Arg: Serialize + 'static,
        F::Output: DeserializeOwned + 'static,
        I: IntoIterator<Item = F::Arg>,
        I::IntoIter: 'a,
    {
        self.istarmap(func.as_func(), items.into_iter().map(|x| (x,)))
    }

    /// Like [`imap`](Executor::imap), but yields results in completion order
    /// ([`Imap::indexed`] adds each one's input position).
    fn imap_unordered<'a, F, I>(&'a self, func: &F, items: I) -> Result<Imap<'a, F::Output>>
    where
        Self: Sized,
        F: UnaryFunc,
        F::Arg: Serialize + 'static,
        F::Output: DeserializeOwned + 'static,
        I: IntoIterator<Item = F::Arg>,
        I::IntoIter: 'a,
    {
        Imap::new(
            self.shape(),
            |raw| self.open(raw),
            func.as_func(),
            items.into_iter().map(|x| (x,)),
            false,
        )
    }

    /// [`imap`](Executor::imap) over argument tuples.
    fn istarmap<'a, F, I>(&'a self, func: &F, args: I) -> Result<Imap<'a, F::Output>>
    where
        Self: Sized,
        F: FuncValue,
        F::Args: Serialize + 'static,
        F::Output: DeserializeOwned + 'static,
        I: IntoIterator<Item = F::Args>,
        I::IntoIter: 'a,
    {
        Imap::new(
            self.shape(),
            |raw| self.open(raw),
            func.as_func(),
            args.into_iter(),
            true,
        )
    }

    /// Like [`map`](Executor::map), but returns at once (once every argument is
    /// encoded and queued) with a handle to the results — Python's `map_async`.
    /// [`AsyncResult::get`] gives what `map` would have; dropping the handle
    /// cancels the tasks that have not started.
    ///
    /// ```
    /// use dilly_pool::{Executor, ProcessPool};
    ///
    /// #[dilly::func]
    /// fn square(x: u64) -> u64 {
    ///     x * x
    /// }
    ///
    /// let pool = ProcessPool::new()?;
    /// let squares = pool.map_async(&dilly::func_of!(square), 1..=4u64)?;
    /// // ... other work while the workers run ...
    /// assert_eq!(squares.get()?, [1, 4, 9, 16]);
    /// # Ok::<(), dilly_pool::Error>(())
    /// ```
    fn map_async<F, I>(&self, func: &F, items: I) -> Result<AsyncResult<Vec<F::Output>>>
    where
        Self: Sized,
        F: UnaryFunc,
        F::Arg: Serialize + 'static,
        F::Output: DeserializeOwned + Send + 'static,
        I: IntoIterator<Item = F::Arg>,
    {
        self.starmap_async(func.as_func(), items.into_iter().map(|x| (x,)))
    }

    /// [`map_async`](Executor::map_async) over argument tuples — Python's
    /// `starmap_async`.
    fn starmap_async<F, I>(&self, func: &F, args: I) -> Result<AsyncResult<Vec<F::Output>>>
    where
        Self: Sized,
        F: FuncValue,
        F::Args: Serialize + 'static,
        F::Output: DeserializeOwned + Send + 'static,
        I: IntoIterator<Item = F::Args>,
    {
        let func = func.as_func();
        let submitted = map::submit(self.shape(), |raw| self.open(raw), func, args.into_iter())?;
        Ok(AsyncResult::many(
            submitted,
            func.clone(),
            self.shape().progress,
        ))
    }

    /// This executor with `chunk_size` items per chunk for the calls made through
    /// the returned view — Python's `map(f, xs, chunksize=c)` without a second
    /// pool. Every method of [`Executor`] works on the view; the executor's own
    /// setting is untouched. A `chunk_size` of 0 counts as 1.
    ///
    /// ```
    /// use dilly_pool::{Executor, ProcessPool};
    ///
    /// #[dilly::func]
    /// fn double(x: u64) -> u64 {
    ///     x * 2
    /// }
    ///
    /// let pool = ProcessPool::builder().workers(2).build()?;
    /// let f = dilly::func_of!(double);
    /// // Tasks of very different lengths: one per chunk.
    /// let out = pool.with_chunk_size(1).map(&f, 0..10)?;
    /// assert_eq!(out[9], 18);
    /// // Tiny tasks: large chunks.
    /// let out = pool.with_chunk_size(500).map(&f, 0..10_000)?;
    /// assert_eq!(out[9_999], 19_998);
    /// # Ok::<(), dilly_pool::Error>(())
    /// ```
    fn with_chunk_size(&self, chunk_size: usize) -> WithChunkSize<'_, Self>
    where
        Self: Sized,
    {
        WithChunkSize {
            inner: self,
            chunk_size: chunk_size.max(1),
        }
    }

    /// Calls `func(args)` in a worker and waits for the result.
    fn apply<F>(&self, func: &F, args: F::Args) -> Result<F::Output>
    where
        Self: Sized,
        F: FuncValue,
        F::Args: Serialize + 'static,
        F::Output: DeserializeOwned + 'static,
    {
        self.apply_async(func, args)?.get()
    }

    /// Calls `func(args)` in a worker and returns at once with a handle to the
    /// result.
    fn apply_async<F>(&self, func: &F, args: F::Args) -> Result<AsyncResult<F::Output>>
    where
        Self: Sized,
        F: FuncValue,
        F::Args: Serialize + 'static,
        F::Output: DeserializeOwned + 'static,
    {
        let func = func.as_func();
        let items = encode_single_call(func, &args)?;
        let mut job = self.open(&func.raw())?;
        job.submit(0, items)?;
        Ok(AsyncResult::one(job, func.clone()))
    }
}

/// An executor seen with another chunk size ([`Executor::with_chunk_size`]): its
/// jobs are the executor's own, cut into chunks of `chunk_size` items.
#[derive(Debug, Clone, Copy)]
pub struct WithChunkSize<'a, E> {
    inner: &'a E,
    chunk_size: usize,
}

impl<E> WithChunkSize<'_, E> {
    /// Items per chunk of the calls made through this view.
    pub fn chunk_size(&self) -> usize {
        self.chunk_size
    }
}

impl<E: Executor> Executor for WithChunkSize<'_, E> {
    fn open(&self, func: &RawFunc) -> Result<Box<dyn Job>> {
        self.inner.open(func)
    }

    fn shape(&self) -> Shape {
        Shape {
            chunk_size: Some(self.chunk_size),
            ..self.inner.shape()
        }
    }
}

/// The encoded arguments of a one-task job (`apply`, `apply_async`).
pub(crate) fn encode_single_call<A, R, M>(func: &Func<A, R, M>, args: &A) -> Result<Items>
where
    A: Serialize,
    R: DeserializeOwned,
    M: Mode,
{
    let mut items = Items::with_capacity(1, 32);
    items
        .push_with(|out| func.encode_args_into(args, out))
        .map_err(|error| Error::Encode { index: 0, error })?;
    Ok(items)
}
