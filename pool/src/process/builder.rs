//! [`ProcessPoolBuilder`]: the options of a [`ProcessPool`].

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use dilly::{Func, Mode, RawFunc};

use super::launch::{Launcher, StartConfig, StartMethod};
use super::{ProcessPool, Settings};
use crate::error::{Error, Result};

/// How long a finished task's result may wait in the worker's buffer for the
/// results of the next ones, by default (`ProcessPoolBuilder::result_window`). Results of fast
/// tasks travel together (one write for many). Once a task has run longer than
/// this, every earlier result is sent, followed by a `Busy` frame: if the worker
/// dies now (or is killed at a timeout), the parent knows exactly which task it was
/// running.
const RESULT_WINDOW: Duration = Duration::from_millis(1);

/// The running executable, even after its file was replaced or deleted (Linux).
const SELF_EXE: &str = "/proc/self/exe";

/// Options of a [`ProcessPool`], by the names of Python's `multiprocessing.Pool`
/// where one exists.
///
/// ```
/// use std::time::Duration;
/// use dilly_pool::{ProcessPool, StartMethod};
///
/// let pool = ProcessPool::builder()
///     .workers(2)
///     .start_method(StartMethod::ForkServer)
///     .task_timeout(Duration::from_secs(30))
///     .max_tasks_per_child(1000)
///     .memory_limit(2 << 30)
///     .build()?;
/// # Ok::<(), dilly_pool::Error>(())
/// ```
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct ProcessPoolBuilder {
    workers: Option<usize>,
    start_method: StartMethod,
    chunk_size: Option<usize>,
    max_tasks_per_child: Option<usize>,
    initializer: Option<RawFunc>,
    task_timeout: Option<Duration>,
    memory_limit: Option<u64>,
    progress: bool,
    env: Vec<(OsString, OsString)>,
    handshake_timeout: Duration,
    max_frame: usize,
    program: Option<PathBuf>,
    spin: Duration,
    result_window: Duration,
}

/// The default of [`ProcessPoolBuilder::spin`]: about what waking a sleeping process on
/// another CPU costs on a VM, so spinning never wastes much more than the wake-up it
/// saves.
const DEFAULT_SPIN: Duration = Duration::from_micros(50);

impl Default for ProcessPoolBuilder {
    fn default() -> Self {
        ProcessPoolBuilder::new()
    }
}

impl ProcessPoolBuilder {
    /// The defaults: one worker per core, [`StartMethod::Spawn`], automatic chunks,
    /// no timeout, no limits, no progress bar.
    pub fn new() -> ProcessPoolBuilder {
        ProcessPoolBuilder {
            workers: None,
            start_method: StartMethod::Spawn,
            chunk_size: None,
            max_tasks_per_child: None,
            initializer: None,
            task_timeout: None,
            memory_limit: None,
            progress: false,
            env: Vec::new(),
            handshake_timeout: Duration::from_secs(30),
            max_frame: dilly::Limits::DEFAULT.max_len,
            program: None,
            spin: DEFAULT_SPIN,
            result_window: RESULT_WINDOW,
        }
    }

    /// Number of worker processes (Python's `processes`); default: the number of
    /// cores (`std::thread::available_parallelism`).
    pub fn workers(mut self, workers: usize) -> ProcessPoolBuilder {
        self.workers = Some(workers);
        self
    }

    /// How workers are started; default [`StartMethod::Spawn`].
    pub fn start_method(mut self, method: StartMethod) -> ProcessPoolBuilder {
        self.start_method = method;
        self
    }

    /// Items sent to a worker at a time (Python's `chunksize`). Default: about four
    /// chunks per worker for inputs of known length; for lazy `imap` inputs, a size
    /// that adapts so one chunk takes about 20 ms.
    ///
    /// This is the unit of scheduling for tasks that take a while. Chunks of tasks
    /// measured to be fast are merged while their work fits about 1 ms (the time a
    /// worker batches results anyway), so that chunk size 1 over tiny tasks does not
    /// cost a round trip per item; a merged chunk keeps every failure guarantee of a
    /// chunk (`docs/decisions.md`, "Small chunks of fast tasks are merged").
    pub fn chunk_size(mut self, chunk_size: usize) -> ProcessPoolBuilder {
        self.chunk_size = Some(chunk_size);
        self
    }

    /// Replace each worker after it ran this many tasks (Python's
    /// `maxtasksperchild`), to bound leaks in long-running pools.
    pub fn max_tasks_per_child(mut self, tasks: usize) -> ProcessPoolBuilder {
        self.max_tasks_per_child = Some(tasks);
        self
    }

    /// A function every new worker runs once before its first task. If it fails in
    /// the workers started by [`build`](ProcessPoolBuilder::build), `build` returns
    /// [`Error::Initializer`].
    pub fn initializer<M: Mode>(mut self, init: Func<(), (), M>) -> ProcessPoolBuilder {
        self.initializer = Some(init.raw());
        self
    }

    /// Kill a worker whose task runs longer than this, fail the task with
    /// [`TaskError::TimedOut`](crate::TaskError::TimedOut), and start a new worker.
    pub fn task_timeout(mut self, timeout: Duration) -> ProcessPoolBuilder {
        self.task_timeout = Some(timeout);
        self
    }

    /// Limit each worker's address space to `bytes` (`RLIMIT_AS`): a task that
    /// allocates past it kills only its worker
    /// ([`TaskError::WorkerDied`](crate::TaskError::WorkerDied)).
    pub fn memory_limit(mut self, bytes: u64) -> ProcessPoolBuilder {
        self.memory_limit = Some(bytes);
        self
    }

    /// Draw a progress bar on stderr during `map` and `imap` (hidden when stderr is
    /// not a terminal).
    pub fn progress(mut self, progress: bool) -> ProcessPoolBuilder {
        self.progress = progress;
        self
    }

    /// Set an environment variable in the workers.
    pub fn env(
        mut self,
        key: impl Into<OsString>,
        value: impl Into<OsString>,
    ) -> ProcessPoolBuilder {
        self.env.push((key.into(), value.into()));
        self
    }

    /// How long a new worker may take to connect and say hello; default 30 s.
    pub fn handshake_timeout(mut self, timeout: Duration) -> ProcessPoolBuilder {
        self.handshake_timeout = timeout;
        self
    }

    /// The size limit: the largest frame (a chunk of arguments, one result) either
    /// side accepts, in bytes; default [`dilly::Limits::DEFAULT`] (64 MiB). The same
    /// name as [`dilly::Limits::max_len`], the size limit's name in every dilly crate.
    pub fn max_len(mut self, bytes: usize) -> ProcessPoolBuilder {
        self.max_frame = bytes;
        self
    }

    /// The old name of [`max_len`](ProcessPoolBuilder::max_len), kept for one release.
    #[deprecated(
        since = "0.1.0",
        note = "renamed to `max_len`, the size limit's name in every dilly crate"
    )]
    pub fn max_frame(self, bytes: usize) -> ProcessPoolBuilder {
        self.max_len(bytes)
    }

    /// The program workers run; default: this very executable — `/proc/self/exe` on
    /// Linux, which still names the running build after the file on disk was
    /// replaced (a rebuild) or deleted, else `std::env::current_exe()`. It must
    /// register the same items with the same signatures and data shapes as this
    /// process — normally, the same build: the handshake compares
    /// `dilly::registry::fingerprint()` and refuses it otherwise
    /// ([`Error::RegistryMismatch`]). Same-build function values need the very same
    /// executable (checked when they are submitted).
    pub fn program(mut self, path: impl Into<PathBuf>) -> ProcessPoolBuilder {
        self.program = Some(path.into());
        self
    }

    /// How long a caller waiting for its task, and then the worker that ran it,
    /// poll for the other's next message before they go to sleep; default 50 µs
    /// (about what waking a sleeping process on another CPU costs on a VM);
    /// [`Duration::ZERO`] turns it off.
    ///
    /// It applies where a caller runs its task on an idle worker itself
    /// ([`apply`](crate::Executor::apply), [`AsyncResult::get`](crate::AsyncResult::get)
    /// of a one-chunk job): the caller polls its socket for the result, and the
    /// worker, after sending it, polls for the caller's next task. When the answer
    /// comes within the window neither process sleeps, so no wake-up is paid —
    /// most of a short `apply`'s round trip. Maps fed by the pool's threads do not
    /// spin.
    ///
    /// The price is CPU time: up to this much per such call on each side, also when
    /// nothing comes. The spin only follows activity (an idle pool sleeps) and
    /// yields the CPU between looks, so threads waiting for that CPU still run.
    /// With a [`task_timeout`](ProcessPoolBuilder::task_timeout), a caller spins at most that
    /// long, and the timeout counts from the end of the spin.
    pub fn spin(mut self, window: Duration) -> ProcessPoolBuilder {
        self.spin = window;
        self
    }

    /// How long a worker may hold finished results to send them together; default
    /// 1 ms. Within a chunk, fast tasks then cost one write for many results, and
    /// queued small chunks of tasks measured to be fast are merged while their work
    /// fits this window (chunk size 1 over tiny tasks runs at millions per second).
    ///
    /// The price, should a worker die: a task that finished within the window
    /// before may run a second time (its result is still delivered once), because
    /// its result died with the worker; and the task that killed the worker may be
    /// run again alone to find out which one it was. With [`Duration::ZERO`] every
    /// result is sent the moment its task ends and no chunks are merged, so a
    /// worker's death is always blamed on the one task it was running and **each
    /// task runs at most once** — the setting for tasks with side effects that must
    /// not repeat. It costs one write per result, which trivial tasks feel
    /// (`docs/benchmarks.md` has the figures) and tasks that take a millisecond or
    /// more hardly notice.
    pub fn result_window(mut self, window: Duration) -> ProcessPoolBuilder {
        self.result_window = window;
        self
    }

    /// Starts the workers and waits until each has completed the handshake and run
    /// the initializer.
    ///
    /// Fails with [`Error::Registry`] before starting any worker when two
    /// registered items of this program share a name (`dilly::registry::check`).
    pub fn build(self) -> Result<ProcessPool> {
        dilly::registry::check().map_err(|error| Error::Registry { error })?;
        let workers = match self.workers {
            Some(0) => return Err(Error::Config("workers must be at least 1".into())),
            Some(n) => n,
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        };
        if self.chunk_size == Some(0) {
            return Err(Error::Config("chunk_size must be at least 1".into()));
        }
        if self.max_tasks_per_child == Some(0) {
            return Err(Error::Config(
                "max_tasks_per_child must be at least 1".into(),
            ));
        }
        let program = self.program.clone();
        let exe = match self.program {
            Some(p) => p,
            None if cfg!(target_os = "linux") && std::path::Path::new(SELF_EXE).exists() => {
                PathBuf::from(SELF_EXE)
            }
            None => std::env::current_exe().map_err(|source| Error::Io {
                context: "cannot find this program's executable",
                source,
            })?,
        };
        let config = StartConfig {
            exe,
            env: self.env,
            handshake_timeout: self.handshake_timeout,
            memory_limit: self.memory_limit,
            max_frame: self.max_frame as u64,
            spin: self.spin,
            result_window: self.result_window,
            initializer: self.initializer,
        };
        let launcher = Launcher::new(self.start_method, config)?;
        ProcessPool::start(
            launcher,
            Settings {
                workers,
                chunk_size: self.chunk_size,
                progress: self.progress,
                task_timeout: self.task_timeout,
                max_tasks_per_child: self.max_tasks_per_child,
                program,
            },
        )
    }
}
