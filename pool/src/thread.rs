//! [`ThreadPool`]: the same API on threads of this process — for debugging, and for
//! functions that are cheap enough that processes would not pay off.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::Duration;

use dilly::{ErasedFunc, RawFunc};

use crate::backend::{Items, OutcomeReceiver, OutcomeSender, Outcomes, channel};
use crate::backend::{Job, Shape};
use crate::error::{Error, Result, TaskError};
use crate::executor::Executor;
use crate::local::{prepare, run_local};
use crate::sync::lock;

/// A pool of threads with the API of [`ProcessPool`](crate::ProcessPool). Panics
/// come back as [`TaskError::Panicked`](crate::TaskError::Panicked) (without a
/// location or backtrace: only a process pool installs its own panic hook); a crash takes the
/// whole process down, there are no per-task timeouts, and dropping the pool waits
/// for the tasks that are running (queued ones end with
/// [`TaskError::Terminated`](crate::TaskError::Terminated)).
pub struct ThreadPool {
    shared: Arc<WorkQueue>,
    threads: Vec<JoinHandle<()>>,
    workers: usize,
    chunk_size: Option<usize>,
    progress: bool,
}

struct Task {
    func: Arc<dyn ErasedFunc>,
    first: u64,
    items: Items,
    sink: OutcomeSender,
    cancelled: Arc<AtomicBool>,
}

#[derive(Default)]
struct Queue {
    tasks: VecDeque<Task>,
    closed: bool,
}

#[derive(Default)]
struct WorkQueue {
    queue: Mutex<Queue>,
    work: Condvar,
}

impl ThreadPool {
    /// A pool with one thread per CPU.
    pub fn new() -> Result<ThreadPool> {
        ThreadPool::builder().build()
    }

    /// Settings for a new pool, built the way
    /// [`ProcessPool::builder`](crate::ProcessPool::builder) builds a process pool.
    ///
    /// ```
    /// use dilly_pool::{Executor, ThreadPool};
    ///
    /// #[dilly::func]
    /// fn double(x: u64) -> u64 {
    ///     x * 2
    /// }
    ///
    /// let pool = ThreadPool::builder().workers(2).chunk_size(10).build()?;
    /// assert_eq!(pool.map(&dilly::func_of!(double), 1..=3u64)?, [2, 4, 6]);
    /// # Ok::<(), dilly_pool::Error>(())
    /// ```
    pub fn builder() -> ThreadPoolBuilder {
        ThreadPoolBuilder::default()
    }
}

/// Settings for a [`ThreadPool`], from [`ThreadPool::builder`].
#[derive(Debug, Clone, Default)]
pub struct ThreadPoolBuilder {
    workers: Option<usize>,
    chunk_size: Option<usize>,
    progress: bool,
}

impl ThreadPoolBuilder {
    /// Number of threads; default: one per CPU.
    pub fn workers(mut self, workers: usize) -> ThreadPoolBuilder {
        self.workers = Some(workers);
        self
    }

    /// Items per hand-off to a thread; by default the pool chooses, as
    /// [`ProcessPoolBuilder::chunk_size`](crate::ProcessPoolBuilder::chunk_size) does.
    pub fn chunk_size(mut self, chunk_size: usize) -> ThreadPoolBuilder {
        self.chunk_size = Some(chunk_size);
        self
    }

    /// Draws a progress bar on standard error for long maps (off by default).
    pub fn progress(mut self, progress: bool) -> ThreadPoolBuilder {
        self.progress = progress;
        self
    }

    /// Starts the threads. Zero workers or a zero chunk size is
    /// [`Error::Config`], as for a process pool.
    pub fn build(self) -> Result<ThreadPool> {
        let workers = match self.workers {
            Some(0) => return Err(Error::Config("workers must be at least 1".into())),
            Some(n) => n,
            None => std::thread::available_parallelism().map_or(1, usize::from),
        };
        if self.chunk_size == Some(0) {
            return Err(Error::Config("chunk_size must be at least 1".into()));
        }
        let shared = Arc::new(WorkQueue::default());
        let mut threads = Vec::with_capacity(workers);
        for i in 0..workers {
            let shared = Arc::clone(&shared);
            let t = std::thread::Builder::new()
                .name(format!("dilly-thread-{i}"))
                .spawn(move || run(&shared))
                .map_err(|source| Error::Io {
                    context: "cannot start a pool thread",
                    source,
                })?;
            threads.push(t);
        }
        Ok(ThreadPool {
            shared,
            threads,
            workers,
            chunk_size: self.chunk_size,
            progress: self.progress,
        })
    }
}

fn run(shared: &WorkQueue) {
    loop {
        let task = {
            let mut q = lock(&shared.queue);
            loop {
                if let Some(t) = q.tasks.pop_front() {
                    break t;
                }
                if q.closed {
                    return;
                }
                q = shared.work.wait(q).unwrap_or_else(|e| e.into_inner());
            }
        };
        for (i, args) in task.items.iter().enumerate() {
            if task.cancelled.load(Ordering::Relaxed) {
                break;
            }
            let mut outcomes = Outcomes::new();
            outcomes.push(task.first + i as u64, run_local(&*task.func, args));
            let _ = task.sink.send(outcomes);
        }
    }
}

impl Drop for ThreadPool {
    /// Queued tasks end with [`TaskError::Terminated`]; running ones finish (a
    /// thread cannot be killed), then the threads are joined.
    fn drop(&mut self) {
        let queued = {
            let mut q = lock(&self.shared.queue);
            q.closed = true;
            std::mem::take(&mut q.tasks)
        };
        for task in queued {
            let mut outcomes = Outcomes::new();
            outcomes.push_err_range(task.first, task.items.len(), TaskError::Terminated);
            let _ = task.sink.send(outcomes);
        }
        self.shared.work.notify_all();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl std::fmt::Debug for ThreadPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThreadPool")
            .field("workers", &self.workers)
            .finish_non_exhaustive()
    }
}

struct ThreadJob {
    shared: Arc<WorkQueue>,
    func: Arc<dyn ErasedFunc>,
    sink: OutcomeSender,
    rx: OutcomeReceiver,
    cancelled: Arc<AtomicBool>,
}

impl Job for ThreadJob {
    fn submit(&mut self, first: u64, items: Items) -> Result<()> {
        self.submit_chunks(first, vec![items])
    }

    // Under one lock, with one wake-up for all of them.
    fn submit_chunks(&mut self, first: u64, chunks: Vec<Items>) -> Result<()> {
        let mut q = lock(&self.shared.queue);
        if q.closed {
            return Err(Error::Closed);
        }
        let (mut first, count) = (first, chunks.len());
        for items in chunks {
            let len = items.len() as u64;
            q.tasks.push_back(Task {
                func: Arc::clone(&self.func),
                first,
                items,
                sink: self.sink.clone(),
                cancelled: Arc::clone(&self.cancelled),
            });
            first += len;
        }
        match count {
            0 => {}
            1 => self.shared.work.notify_one(),
            _ => self.shared.work.notify_all(),
        }
        Ok(())
    }

    fn next(&mut self, timeout: Option<Duration>) -> Option<Outcomes> {
        self.rx.recv(timeout)
    }

    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Outcomes>> {
        self.rx.poll_recv(cx)
    }
}

impl Drop for ThreadJob {
    fn drop(&mut self) {
        self.cancelled.store(true, Ordering::Relaxed);
    }
}

impl Executor for ThreadPool {
    fn open(&self, func: &RawFunc) -> Result<Box<dyn Job>> {
        let (sink, rx) = channel();
        Ok(Box::new(ThreadJob {
            shared: Arc::clone(&self.shared),
            func: prepare(func)?,
            sink,
            rx,
            cancelled: Arc::new(AtomicBool::new(false)),
        }))
    }

    fn shape(&self) -> Shape {
        Shape {
            workers: self.workers,
            chunk_size: self.chunk_size,
            progress: self.progress,
        }
    }
}
