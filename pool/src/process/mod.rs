//! The process backend: [`ProcessPool`] runs tasks in worker processes.
//!
//! One task's path through this folder: [`ProcessPool::open`](crate::Executor::open)
//! gives a [`ProcessJob`] that queues chunks (`queue`); a slot thread (`slot`) owns one
//! worker at a time, takes chunks off the queue, sends them over the worker's
//! connection (`connection`) and reads the outcomes back, blaming the task a lost
//! worker held. A caller waiting for its own task may run it on an idle slot's worker
//! from its own thread (`inline`). Workers are started (`launch`) by re-executing this
//! program or by a fork server (`fork_server`), and watched through their process
//! handle (`child`).

mod builder;
mod child;
mod connection;
mod fork_server;
mod inline;
mod launch;
mod mailbox;
mod queue;
mod slot;
mod spawner;

pub use builder::ProcessPoolBuilder;
pub use launch::StartMethod;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::AtomicU64;
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::Duration;

use dilly::RawFunc;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::backend::{Items, Job, Outcomes, Shape};
use crate::error::{Error, Result, TaskError};
use crate::executor::{Executor, FuncValue, encode_single_call};
use crate::handle::AsyncResult;
use crate::sync::lock;

use self::connection::MAX_LOADED;
use self::launch::Launcher;
use self::queue::{Chunk, JobInfo, fail_chunk};
use self::slot::ParkedWorker;
use self::slot::Registered;
use self::slot::slot_main;

/// Settings of a running process pool that its workers do not share (theirs are
/// the launcher's [`StartConfig`](launch::StartConfig)).
#[derive(Debug, Clone)]
struct Settings {
    workers: usize,
    chunk_size: Option<usize>,
    progress: bool,
    task_timeout: Option<Duration>,
    max_tasks_per_child: Option<usize>,
    /// The program workers run, when it is not this executable (`ProcessPoolBuilder::program`).
    program: Option<std::path::PathBuf>,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Chunk>,
    jobs: HashMap<u64, Arc<JobInfo>>,
    /// Functions by content, each with its key and one shared copy: repeated
    /// `apply` calls of a function with large captured state neither copy nor
    /// resend it. Also each one's measured time per task, which its jobs share
    /// ([`JobInfo::item_nanos`]).
    keys: HashMap<Arc<RawFunc>, (u64, Arc<AtomicU64>)>,
    next_id: u64,
    /// Chunks taken and not yet resolved, by slot (a slot's pipelined chunk
    /// counts too): a slot with none is free, or about to be.
    in_flight: Vec<usize>,
    closed: bool,
    terminated: bool,
    /// Worker PIDs by slot, for `terminate`.
    running: HashMap<usize, Registered>,
    /// Workers of idle slots, by slot.
    parked: HashMap<usize, ParkedWorker>,
    /// Slot threads waiting for a borrowed worker to come back.
    returned_waiters: usize,
}

struct PoolCore {
    launcher: Launcher,
    settings: Settings,
    state: Mutex<State>,
    work: Condvar,
    /// Signalled when a caller gives back a borrowed worker ([`ParkedWorker`]).
    returned: Condvar,
}

/// A pool of worker processes running [`Func`](dilly::Func) values, with the API of Python's
/// `multiprocessing.Pool` (through [`Executor`]).
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
/// let out = pool.map(&dilly::func_of!(double), 0..10)?;
/// assert_eq!(out[3], 6);
/// # Ok::<(), dilly_pool::Error>(())
/// ```
///
/// Failures are values: a panicking task, a worker that dies or a task past its
/// timeout fails only that task ([`TaskError`]); dead workers are replaced. Dropping
/// the pool never hangs: it stops idle workers and kills busy ones.
pub struct ProcessPool {
    shared: Arc<PoolCore>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    /// The build ID of `Settings::program`, read on the first same-build submission.
    program_build: std::sync::OnceLock<std::result::Result<dilly::BuildId, String>>,
}

impl ProcessPool {
    /// A builder with the defaults: one worker per core, `Spawn`, automatic chunks.
    pub fn builder() -> ProcessPoolBuilder {
        ProcessPoolBuilder::new()
    }

    /// A pool with the default settings.
    pub fn new() -> Result<ProcessPool> {
        ProcessPoolBuilder::new().build()
    }

    fn start(launcher: Launcher, settings: Settings) -> Result<ProcessPool> {
        let workers = settings.workers;
        let shared = Arc::new(PoolCore {
            launcher,
            settings,
            state: Mutex::new(State {
                in_flight: vec![0; workers],
                ..State::default()
            }),
            work: Condvar::new(),
            returned: Condvar::new(),
        });
        let pool = ProcessPool {
            shared: Arc::clone(&shared),
            threads: Mutex::new(Vec::new()),
            program_build: std::sync::OnceLock::new(),
        };
        let (ready_tx, ready_rx) = mpsc::channel::<Result<()>>();
        for slot in 0..workers {
            let shared = Arc::clone(&shared);
            let ready = ready_tx.clone();
            let handle = std::thread::Builder::new()
                .name(format!("dilly-pool-{slot}"))
                .spawn(move || slot_main(shared, slot, ready))
                .map_err(|source| Error::Io {
                    context: "cannot start a pool thread",
                    source,
                })?;
            lock(&pool.threads).push(handle);
        }
        drop(ready_tx);
        let mut first_error = None;
        for _ in 0..workers {
            match ready_rx.recv() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    first_error.get_or_insert(e);
                }
                Err(_) => {
                    first_error.get_or_insert(Error::WorkerStart {
                        reason: "a pool thread ended during start-up".to_owned(),
                    });
                }
            }
        }
        match first_error {
            None => Ok(pool),
            Some(e) => {
                pool.terminate();
                Err(e)
            }
        }
    }

    /// Stops taking new work; queued and running tasks still complete. Call
    /// [`join`](ProcessPool::join) to wait for them.
    pub fn close(&self) {
        let mut state = lock(&self.shared.state);
        state.closed = true;
        self.shared.work.notify_all();
    }

    /// Kills every worker now. Queued and running tasks end with
    /// [`TaskError::Terminated`].
    pub fn terminate(&self) {
        let failed = {
            let mut state = lock(&self.shared.state);
            state.closed = true;
            state.terminated = true;
            for worker in state.running.values() {
                worker.kill();
            }
            let queue = std::mem::take(&mut state.queue);
            let failed: Vec<_> = queue
                .into_iter()
                .filter_map(|c| state.jobs.get(&c.job).map(|j| (Arc::clone(j), c)))
                .collect();
            self.shared.work.notify_all();
            failed
        };
        for (job, chunk) in failed {
            fail_chunk(&job, chunk.first, chunk.items.len(), &TaskError::Terminated);
        }
        self.join_threads();
        self.shared.launcher.shutdown();
    }

    /// Waits for the workers to finish after [`close`](ProcessPool::close) or
    /// [`terminate`](ProcessPool::terminate).
    pub fn join(&self) -> Result<()> {
        if !lock(&self.shared.state).closed {
            return Err(Error::NotClosed);
        }
        self.join_threads();
        self.shared.launcher.shutdown();
        Ok(())
    }

    fn join_threads(&self) {
        let threads = std::mem::take(&mut *lock(&self.threads));
        for t in threads {
            let _ = t.join();
        }
    }

    /// Process IDs of the current workers (for diagnostics and tests).
    pub fn worker_pids(&self) -> Vec<u32> {
        let mut pids: Vec<u32> = lock(&self.shared.state)
            .running
            .values()
            .map(|w| w.pid)
            .collect();
        pids.sort_unstable();
        pids
    }
}

impl Drop for ProcessPool {
    fn drop(&mut self) {
        let idle = {
            let mut state = lock(&self.shared.state);
            let idle = state.in_flight.iter().all(|&n| n == 0) && state.queue.is_empty();
            state.closed = true;
            self.shared.work.notify_all();
            idle
        };
        if idle {
            self.join_threads();
            self.shared.launcher.shutdown();
        } else {
            self.terminate();
        }
    }
}

impl std::fmt::Debug for ProcessPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessPool")
            .field("workers", &self.shared.settings.workers)
            .field("pids", &self.worker_pids())
            .finish()
    }
}

impl ProcessPool {
    /// Refuses, at submission, a same-build value that the workers' program could
    /// not run: a worker would only refuse it task by task.
    fn check_same_build(&self, func: &RawFunc) -> Result<()> {
        let (RawFunc::SameBuild { build, .. }, Some(program)) =
            (func, &self.shared.settings.program)
        else {
            return Ok(());
        };
        let workers = self
            .program_build
            .get_or_init(|| dilly::same_build::build_id_of(program).map_err(|e| e.to_string()));
        match workers {
            Ok(workers) if workers == build => Ok(()),
            other => Err(Error::NotSameBuild {
                program: program.clone(),
                workers: match other {
                    Ok(id) => format!("build {id}"),
                    Err(e) => e.clone(),
                },
                found: *build,
            }),
        }
    }

    fn open_job(&self, func: &RawFunc) -> Result<ProcessJob> {
        self.check_same_build(func)?;
        let mut state = lock(&self.shared.state);
        if state.closed {
            return Err(Error::Closed);
        }
        state.next_id += 1;
        let id = state.next_id;
        if state.keys.len() > 4 * MAX_LOADED {
            state.keys.clear();
        }
        let (wire, key, item_nanos) = match state.keys.get_key_value(func) {
            Some((wire, (key, nanos))) => (Arc::clone(wire), *key, Arc::clone(nanos)),
            None => {
                let wire = Arc::new(func.clone());
                let nanos = Arc::new(AtomicU64::new(0));
                state
                    .keys
                    .insert(Arc::clone(&wire), (id, Arc::clone(&nanos)));
                (wire, id, nanos)
            }
        };
        let (sink, rx) = mailbox::mailbox();
        state.jobs.insert(
            id,
            Arc::new(JobInfo {
                func: wire,
                key,
                sink,
                item_nanos,
            }),
        );
        Ok(ProcessJob {
            shared: Arc::clone(&self.shared),
            id,
            rx,
            chunks: 0,
        })
    }
}

impl Executor for ProcessPool {
    fn open(&self, func: &RawFunc) -> Result<Box<dyn Job>> {
        Ok(Box::new(self.open_job(func)?))
    }

    // As the provided method, but the task is run on an idle worker from this
    // thread when one is free (`PoolCore::run_inline`): no pool thread is woken.
    fn apply<F>(&self, func: &F, args: F::Args) -> Result<F::Output>
    where
        Self: Sized,
        F: FuncValue,
        F::Args: Serialize + 'static,
        F::Output: DeserializeOwned + 'static,
    {
        let func = func.as_func();
        let items = encode_single_call(func, &args)?;
        let mut job = self.open_job(&func.raw())?;
        job.push(0, items, false)?;
        if !self.shared.run_inline(job.id) {
            // The wake-up `submit` would have given.
            self.shared.work.notify_one();
        }
        AsyncResult::one(Box::new(job), func.clone()).get()
    }

    fn shape(&self) -> Shape {
        Shape {
            workers: self.shared.settings.workers,
            chunk_size: self.shared.settings.chunk_size,
            progress: self.shared.settings.progress,
        }
    }
}

struct ProcessJob {
    shared: Arc<PoolCore>,
    id: u64,
    rx: mailbox::Mailbox,
    /// Chunks submitted: a job of one chunk (`apply`, `apply_async`, a tiny `map`)
    /// may run it from the waiting caller's thread; longer ones leave that to the
    /// slot threads, so that the caller stays free to feed and collect.
    chunks: usize,
}

impl ProcessJob {
    /// Queues a chunk; wakes an idle slot if `notify`.
    fn push(&mut self, first: u64, items: Items, notify: bool) -> Result<()> {
        self.push_all(first, std::iter::once(items), notify)
    }

    /// Queues consecutive chunks under one lock; wakes idle slots if `notify`.
    fn push_all(
        &mut self,
        first: u64,
        chunks: impl IntoIterator<Item = Items>,
        notify: bool,
    ) -> Result<()> {
        let mut state = lock(&self.shared.state);
        if state.terminated {
            return Err(Error::Closed);
        }
        let workers = self.shared.settings.workers;
        let mut first = first;
        for items in chunks {
            if items.is_empty() {
                continue;
            }
            let len = items.len() as u64;
            self.chunks += 1;
            state.queue.push_back(Chunk {
                job: self.id,
                first,
                items,
                isolated: false,
            });
            first += len;
            // Each idle slot needs one wake-up, and the first `workers` chunks
            // queued since the queue was last empty gave one each; slots that
            // were busy come back to the queue by themselves. (A notification is
            // a system call even with nobody waiting, which for one-item chunks
            // of tiny tasks costs about as much as running them.)
            if notify && state.queue.len() <= workers {
                self.shared.work.notify_one();
            }
        }
        Ok(())
    }
}

impl Job for ProcessJob {
    fn submit(&mut self, first: u64, items: Items) -> Result<()> {
        self.push(first, items, true)
    }

    fn submit_chunks(&mut self, first: u64, chunks: Vec<Items>) -> Result<()> {
        self.push_all(first, chunks, true)
    }

    fn next(&mut self, timeout: Option<Duration>) -> Option<Outcomes> {
        if timeout.is_none()
            && self.chunks == 1
            && self.shared.run_inline(self.id)
            && let Some(batch) = self.rx.try_recv()
        {
            return Some(batch);
        }
        self.rx.recv(timeout)
    }

    // Never runs the task inline as `next` may: that would block the async
    // executor's thread. A slot's thread puts the outcomes in the mailbox and
    // wakes the task.
    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Outcomes>> {
        self.rx.poll_recv(cx)
    }
}

impl Drop for ProcessJob {
    fn drop(&mut self) {
        let mut state = lock(&self.shared.state);
        state.jobs.remove(&self.id);
        let id = self.id;
        state.queue.retain(|c| c.job != id);
    }
}
