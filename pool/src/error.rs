//! The errors of `dilly-pool`: [`Error`] for the pool and whole operations,
//! [`TaskError`] for one task, [`WorkerExit`] for how a worker process ended.

use std::fmt;
use std::time::Duration;

use dilly::registry::RegistryFingerprint;

/// How a worker process ended. A serde value, as [`TaskError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum WorkerExit {
    /// It exited with this code (e.g. `std::process::exit(3)`).
    Code(i32),
    /// It was killed by this signal (`SIGABRT` = 6 for `abort` and failed
    /// allocations, `SIGSEGV` = 11, `SIGKILL` = 9).
    Signal(i32),
    /// The status could not be learned.
    Unknown,
}

impl WorkerExit {
    pub(crate) fn from_raw(status: i32) -> WorkerExit {
        use std::os::unix::process::ExitStatusExt;
        WorkerExit::from_status(std::process::ExitStatus::from_raw(status))
    }

    pub(crate) fn from_status(status: std::process::ExitStatus) -> WorkerExit {
        use std::os::unix::process::ExitStatusExt;
        match (status.code(), status.signal()) {
            (Some(code), _) => WorkerExit::Code(code),
            (None, Some(signal)) => WorkerExit::Signal(signal),
            _ => WorkerExit::Unknown,
        }
    }
}

impl fmt::Display for WorkerExit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WorkerExit::Code(code) => write!(f, "exit code {code}"),
            WorkerExit::Signal(signal) => {
                let name = match signal {
                    4 => " (SIGILL)",
                    6 => " (SIGABRT)",
                    7 => " (SIGBUS)",
                    8 => " (SIGFPE)",
                    9 => " (SIGKILL)",
                    11 => " (SIGSEGV)",
                    15 => " (SIGTERM)",
                    _ => "",
                };
                write!(f, "signal {signal}{name}")
            }
            WorkerExit::Unknown => f.write_str("unknown status"),
        }
    }
}

/// Why one task did not produce a result. The other tasks of the same call are not
/// affected: a `map` stops at the first of these, an `imap` yields it in place.
///
/// A serde value: a worker sends it back to the pool, and a backend that runs tasks
/// on other machines carries it across, through dilly's codec
/// ([`dilly::to_bytes`]). The serde form numbers variants in declaration order,
/// so new variants go last.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum TaskError {
    /// The task panicked; the worker caught the panic and kept serving.
    #[error(
        "task panicked at {}: {message}{}",
        location.as_deref().unwrap_or("an unknown location"),
        backtrace.as_deref().map(|b| format!("\nworker backtrace:\n{b}")).unwrap_or_default()
    )]
    Panicked {
        /// The panic message.
        message: String,
        /// `file:line:column` of the panic, when known.
        location: Option<String>,
        /// The worker's stack at the panic, when the worker's environment asks for
        /// backtraces (`RUST_BACKTRACE` or `RUST_LIB_BACKTRACE` set and not `0`,
        /// as for [`std::backtrace::Backtrace::capture`]; workers inherit the
        /// environment of the program that starts the pool). Only worker
        /// processes capture it: `None` from a [`ThreadPool`](crate::ThreadPool)
        /// or [`Serial`](crate::Serial).
        backtrace: Option<String>,
    },

    /// The worker running the task died (abort, segfault, `std::process::exit`,
    /// `kill -9`, out of memory). The pool replaced it; other tasks are unaffected.
    #[error(
        "worker process {pid} died while running the task ({exit}){}",
        if *memory_limited { "; a memory limit is set, and a failed allocation aborts with SIGABRT" } else { "" }
    )]
    WorkerDied {
        /// The worker's process ID.
        pid: u32,
        /// How it ended.
        exit: WorkerExit,
        /// Whether the pool set a memory limit on the worker.
        memory_limited: bool,
    },

    /// The task ran past the pool's per-task timeout; its worker was killed and
    /// replaced.
    #[error("task timed out after {after:?}; its worker process {pid} was killed and replaced")]
    TimedOut {
        /// The timeout in force.
        after: Duration,
        /// The killed worker's process ID.
        pid: u32,
    },

    /// The worker could not prepare the function: it is not registered there, its
    /// signature differs (a stale or different binary), or its captured state did
    /// not decode.
    #[error("the worker cannot run this function: {error}")]
    Rejected {
        /// The core crate's error, as the worker reported it.
        error: dilly::Error,
    },

    /// The task's arguments could not be encoded by the caller or decoded by the
    /// worker.
    #[error("the task's arguments do not travel: {error}")]
    Arguments {
        /// The codec's error.
        error: dilly::Error,
    },

    /// The task's result could not be encoded by the worker (its `Serialize` failed)
    /// or decoded by the caller.
    #[error("the task's result does not travel: {error}")]
    Unserializable {
        /// The codec's error.
        error: dilly::Error,
    },

    /// No worker could be started to run the task.
    #[error("no worker could be started for the task: {reason}")]
    WorkerStart {
        /// What went wrong, as the start error's message.
        reason: String,
    },

    /// The worker broke the protocol (a frame over the size limit, garbage bytes);
    /// it was killed and replaced.
    #[error("worker process {pid} broke the protocol: {detail}; it was killed and replaced")]
    Protocol {
        /// The worker's process ID.
        pid: u32,
        /// What was wrong.
        detail: String,
    },

    /// The worker running the task was stopped (`SIGSTOP`, `SIGTSTP`: state `T`)
    /// and stayed stopped past the pool's grace period, so the task would never
    /// finish; the worker was killed and replaced. A worker stopped by a debugger
    /// (state `t`) is left alone.
    #[error(
        "worker process {pid} was stopped (SIGSTOP or SIGTSTP) while running the task and \
         stayed stopped for {after:?}; it was killed and replaced (send SIGCONT within the \
         grace period to resume a worker instead)"
    )]
    WorkerStopped {
        /// The killed worker's process ID.
        pid: u32,
        /// How long the task had waited when the worker was found stopped.
        after: Duration,
    },

    /// The pool was terminated before the task finished.
    #[error("the pool was terminated before the task finished")]
    Terminated,

    /// A backend that delivers chunks again after a failure (a distributed one:
    /// worker hosts on other machines) gave up on the task's chunk after
    /// `deliveries` deliveries: the workers that took it kept dying, or refused it.
    /// The backend keeps the chunk where it can be found and run again once the
    /// cause is fixed; its documentation says where.
    #[error(
        "the task was given up after {deliveries} deliveries: {last_error}; fix the cause, \
         then run it again from where the backend keeps given-up tasks"
    )]
    GivenUp {
        /// How many times workers took the task's chunk.
        deliveries: u32,
        /// What happened the last time.
        last_error: String,
    },
}

impl TaskError {
    /// True for [`TaskError::WorkerDied`], [`TaskError::TimedOut`] and
    /// [`TaskError::WorkerStopped`]: the worker is gone, and running the task again
    /// may or may not help.
    pub fn is_worker_lost(&self) -> bool {
        matches!(
            self,
            TaskError::WorkerDied { .. }
                | TaskError::TimedOut { .. }
                | TaskError::WorkerStopped { .. }
        )
    }
}

/// Everything that can go wrong with a pool or a whole operation on it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A same-build function value was submitted to a pool whose workers run
    /// another executable (`ProcessPoolBuilder::program`): refused before anything is sent.
    #[error(
        "this same-build function value can only run in workers of the executable that made it \
         (build {found}), but this pool's workers run {} ({workers}); make the value portable \
         by listing its captures' types in `closure!([name: Type] ...)`, or let the workers run this executable",
        program.display()
    )]
    NotSameBuild {
        /// The program the workers run.
        program: std::path::PathBuf,
        /// That program's build ID, or why it could not be read.
        workers: String,
        /// The build the value belongs to.
        found: dilly::BuildId,
    },

    /// Task number `index` (0-based, in input order) failed; see [`TaskError`].
    #[error("task {index} failed: {error}")]
    Task {
        /// The task's position in the input.
        index: usize,
        /// What happened to it.
        error: TaskError,
    },

    /// A worker runs a different build than this process: its registry of
    /// functions differs. Typically the executable was rebuilt while the program ran.
    #[error(
        "the worker's function registry ({worker}) differs from this process's ({parent}): \
         the worker runs another build of the program (see `ProcessPoolBuilder::program`); or, if dilly's \
         `inventory` collector is on, the pre-main hook ran before inventory registered the \
         functions: turn off dilly-pool's `auto-worker` feature and call \
         `dilly_pool::serve_if_worker()` first thing in `main`"
    )]
    RegistryMismatch {
        /// This process's registry fingerprint.
        parent: RegistryFingerprint,
        /// The worker's.
        worker: RegistryFingerprint,
    },

    /// This program's registry cannot serve: two registered items share a name
    /// (`dilly::Error::DuplicateSymbol`, which names both and where each is
    /// registered). Found when the pool is built, before any task runs.
    #[error("this program's function registry cannot be used: {error}")]
    Registry {
        /// The core crate's error.
        error: dilly::Error,
    },

    /// The initializer failed in a new worker.
    #[error("the pool's initializer failed in a new worker: {error}")]
    Initializer {
        /// How it failed.
        error: TaskError,
    },

    /// A worker process could not be started or did not complete the handshake.
    #[error("cannot start a worker process: {reason}")]
    WorkerStart {
        /// What went wrong, and how to fix it.
        reason: String,
    },

    /// `StartMethod::Fork` was asked for while the process runs several threads.
    #[error(
        "cannot fork: this process runs {threads} threads, and forking copies only one, \
         leaving locks held by the others locked forever; use StartMethod::ForkServer \
         (or Spawn), or build the pool before starting threads"
    )]
    ForkUnsafe {
        /// The number of threads found in `/proc/self/task`.
        threads: usize,
    },

    /// The start method is not available on this platform.
    #[error("{what} is not supported on this platform")]
    Unsupported {
        /// What was asked for.
        what: &'static str,
    },

    /// Arguments could not be encoded before sending (the codec's error says what
    /// failed: `cannot encode arguments: ...`).
    #[error("cannot send task {index}: {error}")]
    Encode {
        /// The task's position in the input.
        index: usize,
        /// The codec's error.
        error: dilly::Error,
    },

    /// The pool was closed (or terminated) and takes no new work.
    #[error("the pool is closed and takes no new work")]
    Closed,

    /// `join` was called before `close` or `terminate`.
    #[error("join() needs close() or terminate() first, or it would wait forever")]
    NotClosed,

    /// `get_timeout` waited this long without a result; the handle still works.
    #[error("no result after {waited:?}")]
    Timeout {
        /// How long it waited.
        waited: Duration,
    },

    /// An earlier [`AsyncResult::get_timeout`](crate::AsyncResult::get_timeout)
    /// returned the value already: a handle gives its value once.
    #[error(
        "the result was already taken by an earlier get_timeout; a handle gives its value once"
    )]
    AlreadyTaken,

    /// The builder was given an invalid option.
    #[error("invalid pool option: {0}")]
    Config(String),

    /// An error of the dilly core, passed on by `?` (`From<dilly::Error>`):
    /// encoding or decoding a function value or data with `dilly::to_bytes` and
    /// `dilly::from_bytes`, or looking a function up.
    #[error(transparent)]
    Dilly(#[from] dilly::Error),

    /// An operating-system call failed.
    #[error("{context}: {source}")]
    Io {
        /// What the pool was doing.
        context: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
}

impl Error {
    /// The failed task's error, if this is [`Error::Task`].
    pub fn task_error(&self) -> Option<&TaskError> {
        match self {
            Error::Task { error, .. } => Some(error),
            _ => None,
        }
    }
}

/// `Result` with the pool's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
