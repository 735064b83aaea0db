//! The executor trait every backend implements, and the process pool.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::{self, BufRead, BufReader};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use dilly::{Func, Mode, RawFunc};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::backend::{Items, Job, Outcomes, Shape};
use crate::builder::Builder;
use crate::error::{Error, Result, TaskError};
use crate::executor::{Executor, encode_single_call};
use crate::handle::AsyncResult;
use crate::protocol::{self, AfterRun, FromWorker, ToWorker, WireError};
use crate::start::{Connected, Launcher, Proc, Starting, lock};

/// Maps a worker's report to the task error, reconstructing the core crate's
/// typed error where the worker could only send text.
pub(crate) fn task_error(err: WireError, func: Option<&RawFunc>) -> TaskError {
    match err {
        WireError::UnknownSymbol { id } => TaskError::Rejected {
            error: dilly::Error::UnknownSymbol { id, name: None },
        },
        WireError::Load { message } => {
            // Same registry on both sides (the handshake checked): preparing here
            // fails the same way and gives back the typed error.
            let local = func.map(RawFunc::prepare);
            let error = match local {
                Some(Err(error)) => error,
                _ => dilly::Error::Malformed {
                    what: "function",
                    detail: message,
                },
            };
            TaskError::Rejected { error }
        }
        WireError::Arguments { message } => TaskError::Arguments {
            error: dilly::Error::Malformed {
                what: "arguments",
                detail: message,
            },
        },
        WireError::Result { message } => TaskError::Unserializable {
            error: dilly::Error::Encode {
                what: "result",
                detail: message,
            },
        },
        WireError::Panicked { message, location } => TaskError::Panicked { message, location },
    }
}

/// Settings of a running process pool.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) workers: usize,
    pub(crate) chunk_size: Option<usize>,
    pub(crate) progress: bool,
    pub(crate) task_timeout: Option<Duration>,
    pub(crate) max_tasks_per_child: Option<usize>,
    pub(crate) memory_limited: bool,
    pub(crate) max_frame: u64,
    /// The program workers run, when it is not this executable (`Builder::program`).
    pub(crate) program: Option<std::path::PathBuf>,
    /// How long a caller running its task inline, and then its worker, poll for
    /// the other's next message before they block (`Builder::spin`).
    pub(crate) spin: Duration,
    /// How long a worker may hold finished results (`Builder::result_window`): the
    /// bound on merged chunks, and zero for exact blame without re-runs.
    pub(crate) result_window: Duration,
}

struct Chunk {
    job: u64,
    first: u64,
    items: Items,
    /// Must run alone (a suspect re-run after an ambiguous worker death): never
    /// merged with the chunks around it.
    isolated: bool,
}

struct JobInfo {
    func: Arc<RawFunc>,
    key: u64,
    /// Outcomes go to the job in batches (one message per chunk, or per read of
    /// the worker's socket), never empty ones.
    sink: mpsc::Sender<Outcomes>,
    /// Estimated time a worker spends per item of this job, in nanoseconds (0 until
    /// a chunk has completed): how many small chunks may be merged into one.
    item_nanos: AtomicU64,
}

impl JobInfo {
    /// Most items a chunk of this job may hold after merging: as many as its
    /// workers are estimated to finish within `window`, the result window
    /// (`Builder::result_window`). A merged chunk then exposes no task to a second
    /// run after a crash that the window did not already expose (see
    /// `docs/decisions.md`), and a merge holds back at most that much work from an
    /// idle worker. One while nothing is known, or with a zero window.
    fn merge_budget(&self, window: Duration) -> usize {
        match self.item_nanos.load(Ordering::Relaxed) {
            0 => 1,
            nanos => usize::try_from(window.as_nanos() / u128::from(nanos))
                .unwrap_or(usize::MAX)
                .max(1),
        }
    }

    /// Folds the measured time per item of a completed chunk into the estimate.
    fn observe(&self, per_item: Duration) {
        let new = u64::try_from(per_item.as_nanos())
            .unwrap_or(u64::MAX)
            .max(1);
        let old = self.item_nanos.load(Ordering::Relaxed);
        let next = if old == 0 { new } else { old / 2 + new / 2 };
        self.item_nanos.store(next.max(1), Ordering::Relaxed);
    }

    fn send(&self, outcomes: Outcomes) {
        if !outcomes.is_empty() {
            let _ = self.sink.send(outcomes);
        }
    }

    fn send_error(&self, index: u64, error: TaskError) {
        let mut outcomes = Outcomes::new();
        outcomes.push_err(index, error);
        let _ = self.sink.send(outcomes);
    }
}

#[derive(Default)]
struct State {
    queue: VecDeque<Chunk>,
    jobs: HashMap<u64, Arc<JobInfo>>,
    /// Functions by content, each with its key and one shared copy: repeated
    /// `apply` calls of a function with large captured state neither copy nor
    /// resend it.
    keys: HashMap<Arc<RawFunc>, u64>,
    next_id: u64,
    in_flight: usize,
    closed: bool,
    terminated: bool,
    /// Worker PIDs by slot, for `terminate`.
    running: HashMap<usize, Registered>,
    /// Workers of idle slots, by slot.
    desks: HashMap<usize, Desk>,
    /// Slot threads waiting for a borrowed worker to come back.
    returned_waiters: usize,
}

/// A live worker as `terminate` sees it: its PID, and a pidfd opened when it was
/// registered (it had just started or said hello), through which it is killed,
/// so that a PID reused after the worker was reaped is never signalled.
struct Registered {
    pid: u32,
    pidfd: Option<std::os::fd::OwnedFd>,
}

impl Registered {
    fn kill(&self) {
        use std::os::fd::AsFd;
        match &self.pidfd {
            Some(fd) => crate::sys::pidfd_kill(fd.as_fd()),
            None => crate::sys::kill(self.pid),
        }
    }
}

struct Shared {
    launcher: Launcher,
    settings: Settings,
    state: Mutex<State>,
    work: Condvar,
    /// Signalled when a caller gives back a borrowed worker ([`Desk`]).
    returned: Condvar,
}

/// The worker of an idle slot, parked in the state so that a caller waiting for
/// its own task can run it on that worker directly ([`Shared::run_inline`]): the
/// slot thread then wakes neither to send the task nor to hand back its result.
/// No entry: the slot thread holds its worker.
enum Desk {
    /// Idle, with this worker.
    Parked(Live),
    /// A caller runs a chunk on it.
    Borrowed,
    /// Given back without a worker (it was lost, or retired by
    /// `max_tasks_per_child`): the slot starts a new one, and takes over what the
    /// caller left.
    Empty(Handback),
}

/// What a caller that ran a chunk on a borrowed worker leaves to the slot: the
/// worker it retired (to be reaped) and the successor it began.
#[derive(Default)]
struct Handback {
    retiring: Vec<Proc>,
    next_worker: Option<Starting>,
}

/// What a slot thread does next.
enum Next {
    Chunk(Arc<JobInfo>, Chunk),
    /// Its worker was lost while a caller had it: start a new one.
    Relaunch,
    Stop,
}

/// How many functions a worker keeps prepared before the pool tells it to forget
/// them all.
const MAX_LOADED: usize = 256;

/// A pool of worker processes running [`Func`] values, with the API of Python's
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
    shared: Arc<Shared>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    /// The build ID of `Settings::program`, read on the first same-build submission.
    program_build: std::sync::OnceLock<std::result::Result<dilly::BuildId, String>>,
}

impl ProcessPool {
    /// A builder with the defaults: one worker per core, `Spawn`, automatic chunks.
    pub fn builder() -> Builder {
        Builder::new()
    }

    /// A pool with the default settings.
    pub fn new() -> Result<ProcessPool> {
        Builder::new().build()
    }

    pub(crate) fn start(launcher: Launcher, settings: Settings) -> Result<ProcessPool> {
        let workers = settings.workers;
        let shared = Arc::new(Shared {
            launcher,
            settings,
            state: Mutex::new(State::default()),
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
            let idle = state.in_flight == 0 && state.queue.is_empty();
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
        let (wire, key) = match state.keys.get_key_value(func) {
            Some((wire, key)) => (Arc::clone(wire), *key),
            None => {
                let wire = Arc::new(func.clone());
                state.keys.insert(Arc::clone(&wire), id);
                (wire, id)
            }
        };
        let (sink, rx) = mpsc::channel();
        state.jobs.insert(
            id,
            Arc::new(JobInfo {
                func: wire,
                key,
                sink,
                item_nanos: AtomicU64::new(0),
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
    // thread when one is free (`Shared::run_inline`): no pool thread is woken.
    fn apply<A, R, M>(&self, func: &Func<A, R, M>, args: A) -> Result<R>
    where
        Self: Sized,
        A: Serialize + 'static,
        R: DeserializeOwned + 'static,
        M: Mode,
    {
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
    shared: Arc<Shared>,
    id: u64,
    rx: mpsc::Receiver<Outcomes>,
    /// Chunks submitted: a job of one chunk (`apply`, `apply_async`, a tiny `map`)
    /// may run it from the waiting caller's thread; longer ones leave that to the
    /// slot threads, so that the caller stays free to feed and collect.
    chunks: usize,
}

impl ProcessJob {
    /// Queues a chunk; wakes an idle slot if `notify`.
    fn push(&mut self, first: u64, items: Items, notify: bool) -> Result<()> {
        if items.is_empty() {
            return Ok(());
        }
        self.chunks += 1;
        let mut state = lock(&self.shared.state);
        if state.terminated {
            return Err(Error::Closed);
        }
        state.queue.push_back(Chunk {
            job: self.id,
            first,
            items,
            isolated: false,
        });
        // Each idle slot needs one wake-up, and the first `workers` chunks queued
        // since the queue was last empty gave one each; slots that were busy come
        // back to the queue by themselves. (A notification is a system call even
        // with nobody waiting: one per chunk cost a map of 20,000 one-item chunks
        // about as much as running them.)
        if notify && state.queue.len() <= self.shared.settings.workers {
            self.shared.work.notify_one();
        }
        Ok(())
    }
}

impl Job for ProcessJob {
    fn submit(&mut self, first: u64, items: Items) -> Result<()> {
        self.push(first, items, true)
    }

    fn next(&mut self, timeout: Option<Duration>) -> Option<Outcomes> {
        if timeout.is_none() && self.chunks == 1 && self.shared.run_inline(self.id) {
            if let Ok(batch) = self.rx.try_recv() {
                return Some(batch);
            }
        }
        match timeout {
            None => self.rx.recv().ok(),
            Some(t) => self.rx.recv_timeout(t).ok(),
        }
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

fn fail_chunk(job: &JobInfo, first: u64, len: usize, error: &TaskError) {
    let mut outcomes = Outcomes::new();
    for i in 0..len as u64 {
        outcomes.push_err(first + i, error.clone());
    }
    job.send(outcomes);
}

/// A live worker, parent side.
struct Live {
    /// The worker's socket (written through [`Live::socket`]).
    reader: BufReader<UnixStream>,
    proc: Proc,
    loaded: HashSet<u64>,
    tasks: usize,
    /// The worker said `Busy` about the task whose result is awaited.
    busy: bool,
    /// A caller borrowed it and waits for its results ([`Shared::run_inline`]):
    /// both poll for a while before they block (`Builder::spin`).
    inline: bool,
    /// It was sent its last chunk, after which it exits without being told.
    exits: bool,
}

impl Live {
    fn new(connected: Connected, timeout: Option<Duration>) -> io::Result<Live> {
        let Connected { stream, proc } = connected;
        stream.set_read_timeout(timeout)?;
        Ok(Live {
            reader: BufReader::with_capacity(64 << 10, stream),
            proc,
            loaded: HashSet::new(),
            tasks: 0,
            busy: false,
            inline: false,
            exits: false,
        })
    }

    /// The worker's socket, for writing (one descriptor for both directions: a
    /// second, duplicated one cost a `dup` and a `close` per worker start).
    fn socket(&self) -> &UnixStream {
        self.reader.get_ref()
    }

    /// Tells the worker to exit, unless it was sent its last chunk and exits by
    /// itself. A worker gone already makes the write fail, which is fine.
    fn tell_to_exit(&self) {
        if !self.exits {
            let _ =
                protocol::write_frame(self.socket(), &ToWorker::Exit.encode().unwrap_or_default());
        }
    }
}

/// Largest `Run` frame sent while the worker may still be busy writing results: it
/// always fits the socket's buffer, so parent and worker never both block writing.
const PIPELINE_FRAME: usize = 32 << 10;

/// Chunks sent to one worker ahead of its results.
const PIPELINE_DEPTH: usize = 2;

/// Bytes an item takes in a `Run` frame.
fn framed(item: &[u8]) -> usize {
    item.len() + 8
}

/// How many of the first `items` fit a chunk: at most `cap` of them, none over
/// `limit`, and together at most `max_bytes` framed (at least one if `one_anyway`).
/// Also their framed bytes.
fn fitting(
    items: &Items,
    cap: usize,
    limit: usize,
    max_bytes: usize,
    one_anyway: bool,
) -> (usize, usize) {
    let mut take = 0;
    let mut bytes = 0;
    for item in items.iter().take(cap) {
        if item.len() > limit || (bytes + framed(item) > max_bytes && !(one_anyway && take == 0)) {
            break;
        }
        bytes += framed(item);
        take += 1;
    }
    (take, bytes)
}

/// Appends to `chunk` the items of the chunks queued right behind it that continue
/// it (same job, next indices, not isolated), while it holds fewer than `budget`
/// items and `max_bytes` of arguments (`bytes` so far), and no item exceeds
/// `limit`. Small chunks of fast tasks thus travel and report as one.
fn merge_following(
    queue: &mut VecDeque<Chunk>,
    chunk: &mut Chunk,
    budget: usize,
    limit: usize,
    max_bytes: usize,
    mut bytes: usize,
) {
    while chunk.items.len() < budget {
        let Some(next) = queue.front_mut() else {
            return;
        };
        let end = chunk.first + chunk.items.len() as u64;
        if next.job != chunk.job || next.isolated || next.first != end {
            return;
        }
        let room = budget - chunk.items.len();
        let (take, taken_bytes) = fitting(&next.items, room, limit, max_bytes - bytes, false);
        bytes += taken_bytes;
        if take == next.items.len() {
            let next = queue.pop_front().expect("the front chunk");
            chunk.items.append(next.items);
        } else {
            let rest = next.items.split_off(take);
            let taken = std::mem::replace(&mut next.items, rest);
            next.first += take as u64;
            chunk.items.append(taken);
            return;
        }
    }
}

/// A chunk sent to a worker whose results are being read.
struct InFlight {
    job: Arc<JobInfo>,
    chunk: Chunk,
    /// Items whose outcome arrived.
    reported: usize,
    /// Whether the frame reached the worker (a failed write means it never ran).
    sent: bool,
    /// Outcomes read but not yet handed to the job.
    out: Outcomes,
    /// When its frame was written.
    sent_at: Instant,
}

impl Shared {
    /// Takes the next chunk off the queue, at most `capacity` items and at most
    /// `max_bytes` of arguments (at least one item unless `strict`). Items that
    /// alone exceed the frame limit fail here. Called with the state locked.
    fn take(
        &self,
        state: &mut State,
        capacity: Option<usize>,
        max_bytes: usize,
        strict: bool,
    ) -> Option<(Arc<JobInfo>, Chunk)> {
        let limit = usize::try_from(self.settings.max_frame).unwrap_or(usize::MAX);
        loop {
            let mut chunk = state.queue.pop_front()?;
            let Some(job) = state.jobs.get(&chunk.job).cloned() else {
                continue;
            };
            // Arguments that can never travel fail at the front of the chunk.
            while let Some(len) = chunk.items.get(0).map(<[u8]>::len).filter(|&l| l > limit) {
                chunk.items = chunk.items.split_off(1);
                let error = TaskError::Arguments {
                    error: dilly::Error::TooLarge {
                        what: "arguments",
                        len: len as u64,
                        limit,
                    },
                };
                job.send_error(chunk.first, error);
                chunk.first += 1;
            }
            if chunk.items.is_empty() {
                continue;
            }
            let cap = capacity.unwrap_or(usize::MAX).max(1);
            let (take, bytes) = fitting(&chunk.items, cap, limit, max_bytes, true);
            if strict && bytes > max_bytes {
                state.queue.push_front(chunk);
                return None;
            }
            if take < chunk.items.len() {
                let rest = chunk.items.split_off(take);
                state.queue.push_front(Chunk {
                    job: chunk.job,
                    first: chunk.first + take as u64,
                    items: rest,
                    isolated: chunk.isolated,
                });
            } else if !chunk.isolated {
                let budget = job.merge_budget(self.settings.result_window).min(cap);
                merge_following(
                    &mut state.queue,
                    &mut chunk,
                    budget,
                    limit,
                    max_bytes,
                    bytes,
                );
            }
            state.in_flight += 1;
            return Some((job, chunk));
        }
    }

    /// The next chunk for slot `slot`, waiting for one. While it waits, the slot's
    /// idle worker is parked for callers to borrow; it is back in `live` (or gone,
    /// [`Next::Relaunch`], with what the caller left in `handback`) when this
    /// returns. The chunk fits what the worker may still take
    /// (`max_tasks_per_child`), callers' tasks counted.
    fn next_chunk(&self, slot: usize, live: &mut Option<Live>, handback: &mut Handback) -> Next {
        let limit = usize::try_from(self.settings.max_frame).unwrap_or(usize::MAX);
        let mut state = lock(&self.state);
        loop {
            match state.desks.remove(&slot) {
                None => {}
                Some(Desk::Parked(l)) => *live = Some(l),
                Some(Desk::Empty(left)) => {
                    *handback = left;
                    *live = None;
                    if state.terminated || (state.closed && state.queue.is_empty()) {
                        return Next::Stop;
                    }
                    return Next::Relaunch;
                }
                Some(Desk::Borrowed) => {
                    state.desks.insert(slot, Desk::Borrowed);
                    // A wake-up meant for an idle slot goes on to another one.
                    if !state.queue.is_empty() {
                        self.work.notify_one();
                    }
                    state.returned_waiters += 1;
                    state = self.returned.wait(state).unwrap_or_else(|e| e.into_inner());
                    state.returned_waiters -= 1;
                    continue;
                }
            }
            if state.terminated {
                return Next::Stop;
            }
            let capacity = self.capacity_of(live.as_ref());
            if let Some((job, chunk)) = self.take(&mut state, capacity, limit, false) {
                return Next::Chunk(job, chunk);
            }
            if state.closed {
                return Next::Stop;
            }
            if let Some(l) = live.take() {
                state.desks.insert(slot, Desk::Parked(l));
            }
            state = self.work.wait(state).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Runs the next queued chunk, if it is one of job `job`'s, on an idle slot's
    /// worker in this (the caller's) thread: the worker is woken directly and its
    /// results are read here, two thread wake-ups per round trip instead of four.
    /// Failures are handled exactly as on the slot thread (the same [`Slot`] code
    /// runs). False if nothing was run.
    fn run_inline(&self, job: u64) -> bool {
        let limit = usize::try_from(self.settings.max_frame).unwrap_or(usize::MAX);
        let (index, live, info, chunk) = {
            let mut state = lock(&self.state);
            if state.terminated || state.queue.front().is_none_or(|c| c.job != job) {
                return false;
            }
            let Some(index) = state
                .desks
                .iter()
                .find_map(|(i, d)| matches!(d, Desk::Parked(_)).then_some(*i))
            else {
                return false;
            };
            let capacity = match state.desks.get(&index) {
                Some(Desk::Parked(live)) => self.capacity_of(Some(live)),
                _ => None,
            };
            let Some((info, chunk)) = self.take(&mut state, capacity, limit, false) else {
                return false;
            };
            let Some(Desk::Parked(mut live)) = state.desks.insert(index, Desk::Borrowed) else {
                unreachable!("the desk was parked")
            };
            live.inline = true;
            (index, live, info, chunk)
        };
        let mut slot = Slot::new(self, index, live);
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            slot.run_chunk(info, chunk);
        }));
        let mut live = slot.live.take();
        if let Some(live) = &mut live {
            live.inline = false;
        }
        // A worker retired here, and the successor begun with its last task, go to
        // the slot with the empty desk (a worker still live has neither).
        let handback = Handback {
            retiring: std::mem::take(&mut slot.retiring),
            next_worker: slot.next_worker.take(),
        };
        {
            let mut state = lock(&self.state);
            let lost = live.is_none();
            state
                .desks
                .insert(index, live.map_or(Desk::Empty(handback), Desk::Parked));
            if lost {
                // Its slot thread starts a replacement at once.
                self.work.notify_all();
            }
            if state.returned_waiters > 0 {
                self.returned.notify_all();
            }
        }
        if let Err(panic) = run {
            std::panic::resume_unwind(panic);
        }
        true
    }

    /// How many tasks `live` may still take (`max_tasks_per_child`), at least one.
    fn capacity_of(&self, live: Option<&Live>) -> Option<usize> {
        let max = self.settings.max_tasks_per_child?;
        Some(max.saturating_sub(live.map_or(0, |l| l.tasks)).max(1))
    }

    /// A small chunk to pipeline behind the ones in flight, if one is queued.
    fn pipelined_chunk(&self, capacity: Option<usize>) -> Option<(Arc<JobInfo>, Chunk)> {
        let mut state = lock(&self.state);
        if state.terminated || capacity == Some(0) {
            return None;
        }
        self.take(&mut state, capacity, PIPELINE_FRAME, true)
    }

    /// Marks a chunk resolved (all outcomes sent, or its rest requeued).
    fn chunk_done(&self) {
        let mut state = lock(&self.state);
        state.in_flight = state.in_flight.saturating_sub(1);
    }

    /// Puts unfinished items back at the front of the queue (or fails them if the
    /// pool is terminating).
    fn requeue(&self, job: &JobInfo, chunk_job: u64, first: u64, items: Items) {
        if items.is_empty() {
            return;
        }
        let mut state = lock(&self.state);
        if state.terminated {
            drop(state);
            fail_chunk(job, first, items.len(), &TaskError::Terminated);
            return;
        }
        if state.jobs.contains_key(&chunk_job) {
            state.queue.push_front(Chunk {
                job: chunk_job,
                first,
                items,
                isolated: false,
            });
            self.work.notify_one();
        }
    }

    /// Puts items back at the front of the queue one per chunk, in order.
    fn requeue_singly(&self, job: &JobInfo, chunk_job: u64, first: u64, items: Items) {
        let mut state = lock(&self.state);
        if state.terminated || !state.jobs.contains_key(&chunk_job) {
            drop(state);
            fail_chunk(job, first, items.len(), &TaskError::Terminated);
            return;
        }
        for (i, item) in items.iter().enumerate().rev() {
            state.queue.push_front(Chunk {
                job: chunk_job,
                first: first + i as u64,
                items: Items::from_iter([item]),
                isolated: true,
            });
        }
        self.work.notify_all();
    }

    /// Takes a worker begun early (or, with `None`, a new one) through its start,
    /// registered under `slot` for `terminate`.
    fn launch(&self, slot: usize, begun: Option<Starting>) -> Result<Live> {
        let register = |pid: u32, held: Option<std::os::fd::BorrowedFd<'_>>| {
            // Copying the launcher's pidfd is cheaper than opening another (which
            // allocates a file).
            let pidfd = match held {
                Some(fd) => fd.try_clone_to_owned().ok(),
                None => crate::sys::pidfd(pid),
            };
            let mut state = lock(&self.state);
            if state.terminated {
                return false;
            }
            state.running.insert(slot, Registered { pid, pidfd });
            true
        };
        let started = begun.map_or_else(|| self.launcher.begin(), Ok);
        let connected = match self.launcher.finish(started, &register) {
            Ok(c) => c,
            Err(e) => {
                self.forget(slot);
                return Err(e);
            }
        };
        let live =
            Live::new(connected, self.settings.task_timeout).map_err(|source| Error::Io {
                context: "cannot configure a worker's socket",
                source,
            })?;
        if lock(&self.state).terminated {
            let mut live = live;
            live.proc.kill();
            live.proc.reap();
            self.forget(slot);
            return Err(Error::Closed);
        }
        Ok(live)
    }

    fn forget(&self, slot: usize) {
        lock(&self.state).running.remove(&slot);
    }

    /// Sends the function (first time on this worker) and a chunk's items, in one
    /// write when the chunk is small, and large items without copying them.
    /// `last`: the worker retires after this chunk, and exits by itself.
    fn send_run(
        &self,
        live: &mut Live,
        job: &JobInfo,
        items: &Items,
        last: bool,
    ) -> io::Result<()> {
        let after = if last {
            live.exits = true;
            AfterRun::Exit
        } else if live.inline && !self.settings.spin.is_zero() {
            // A waiting caller soon sends more: the worker polls for it.
            AfterRun::Spin
        } else {
            AfterRun::Wait
        };
        let mut frames = Vec::new();
        if !live.loaded.contains(&job.key) {
            if live.loaded.len() >= MAX_LOADED {
                frames.extend_from_slice(&ToWorker::Clear.encode()?);
                live.loaded.clear();
            }
            let load = ToWorker::Load {
                key: job.key,
                func: (*job.func).clone(),
            };
            frames.extend_from_slice(&load.encode()?);
            live.loaded.insert(job.key);
        }
        protocol::write_run(live.socket(), frames, job.key, items, after)
    }

    /// Reads the outcomes of item `index` and, when they are already buffered, of
    /// up to `max - 1` more after it, into `out` (the head chunk's batch for the
    /// job); returns how many. A caller running its task inline first polls for it
    /// (`Builder::spin`). `Err` means the worker is lost, with the error to blame
    /// the item for (`None`: it died).
    fn receive(
        &self,
        live: &mut Live,
        job: &JobInfo,
        index: u64,
        max: usize,
        out: &mut Outcomes,
    ) -> std::result::Result<usize, Option<TaskError>> {
        // At most the task timeout, which counts from the end of the spin.
        let mut spin = match (live.inline, self.settings.task_timeout) {
            (false, _) => Duration::ZERO,
            (true, None) => self.settings.spin,
            (true, Some(timeout)) => self.settings.spin.min(timeout),
        };
        loop {
            // The hot case: results that arrived together, taken from the read
            // buffer in one pass.
            let mut next = index;
            let (count, used) = protocol::split_done_frames(
                live.reader.buffer(),
                max,
                self.settings.max_frame,
                |result| {
                    out.push_ok(next, result);
                    next += 1;
                },
            );
            if count > 0 {
                live.reader.consume(used);
                live.busy = false;
                return Ok(count);
            }
            if !protocol::holds_frame(live.reader.buffer()) {
                // Hand over what arrived before waiting for more: one channel
                // message per read of the socket, not per item.
                if !out.is_empty() {
                    job.send(std::mem::take(out));
                }
                // Readiness only: the read below takes the data (or the end, or
                // the read timeout) through the `BufReader` as without a spin.
                crate::sys::spin_until_readable(live.reader.get_ref().as_fd(), spin);
                spin = Duration::ZERO;
            }
            let frame = match protocol::read_head(&mut live.reader, self.settings.max_frame) {
                // The hot case: the result goes straight into the batch's buffer.
                Ok(Some((tag, len))) if protocol::is_done(tag) => {
                    live.busy = false;
                    let reader = &mut live.reader;
                    match out.push_ok_with(index, |buf| protocol::read_body_into(reader, len, buf))
                    {
                        Ok(()) => return Ok(1),
                        Err(e) => Err(e),
                    }
                }
                Ok(Some((tag, len))) => {
                    let mut rest = Vec::new();
                    protocol::read_body_into(&mut live.reader, len, &mut rest)
                        .map(|()| Some((tag, rest)))
                }
                other => other.map(|_| None),
            };
            if let Ok(Some((tag, rest))) = &frame {
                if protocol::is_busy(*tag, rest) {
                    live.busy = true;
                    continue;
                }
            }
            if matches!(frame, Ok(Some(_))) {
                live.busy = false;
            }
            return self.outcome(live, job, index, frame, out).map(|()| 1);
        }
    }

    /// Adds one frame's outcome to `out` (see [`Shared::receive`]).
    fn outcome(
        &self,
        live: &mut Live,
        job: &JobInfo,
        index: u64,
        frame: io::Result<Option<(u8, Vec<u8>)>>,
        out: &mut Outcomes,
    ) -> std::result::Result<(), Option<TaskError>> {
        let protocol_error = |live: &Live, detail: String| {
            Some(TaskError::Protocol {
                pid: live.proc.pid(),
                detail,
            })
        };
        match frame {
            Ok(Some((tag, rest))) => match FromWorker::decode_parts(tag, &rest) {
                Ok(FromWorker::Done(bytes)) => {
                    out.push_ok(index, &bytes);
                    Ok(())
                }
                Ok(FromWorker::Failed(err)) => {
                    out.push_err(index, task_error(err, Some(&job.func)));
                    Ok(())
                }
                Ok(other) => Err(protocol_error(live, format!("unexpected {other:?}"))),
                Err(e) => Err(protocol_error(live, e.to_string())),
            },
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                match self.settings.task_timeout {
                    Some(after) => Err(Some(TaskError::TimedOut {
                        after,
                        pid: live.proc.pid(),
                    })),
                    None => Err(None),
                }
            }
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                Err(protocol_error(live, e.to_string()))
            }
            Ok(None) | Err(_) => Err(None),
        }
    }
}

/// A slot: one thread that owns one worker process at a time, keeps up to
/// [`PIPELINE_DEPTH`] chunks in flight on it, and reads their results in order.
fn slot_main(shared: Arc<Shared>, slot: usize, ready: mpsc::Sender<Result<()>>) {
    let live = match shared.launch(slot, None) {
        Ok(live) => {
            let _ = ready.send(Ok(()));
            live
        }
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    drop(ready);
    let mut slot = Slot::new(&shared, slot, live);
    slot.serve();
    slot.stop();
}

struct Slot<'a> {
    shared: &'a Shared,
    index: usize,
    live: Option<Live>,
    inflight: VecDeque<InFlight>,
    start_error: Option<String>,
    /// Workers told to exit whose end is not collected yet: the replacement starts
    /// first.
    retiring: Vec<Proc>,
    /// When the last chunk completed on this worker (a chunk pipelined behind it
    /// started then).
    last_done: Option<Instant>,
    /// The next worker, begun while the current one runs the last tasks it may
    /// take (`max_tasks_per_child`), so that it is ready, or nearly, when that one
    /// retires. Killed if the slot stops first.
    next_worker: Option<Starting>,
}

impl<'a> Slot<'a> {
    /// Slot `index` with its worker `live`, nothing in flight.
    fn new(shared: &'a Shared, index: usize, live: Live) -> Slot<'a> {
        Slot {
            shared,
            index,
            live: Some(live),
            inflight: VecDeque::new(),
            start_error: None,
            retiring: Vec::new(),
            last_done: None,
            next_worker: None,
        }
    }
}

impl Slot<'_> {
    /// Tasks the current worker may still take before it is retired.
    fn capacity(&self) -> Option<usize> {
        let max = self.shared.settings.max_tasks_per_child?;
        let used = self.live.as_ref().map_or(0, |l| l.tasks)
            + self
                .inflight
                .iter()
                .map(|f| f.chunk.items.len())
                .sum::<usize>();
        Some(max.saturating_sub(used))
    }

    /// Takes over what a caller left with this slot's empty desk.
    fn take_over(&mut self, handback: Handback) {
        self.retiring.extend(handback.retiring);
        if let Some(next) = handback.next_worker {
            if self.next_worker.is_none() {
                self.next_worker = Some(next);
            }
        }
    }

    fn serve(&mut self) {
        loop {
            if self.inflight.is_empty() && !self.start_next() {
                return;
            }
            self.top_up();
            self.read_one();
        }
    }

    /// Waits for a chunk and sends it; false when the slot should stop.
    fn start_next(&mut self) -> bool {
        loop {
            if self.live.is_none() {
                let launched = self.shared.launch(self.index, self.next_worker.take());
                self.collect_retired();
                match launched {
                    Ok(l) => {
                        self.live = Some(l);
                        self.start_error = None;
                    }
                    Err(Error::Closed) => return false,
                    Err(e) => self.start_error = Some(e.to_string()),
                }
            }
            let mut handback = Handback::default();
            let next = self
                .shared
                .next_chunk(self.index, &mut self.live, &mut handback);
            self.take_over(handback);
            let (job, chunk) = match next {
                Next::Chunk(job, chunk) => (job, chunk),
                Next::Relaunch => continue,
                Next::Stop => return false,
            };
            if self.live.is_none() {
                let reason = self
                    .start_error
                    .clone()
                    .unwrap_or_else(|| "unknown start failure".to_owned());
                fail_chunk(
                    &job,
                    chunk.first,
                    chunk.items.len(),
                    &TaskError::WorkerStart { reason },
                );
                self.shared.chunk_done();
                // Do not spin on a start failure that repeats.
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
            if self.dispatch(job, chunk) {
                return true;
            }
        }
    }

    /// Sends `chunk` to the live worker and tracks it as in flight. False when there
    /// is no live worker or it turned out dead: the chunk is then requeued, or
    /// handed to `lost` without blame.
    fn dispatch(&mut self, job: Arc<JobInfo>, chunk: Chunk) -> bool {
        let Some(worker) = self.live.as_mut() else {
            self.shared
                .requeue(&job, chunk.job, chunk.first, chunk.items);
            self.shared.chunk_done();
            return false;
        };
        // A worker that died while idle is replaced without blaming any task.
        if worker.proc.try_status().is_some() {
            self.shared.forget(self.index);
            self.live = None;
            self.shared
                .requeue(&job, chunk.job, chunk.first, chunk.items);
            self.shared.chunk_done();
            return false;
        }
        if !self.send(job, chunk) {
            // It died before it could start this chunk: nobody is to blame.
            self.lost(None, false);
            return false;
        }
        true
    }

    /// Writes `chunk` to the live worker and tracks it as in flight (also when the
    /// write failed: the worker's loss then sorts it out). False if the write failed.
    fn send(&mut self, job: Arc<JobInfo>, chunk: Chunk) -> bool {
        // This chunk spends what the worker may still take (`max_tasks_per_child`).
        let last = self
            .capacity()
            .is_some_and(|left| left <= chunk.items.len());
        let sent = self.live.as_mut().is_some_and(|worker| {
            self.shared
                .send_run(worker, &job, &chunk.items, last)
                .is_ok()
        });
        self.inflight.push_back(InFlight {
            job,
            chunk,
            reported: 0,
            sent,
            out: Outcomes::new(),
            sent_at: Instant::now(),
        });
        if sent && last && self.next_worker.is_none() {
            // The worker retires once the chunks it holds are done: start the next
            // one now, in parallel with them. Should that fail, the start after
            // the retirement tries again and reports why.
            self.next_worker = self.shared.launcher.begin().ok();
        }
        sent
    }

    /// Runs one chunk on the current worker and reads all its results (for
    /// [`Shared::run_inline`]).
    fn run_chunk(&mut self, job: Arc<JobInfo>, chunk: Chunk) {
        if self.dispatch(job, chunk) {
            while !self.inflight.is_empty() && self.live.is_some() {
                self.read_one();
            }
        }
    }

    /// Sends small queued chunks behind the ones in flight.
    fn top_up(&mut self) {
        while self.inflight.len() < PIPELINE_DEPTH && self.live.is_some() {
            let Some((job, chunk)) = self.shared.pipelined_chunk(self.capacity()) else {
                return;
            };
            if !self.send(job, chunk) {
                // The head chunk's read will see the death and sort everything out.
                return;
            }
        }
    }

    /// Reads the next result of the oldest chunk in flight (and any more of its
    /// results that arrived with it).
    fn read_one(&mut self) {
        let (Some(worker), Some(head)) = (self.live.as_mut(), self.inflight.front_mut()) else {
            return;
        };
        let index = head.chunk.first + head.reported as u64;
        let max = head.chunk.items.len() - head.reported;
        match self
            .shared
            .receive(worker, &head.job, index, max, &mut head.out)
        {
            Ok(count) => {
                head.reported += count;
                if head.reported == head.chunk.items.len() {
                    let done = self.inflight.pop_front().expect("a head chunk");
                    let now = Instant::now();
                    let began = self.last_done.map_or(done.sent_at, |t| t.max(done.sent_at));
                    done.job
                        .observe(now.duration_since(began) / done.chunk.items.len() as u32);
                    self.last_done = Some(now);
                    done.job.send(done.out);
                    worker.tasks += done.chunk.items.len();
                    self.shared.chunk_done();
                    let retire = self
                        .shared
                        .settings
                        .max_tasks_per_child
                        .is_some_and(|max| worker.tasks >= max);
                    if retire && self.inflight.is_empty() {
                        self.retire();
                    }
                }
            }
            Err(error) => self.lost(error, true),
        }
    }

    /// Tells the current worker to exit. Its end is collected later
    /// ([`Slot::collect_retired`]), after its replacement has started.
    fn retire(&mut self) {
        if let Some(old) = self.live.take() {
            self.shared.forget(self.index);
            old.tell_to_exit();
            self.retiring.push(old.proc);
        }
    }

    /// Collects the ends of retired workers that have exited, without waiting.
    fn collect_retired(&mut self) {
        self.retiring.retain_mut(|proc| proc.try_status().is_none());
    }

    /// The worker is gone. If `started`, the head chunk's next item was running and
    /// gets `error` (or [`TaskError::WorkerDied`]); everything else in flight goes
    /// back to the queue.
    fn lost(&mut self, error: Option<TaskError>, started: bool) {
        let Some(mut old) = self.live.take() else {
            return;
        };
        let pid = old.proc.pid();
        let exit = if error.is_some() {
            old.proc.kill();
            self.shared.forget(self.index);
            old.proc.reap()
        } else {
            let exit = old.proc.status(Duration::from_secs(2));
            self.shared.forget(self.index);
            exit
        };
        let terminated = lock(&self.shared.state).terminated;
        let busy = old.busy;
        // A worker that died by itself (no timeout, no protocol error) with several
        // items of its chunk unreported may have finished some of them: their
        // results can sit unsent in its buffer for up to `RESULT_WINDOW`. Run those
        // items again one per chunk, where the one that kills its worker is known
        // exactly; the others deliver their results once.
        // Without a result window every finished task's result was sent before the
        // next task started, so the first unreported item is the one it ran.
        let ambiguous = started
            && error.is_none()
            && !terminated
            && !busy
            && !self.shared.settings.result_window.is_zero()
            && self
                .inflight
                .front()
                .is_some_and(|f| f.sent && f.chunk.items.len() - f.reported > 1);
        if ambiguous {
            if let Some(InFlight {
                job,
                mut chunk,
                reported,
                out,
                ..
            }) = self.inflight.pop_front()
            {
                job.send(out);
                let rest = chunk.items.split_off(reported);
                let first = chunk.first + reported as u64;
                self.shared.requeue_singly(&job, chunk.job, first, rest);
                self.shared.chunk_done();
            }
        }
        let mut blame = (started && !ambiguous).then_some(error);
        while let Some(InFlight {
            job,
            mut chunk,
            reported,
            sent,
            out,
            ..
        }) = self.inflight.pop_front()
        {
            // What arrived before the loss goes first.
            job.send(out);
            let mut rest = chunk.items.split_off(reported.min(chunk.items.len()));
            let mut first = chunk.first + reported as u64;
            // Only the item the worker was running is to blame: the next unreported
            // one of the oldest chunk it received.
            if let Some(error) = blame.take() {
                if sent && !rest.is_empty() {
                    rest = rest.split_off(1);
                    let error = if terminated {
                        TaskError::Terminated
                    } else {
                        error.unwrap_or(TaskError::WorkerDied {
                            pid,
                            exit,
                            memory_limited: self.shared.settings.memory_limited,
                        })
                    };
                    job.send_error(first, error);
                    first += 1;
                }
            }
            self.shared.requeue(&job, chunk.job, first, rest);
            self.shared.chunk_done();
        }
    }

    /// Ends the slot: stops its worker (gracefully unless terminating).
    fn stop(&mut self) {
        {
            let mut state = lock(&self.shared.state);
            loop {
                match state.desks.remove(&self.index) {
                    None => break,
                    Some(Desk::Parked(l)) => {
                        self.live = Some(l);
                        break;
                    }
                    Some(Desk::Empty(handback)) => {
                        self.take_over(handback);
                        break;
                    }
                    Some(Desk::Borrowed) => {
                        state.desks.insert(self.index, Desk::Borrowed);
                        state.returned_waiters += 1;
                        state = self
                            .shared
                            .returned
                            .wait(state)
                            .unwrap_or_else(|e| e.into_inner());
                        state.returned_waiters -= 1;
                    }
                }
            }
        }
        // A worker begun for later is not needed (killed when dropped).
        drop(self.next_worker.take());
        if !self.inflight.is_empty() {
            self.lost(Some(TaskError::Terminated), true);
        }
        // Retired workers were idle when told to exit, so they end promptly; waiting
        // for that (rather than killing) never signals a PID the fork server has
        // already reaped.
        for mut proc in std::mem::take(&mut self.retiring) {
            proc.status(Duration::from_secs(2));
        }
        let terminated = lock(&self.shared.state).terminated;
        if let Some(mut worker) = self.live.take() {
            self.shared.forget(self.index);
            if terminated {
                worker.proc.kill();
                worker.proc.reap();
            } else {
                worker.tell_to_exit();
                worker.proc.status(Duration::from_secs(2));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(job: u64, first: u64, len: usize, isolated: bool) -> Chunk {
        Chunk {
            job,
            first,
            items: (0..len).map(|i| [(first + i as u64) as u8]).collect(),
            isolated,
        }
    }

    fn bytes(items: &Items) -> Vec<Vec<u8>> {
        items.iter().map(<[u8]>::to_vec).collect()
    }

    fn firsts(queue: &VecDeque<Chunk>) -> Vec<(u64, u64, usize)> {
        queue
            .iter()
            .map(|c| (c.job, c.first, c.items.len()))
            .collect()
    }

    #[test]
    fn merging_takes_the_continuing_chunks_of_the_same_job_up_to_the_budget() {
        let mut head = chunk(1, 0, 1, false);
        let mut queue: VecDeque<Chunk> = (1..6).map(|i| chunk(1, i, 1, false)).collect();
        merge_following(&mut queue, &mut head, 4, usize::MAX, usize::MAX, 9);
        assert_eq!(bytes(&head.items), [[0], [1], [2], [3]]);
        assert_eq!(firsts(&queue), [(1, 4, 1), (1, 5, 1)]);
    }

    #[test]
    fn merging_splits_a_chunk_that_does_not_fit_and_renumbers_its_rest() {
        let mut head = chunk(1, 0, 2, false);
        let mut queue = VecDeque::from([chunk(1, 2, 5, false)]);
        merge_following(&mut queue, &mut head, 4, usize::MAX, usize::MAX, 18);
        assert_eq!(bytes(&head.items), [[0], [1], [2], [3]]);
        assert_eq!(firsts(&queue), [(1, 4, 3)]);
        assert_eq!(bytes(&queue[0].items), [[4], [5], [6]]);
    }

    #[test]
    fn merging_stops_at_another_job_an_isolated_chunk_or_a_gap() {
        for next in [
            chunk(2, 1, 1, false),
            chunk(1, 1, 1, true),
            chunk(1, 7, 1, false),
        ] {
            let mut head = chunk(1, 0, 1, false);
            let mut queue = VecDeque::from([next]);
            merge_following(&mut queue, &mut head, 100, usize::MAX, usize::MAX, 9);
            assert_eq!(head.items.len(), 1);
            assert_eq!(queue.len(), 1);
        }
    }

    #[test]
    fn merging_respects_the_byte_bound_and_the_item_limit() {
        // Each one-byte item takes 9 bytes in a frame: 27 bytes fit three.
        let mut head = chunk(1, 0, 1, false);
        let mut queue = VecDeque::from([chunk(1, 1, 5, false)]);
        merge_following(&mut queue, &mut head, 100, usize::MAX, 27, 9);
        assert_eq!(head.items.len(), 3);
        assert_eq!(firsts(&queue), [(1, 3, 3)]);

        // An item over the frame limit is left for `take` to fail on its own.
        let mut head = chunk(1, 0, 1, false);
        let mut big = chunk(1, 1, 1, false);
        big.items.push(&[0; 10]);
        let mut queue = VecDeque::from([big]);
        merge_following(&mut queue, &mut head, 100, 5, usize::MAX, 9);
        assert_eq!(head.items.len(), 2);
        assert_eq!(firsts(&queue), [(1, 2, 1)]);
    }

    #[test]
    fn the_merge_budget_follows_the_measured_time_per_item() {
        let (sink, _rx) = mpsc::channel();
        let job = JobInfo {
            func: Arc::new(dilly::func_of!(tests_noop).raw()),
            key: 1,
            sink,
            item_nanos: AtomicU64::new(0),
        };
        let window = Duration::from_millis(1);
        assert_eq!(job.merge_budget(window), 1, "nothing measured: no merging");
        job.observe(Duration::from_micros(1));
        assert_eq!(job.merge_budget(window), 1000);
        assert_eq!(job.merge_budget(Duration::ZERO), 1, "no window: no merging");
        job.observe(Duration::from_micros(3));
        assert_eq!(job.merge_budget(window), 500, "the estimate averages");
        job.observe(window * 4);
        assert_eq!(job.merge_budget(window), 1, "slow tasks are not merged");
    }

    #[dilly::func]
    fn tests_noop(x: u64) -> u64 {
        x
    }
}
