//! Starting worker processes: `Spawn` (re-execute this program), `ForkServer` (a
//! spawned server that forks workers) and `Fork` (fork a server from this process),
//! and the handshake every new worker goes through.
//!
//! A spawned worker (and a fork server) connects back to a fresh listening Unix
//! socket (abstract namespace on Linux) named in its ticket, and proves with the
//! ticket's random token that it is the process the pool started: no descriptor
//! has to survive `exec`. A forked worker needs neither: the pool creates its socket
//! pair and sends one end with the fork request, so the worker serves at once, and
//! the settings go without waiting for its hello.

use std::ffi::OsString;
use std::io;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::error::{Error, TaskError, WorkerExit};
use crate::protocol::{self, FromWorker, PROTOCOL, Ticket, ToWorker, listen};
use crate::sync::lock;
use crate::sys;
use crate::worker::{self, MARKER, Role};

use super::child::{OnStart, WorkerProcess};
use super::fork_server::{ForkServer, ForkServerProcess, io_err, start_error};
use super::spawner::Spawner;

/// How the pool starts its worker processes, by Python's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum StartMethod {
    /// Start each worker by executing this program again (`current_exe`); the
    /// pre-main hook turns it into a worker. Safe in any process: the default.
    #[default]
    Spawn,
    /// Spawn one server process at pool start, and fork every worker from it: fast
    /// worker starts, safe in multi-threaded programs (the server has one thread).
    ForkServer,
    /// Fork a server from this process at pool start (so workers inherit its
    /// memory, like Python's `fork`), and fork workers from that server. Refused
    /// with [`Error::ForkUnsafe`] when this process runs more than one thread.
    Fork,
}

/// Settings every start needs.
#[derive(Debug, Clone)]
pub(super) struct StartConfig {
    pub(super) exe: PathBuf,
    pub(super) env: Vec<(OsString, OsString)>,
    pub(super) handshake_timeout: Duration,
    pub(super) memory_limit: Option<u64>,
    pub(super) max_frame: u64,
    /// How long a worker polls for its next task before it blocks.
    pub(super) spin: Duration,
    /// How long a worker may hold finished results to send them together.
    pub(super) result_window: Duration,
    pub(super) initializer: Option<dilly::RawFunc>,
}

/// A worker that completed the handshake and ran the initializer.
pub(super) struct Connected {
    pub(super) stream: UnixStream,
    pub(super) proc: WorkerProcess,
}

/// Starts workers with one start method.
pub(super) struct Launcher {
    config: StartConfig,
    method: StartMethod,
    /// The fork server (`ForkServer`, `Fork`); a `ForkServer` one found gone is
    /// replaced by the next start.
    fork_server: Mutex<Option<Arc<ForkServer>>>,
    /// Set by [`Launcher::shutdown`]: no server is replaced after it.
    stopped: std::sync::atomic::AtomicBool,
    next_spawn: AtomicU64,
    /// Starts spawned workers and `ForkServer` servers, from one thread that lives
    /// as long as this launcher (the processes die with the thread that started
    /// them).
    spawner: Spawner,
}

impl Launcher {
    /// Prepares the start method; `Fork` forks its server here, `ForkServer` spawns
    /// it.
    /// What every worker it starts is configured with.
    pub(super) fn config(&self) -> &StartConfig {
        &self.config
    }

    pub(super) fn new(method: StartMethod, config: StartConfig) -> Result<Launcher, Error> {
        let launcher = Launcher {
            fork_server: Mutex::new(None),
            stopped: std::sync::atomic::AtomicBool::new(false),
            method,
            config,
            next_spawn: AtomicU64::new(1),
            spawner: Spawner::default(),
        };
        let fork_server = match method {
            StartMethod::Spawn => None,
            StartMethod::Fork => Some(ForkServer::fork_here()?),
            StartMethod::ForkServer => Some(launcher.spawn_server()?),
        };
        *lock(&launcher.fork_server) = fork_server;
        Ok(launcher)
    }

    /// The fork server to fork from, if the start method has one. A `ForkServer`
    /// server that is gone (killed, or out of memory) is replaced here; a `Fork`
    /// server cannot be, as this process runs the pool's threads now.
    fn fork_server(&self) -> Result<Option<Arc<ForkServer>>, Error> {
        let mut current = lock(&self.fork_server);
        if let Some(fork_server) = current.as_ref()
            && fork_server.is_gone()
            && self.method == StartMethod::ForkServer
            && !self.stopped.load(Ordering::Acquire)
        {
            let fresh = self.spawn_server()?;
            if let Some(old) = current.replace(fresh) {
                old.shutdown();
            }
        }
        Ok(current.clone())
    }

    /// Starts a worker process (spawns it, or has the fork server fork it) without
    /// waiting for it: [`finish`](Launcher::finish) takes it through its handshake,
    /// so that a replacement can start while the worker it replaces still works.
    /// Dropped unfinished, the process is killed.
    pub(super) fn begin(&self) -> Result<Starting, Error> {
        let spawn_id = self.next_spawn.fetch_add(1, Ordering::Relaxed);
        match self.fork_server()? {
            None => {
                let (listener, ticket) = listen(spawn_id)?;
                let guard = KillOnDrop(Some(WorkerProcess::Child(
                    self.command(Role::Worker, &ticket)?,
                )));
                Ok(Starting::Spawned {
                    guard,
                    listener,
                    ticket,
                })
            }
            Some(fork_server) => Ok(Starting::Forked(
                self.request_worker(fork_server, spawn_id)?,
            )),
        }
    }

    /// Takes a started worker (or the error of starting it) through the handshake
    /// and the initializer. `on_start` learns the PID (and the pidfd the launcher
    /// holds, if any) before the initializer runs
    /// (so a `terminate` can kill a worker stuck in it); returning false abandons
    /// the worker. A start that failed because the fork server died is made again
    /// with a new server (`ForkServer`), or explained (`Fork`).
    pub(super) fn finish(
        &self,
        started: Result<Starting, Error>,
        on_start: &OnStart<'_>,
    ) -> Result<Connected, Error> {
        let error = match started.and_then(|s| self.handshake(s, on_start)) {
            Ok(connected) => return Ok(connected),
            Err(error) => error,
        };
        if !lock(&self.fork_server)
            .as_ref()
            .is_some_and(|z| z.is_gone())
        {
            return Err(error);
        }
        match self.method {
            StartMethod::ForkServer => self.begin().and_then(|s| self.handshake(s, on_start)),
            _ => Err(start_error(
                "the fork server of this `StartMethod::Fork` pool is gone, and this \
                 process, which runs the pool's threads, cannot fork another safely: \
                 build a new pool, or use `StartMethod::ForkServer`, whose server is \
                 replaced"
                    .to_owned(),
            )),
        }
    }

    fn handshake(&self, starting: Starting, on_start: &OnStart<'_>) -> Result<Connected, Error> {
        let (mut guard, mut stream, registry, config_sent) = match starting {
            Starting::Spawned {
                mut guard,
                listener,
                ticket,
            } => {
                if !on_start(guard.proc().pid(), guard.proc().pidfd()) {
                    return Err(Error::Closed);
                }
                let (stream, registry) = self.accept(&listener, &ticket, guard.proc())?;
                (guard, stream, registry, false)
            }
            Starting::Forked(pending) => {
                let (mut guard, stream, registry) = self.forked_hello(pending)?;
                if !on_start(guard.proc().pid(), guard.proc().pidfd()) {
                    return Err(Error::Closed);
                }
                (guard, stream, registry, true)
            }
        };
        let parent = dilly::registry::fingerprint();
        if registry != parent {
            let _ = protocol::write_frame(&stream, &ToWorker::Reject.encode().map_err(io_err)?);
            return Err(Error::RegistryMismatch {
                parent,
                worker: registry,
            });
        }
        if !config_sent {
            protocol::write_frame(&stream, &self.worker_config().encode().map_err(io_err)?)
                .map_err(|e| {
                    start_error(format!("the worker hung up during the handshake: {e}"))
                })?;
        }
        stream.set_read_timeout(None).map_err(io_err)?;
        match read_message(&mut stream) {
            Ok(FromWorker::Ready) => {}
            Ok(FromWorker::InitFailed(err)) => {
                return Err(Error::Initializer { error: err });
            }
            Ok(other) => {
                return Err(start_error(format!(
                    "unexpected {other:?} from a new worker"
                )));
            }
            Err(_) => {
                let pid = guard.proc().pid();
                let exit = guard.proc().wait_or_kill(Duration::from_secs(2));
                let error = TaskError::WorkerDied {
                    pid,
                    exit,
                    memory_limited: self.config.memory_limit.is_some(),
                };
                return Err(if self.config.initializer.is_some() {
                    Error::Initializer { error }
                } else {
                    start_error(format!("{error}"))
                });
            }
        }
        let proc = guard.0.take().expect("the guard holds the process");
        Ok(Connected { stream, proc })
    }

    /// The settings a new worker gets in the handshake.
    fn worker_config(&self) -> ToWorker {
        ToWorker::Config(protocol::Config {
            registry: dilly::registry::fingerprint(),
            memory_limit: self.config.memory_limit,
            max_frame: self.config.max_frame,
            spin: self.config.spin,
            result_window: self.config.result_window,
            initializer: self.config.initializer.clone(),
        })
    }

    /// Has the fork server fork a worker on a fresh socket pair and sends the
    /// settings at once, without waiting for the worker's hello.
    fn request_worker(
        &self,
        fork_server: Arc<ForkServer>,
        spawn_id: u64,
    ) -> Result<PendingFork, Error> {
        let (stream, theirs) = UnixStream::pair().map_err(|source| Error::Io {
            context: "cannot create a new worker's socket pair",
            source,
        })?;
        fork_server.request_fork(spawn_id, &theirs)?;
        // The server and the worker hold their own copies now; with ours closed, the
        // stream ends as soon as both are gone.
        drop(theirs);
        let pending = PendingFork {
            fork_server,
            spawn_id,
            stream: Some(stream),
        };
        // Unread until the worker runs; a worker that dies first just leaves it.
        if let Some(stream) = &pending.stream {
            let _ = protocol::write_frame(stream, &self.worker_config().encode().map_err(io_err)?);
        }
        Ok(pending)
    }

    /// Reads a forked worker's hello: one wake-up of this thread when there is no
    /// initializer (the worker writes its hello and `Ready` together).
    fn forked_hello(
        &self,
        mut pending: PendingFork,
    ) -> Result<(KillOnDrop, UnixStream, dilly::registry::RegistryFingerprint), Error> {
        let mut stream = pending.stream.take().expect("an unfinished fork");
        let fork_server = Arc::clone(&pending.fork_server);
        let spawn_id = pending.spawn_id;
        stream
            .set_read_timeout(Some(self.config.handshake_timeout))
            .map_err(io_err)?;
        match check_hello(read_message(&mut stream), &Ticket::forked(spawn_id)) {
            Ok((pid, registry)) => {
                fork_server.claim(spawn_id);
                let guard = KillOnDrop(Some(WorkerProcess::Forked {
                    pid,
                    fork_server,
                    exited: None,
                    pidfd: sys::pidfd(pid),
                }));
                Ok((guard, stream, registry))
            }
            Err(HelloFailed::Invalid(error)) => {
                fork_server.abandon(spawn_id);
                Err(error)
            }
            Err(HelloFailed::Read(read)) => Err(fork_server.explain_missing_hello(
                spawn_id,
                &read,
                self.config.handshake_timeout,
            )),
        }
    }

    fn command(&self, role: Role, ticket: &Ticket) -> Result<Child, Error> {
        let mut command = Command::new(&self.config.exe);
        // Keep the program's own name in `argv[0]` (`/proc/self/exe` would show in
        // `ps` and in messages otherwise).
        if let Some(arg0) = std::env::args_os().next() {
            use std::os::unix::process::CommandExt;
            command.arg0(arg0);
        }
        command
            // A harness or argument parser that sees this flag stops at once should
            // the pre-main hook be missing, instead of running the program again.
            .arg("--dilly-pool-worker")
            .env(MARKER, worker::marker_value(role, ticket))
            .envs(self.config.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null());
        let bind_now_set = std::env::var_os(worker::BIND_NOW).is_some()
            || self.config.env.iter().any(|(k, _)| k == worker::BIND_NOW);
        if role == Role::Server && !bind_now_set {
            command
                .env(worker::BIND_NOW, "1")
                .env(worker::SET_BIND_NOW, "1");
        }
        self.spawner
            .spawn(command)
            .map_err(|e| start_error(format!("cannot execute {}: {e}", self.config.exe.display())))
    }

    /// Waits for the spawned process to connect and say a valid hello.
    fn accept(
        &self,
        listener: &UnixListener,
        ticket: &Ticket,
        proc: &mut WorkerProcess,
    ) -> Result<(UnixStream, dilly::registry::RegistryFingerprint), Error> {
        use std::os::fd::AsFd;
        let deadline = Instant::now() + self.config.handshake_timeout;
        // The child's end wakes the wait too where a pidfd is available; elsewhere
        // its status is looked at every few milliseconds.
        let pidfd = sys::pidfd(proc.pid());
        let mut stream = loop {
            match listener.accept() {
                Ok((stream, _)) => break stream,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(start_error(format!("accept failed: {e}"))),
            }
            if let Some(exit) = proc.try_status() {
                return Err(ended_before_hello(proc.pid(), exit));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(start_error(format!(
                    "the new worker process {} did not connect within {:?}",
                    proc.pid(),
                    self.config.handshake_timeout
                )));
            }
            let mut fds = vec![listener.as_fd()];
            let slice = match &pidfd {
                Some(fd) => {
                    fds.push(fd.as_fd());
                    left
                }
                None => left.min(ACCEPT_TICK),
            };
            sys::poll_readable(&fds, Some(slice))
                .map_err(|e| start_error(format!("waiting for a new worker failed: {e}")))?;
        };
        stream.set_nonblocking(false).map_err(io_err)?;
        let left = deadline.saturating_duration_since(Instant::now());
        stream
            .set_read_timeout(Some(left.max(Duration::from_millis(100))))
            .map_err(io_err)?;
        match check_hello(read_message(&mut stream), ticket) {
            Ok((_, registry)) => Ok((stream, registry)),
            Err(HelloFailed::Invalid(error)) => Err(error),
            Err(HelloFailed::Read(e)) => {
                Err(start_error(format!("no hello from the new worker: {e}")))
            }
        }
    }

    /// `ForkServer`: spawns the server and waits for its hello.
    fn spawn_server(&self) -> Result<Arc<ForkServer>, Error> {
        let spawn_id = self.next_spawn.fetch_add(1, Ordering::Relaxed);
        let (listener, ticket) = listen(spawn_id)?;
        let child = self.command(Role::Server, &ticket)?;
        let mut proc = KillOnDrop(Some(WorkerProcess::Child(child)));
        let (stream, registry) = self.accept(&listener, &ticket, proc.proc())?;
        let parent = dilly::registry::fingerprint();
        if registry != parent {
            return Err(Error::RegistryMismatch {
                parent,
                worker: registry,
            });
        }
        stream.set_read_timeout(None).map_err(io_err)?;
        let Some(WorkerProcess::Child(child)) = proc.0.take() else {
            unreachable!("the server is a spawned child")
        };
        ForkServer::start(stream, ForkServerProcess::Child(child))
    }

    /// Stops the fork server, if any.
    pub(super) fn shutdown(&self) {
        // Under the lock: a replacement being started is finished and then shut.
        let current = lock(&self.fork_server);
        self.stopped.store(true, Ordering::Release);
        if let Some(fork_server) = current.as_ref() {
            fork_server.shutdown();
        }
    }
}

/// A worker process started by [`Launcher::begin`], its handshake not read yet.
pub(super) enum Starting {
    Spawned {
        guard: KillOnDrop,
        listener: UnixListener,
        ticket: Ticket,
    },
    Forked(PendingFork),
}

/// A fork requested from the fork server, with the pool's end of the worker's
/// socket. Dropped before its hello was read, the worker is killed.
pub(super) struct PendingFork {
    fork_server: Arc<ForkServer>,
    spawn_id: u64,
    /// Taken when the hello is read.
    stream: Option<UnixStream>,
}

impl Drop for PendingFork {
    fn drop(&mut self) {
        if self.stream.take().is_some() {
            self.fork_server.abandon(self.spawn_id);
        }
    }
}

/// Why a hello was not accepted.
enum HelloFailed {
    /// None came: the stream ended, timed out or broke.
    Read(io::Error),
    /// One came, from the wrong process or protocol.
    Invalid(Error),
}

/// The PID and registry fingerprint of a valid hello for `ticket`.
fn check_hello(
    message: io::Result<FromWorker>,
    ticket: &Ticket,
) -> Result<(u32, dilly::registry::RegistryFingerprint), HelloFailed> {
    match message {
        Ok(FromWorker::Hello {
            protocol: PROTOCOL,
            pid,
            spawn_id,
            token,
            registry,
        }) if spawn_id == ticket.spawn_id && token == ticket.token => Ok((pid, registry)),
        Ok(FromWorker::Hello { protocol, .. }) if protocol != PROTOCOL => {
            Err(HelloFailed::Invalid(start_error(format!(
                "the worker speaks protocol {protocol}, this process {PROTOCOL}"
            ))))
        }
        Ok(_) => Err(HelloFailed::Invalid(start_error(
            "a process connected with a wrong ticket".to_owned(),
        ))),
        Err(e) => Err(HelloFailed::Read(e)),
    }
}

/// A new worker ended before it said hello.
fn ended_before_hello(pid: u32, exit: WorkerExit) -> Error {
    start_error(format!(
        "the new worker process {pid} ended ({exit}) before connecting; if it ran \
         the program's `main`, the dilly-pool pre-main hook is missing: enable \
         the `auto-worker` feature or call `dilly_pool::serve_if_worker()` first \
         thing in `main`"
    ))
}

/// How often a pool waiting for a spawned worker to connect looks whether it ended,
/// where no pidfd wakes the wait (a connection wakes it at once).
const ACCEPT_TICK: Duration = Duration::from_millis(5);

/// Kills a started process unless the handshake succeeded.
pub(super) struct KillOnDrop(Option<WorkerProcess>);

impl KillOnDrop {
    fn proc(&mut self) -> &mut WorkerProcess {
        self.0.as_mut().expect("the guard holds the process")
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(mut proc) = self.0.take() {
            proc.kill();
            proc.reap();
        }
    }
}

fn read_message(stream: &mut UnixStream) -> io::Result<FromWorker> {
    match protocol::read_frame(stream, protocol::CONTROL_FRAME_LIMIT)? {
        Some(body) => FromWorker::decode(&body),
        None => Err(io::ErrorKind::UnexpectedEof.into()),
    }
}
