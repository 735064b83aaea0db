//! Starting worker processes: `Spawn` (re-execute this program), `ForkServer` (a
//! spawned server that forks workers) and `Fork` (fork a server from this process),
//! and the handshake every new worker goes through.
//!
//! A spawned worker (and a fork server) connects back to a fresh listening Unix
//! socket (abstract namespace on Linux) named in its ticket, and proves with the
//! ticket's random token that it is the process the pool started: no descriptor
//! has to survive `exec`. A forked worker needs neither: the pool creates its socket
//! pair and sends one end with the fork request, so the worker serves at once, and
//! the settings go without waiting for its hello (see `worker::Handshake`).

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::io::{self, Read};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::error::{Error, TaskError, WorkerExit};
use crate::protocol::{self, FromWorker, PROTOCOL, Ticket, ToWorker};
use crate::sys;
use crate::worker::{self, MARKER, Role};

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
pub(crate) struct StartConfig {
    pub(crate) exe: PathBuf,
    pub(crate) env: Vec<(OsString, OsString)>,
    pub(crate) handshake_timeout: Duration,
    pub(crate) memory_limit: Option<u64>,
    pub(crate) max_frame: u64,
    /// How long a worker polls for its next task before it blocks.
    pub(crate) spin: Duration,
    /// How long a worker may hold finished results to send them together.
    pub(crate) result_window: Duration,
    pub(crate) initializer: Option<dilly::RawFunc>,
}

/// A started worker process, parent side.
pub(crate) enum Proc {
    /// Spawned by this process.
    Child(Child),
    /// Forked by a fork server, which reaps it and reports its status (kept in
    /// `exited` once read). Signalled through `pidfd` where there is one (opened
    /// when it said hello), so never another process that got its PID later;
    /// otherwise by PID, unless the server reported it gone.
    Forked {
        pid: u32,
        zygote: Arc<Zygote>,
        exited: Option<WorkerExit>,
        pidfd: Option<std::os::fd::OwnedFd>,
    },
}

/// Told of each new worker process before its initializer runs, with its PID and
/// the pidfd its [`Proc`] holds, if any; returning false abandons the worker.
pub(crate) type OnStart<'a> = dyn Fn(u32, Option<std::os::fd::BorrowedFd<'_>>) -> bool + 'a;

impl Proc {
    pub(crate) fn pid(&self) -> u32 {
        match self {
            Proc::Child(c) => c.id(),
            Proc::Forked { pid, .. } => *pid,
        }
    }

    /// The pidfd held for the process: a forked one's (opened at its hello).
    pub(crate) fn pidfd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        use std::os::fd::AsFd;
        match self {
            Proc::Child(_) => None,
            Proc::Forked { pidfd, .. } => pidfd.as_ref().map(|fd| fd.as_fd()),
        }
    }

    /// `SIGKILL`s the process (if it still runs).
    pub(crate) fn kill(&mut self) {
        match self {
            Proc::Child(c) => {
                let _ = c.kill();
            }
            Proc::Forked {
                pid,
                zygote,
                exited,
                pidfd,
            } => {
                use std::os::fd::AsFd;
                match pidfd {
                    _ if exited.is_some() => {}
                    Some(fd) => sys::pidfd_kill(fd.as_fd()),
                    None => zygote.kill_unless_reaped(*pid),
                }
            }
        }
    }

    pub(crate) fn try_status(&mut self) -> Option<WorkerExit> {
        match self {
            Proc::Child(c) => match c.try_wait() {
                Ok(Some(status)) => Some(WorkerExit::from_status(status)),
                Ok(None) => None,
                Err(_) => Some(WorkerExit::Unknown),
            },
            Proc::Forked {
                pid,
                zygote,
                exited,
                ..
            } => {
                if exited.is_none() {
                    *exited = zygote.exit_status(*pid);
                }
                *exited
            }
        }
    }

    /// How the process ended: waits up to `patience` for it to end by itself, then
    /// kills it and waits for that. Sleeps until the end is known (a pidfd for a
    /// spawned child, the fork server's report for a forked one), never in naps.
    pub(crate) fn status(&mut self, patience: Duration) -> WorkerExit {
        if let Some(status) = self.try_status() {
            return status;
        }
        let deadline = Instant::now() + patience;
        match self {
            Proc::Child(c) => match sys::pidfd(c.id()) {
                Some(fd) => {
                    use std::os::fd::AsFd;
                    loop {
                        let left = deadline.saturating_duration_since(Instant::now());
                        if let Some(status) = self.try_status() {
                            return status;
                        }
                        if left.is_zero() {
                            break;
                        }
                        if sys::poll_readable(&[fd.as_fd()], Some(left)).is_err() {
                            break;
                        }
                    }
                }
                None => {
                    let mut nap = Duration::from_micros(200);
                    loop {
                        if let Some(status) = self.try_status() {
                            return status;
                        }
                        if Instant::now() >= deadline {
                            break;
                        }
                        std::thread::sleep(nap);
                        nap = (nap * 2).min(Duration::from_millis(20));
                    }
                }
            },
            Proc::Forked {
                pid,
                zygote,
                exited,
                ..
            } => {
                if exited.is_none() {
                    *exited = zygote.wait_exit(*pid, patience);
                }
                if let Some(status) = *exited {
                    return status;
                }
            }
        }
        self.kill();
        self.reap()
    }

    /// Waits for a process that was killed (or told to exit).
    pub(crate) fn reap(&mut self) -> WorkerExit {
        match self {
            Proc::Child(c) => c
                .wait()
                .map(WorkerExit::from_status)
                .unwrap_or(WorkerExit::Unknown),
            Proc::Forked {
                pid,
                zygote,
                exited,
                ..
            } => {
                if exited.is_none() {
                    *exited = Some(
                        zygote
                            .wait_exit(*pid, Duration::from_secs(5))
                            .unwrap_or(WorkerExit::Unknown),
                    );
                }
                exited.unwrap_or(WorkerExit::Unknown)
            }
        }
    }
}

/// A worker that completed the handshake and ran the initializer.
pub(crate) struct Connected {
    pub(crate) stream: UnixStream,
    pub(crate) proc: Proc,
}

/// Starts workers with one start method.
pub(crate) struct Launcher {
    config: StartConfig,
    method: StartMethod,
    /// The fork server (`ForkServer`, `Fork`); a `ForkServer` one found gone is
    /// replaced by the next start.
    zygote: Mutex<Option<Arc<Zygote>>>,
    /// Set by [`Launcher::shutdown`]: no server is replaced after it.
    stopped: std::sync::atomic::AtomicBool,
    next_spawn: AtomicU64,
}

impl Launcher {
    /// Prepares the start method; `Fork` forks its server here, `ForkServer` spawns
    /// it.
    pub(crate) fn new(method: StartMethod, config: StartConfig) -> Result<Launcher, Error> {
        let launcher = Launcher {
            zygote: Mutex::new(None),
            stopped: std::sync::atomic::AtomicBool::new(false),
            method,
            config,
            next_spawn: AtomicU64::new(1),
        };
        let zygote = match method {
            StartMethod::Spawn => None,
            StartMethod::Fork => Some(Zygote::fork_here()?),
            StartMethod::ForkServer => Some(launcher.spawn_server()?),
        };
        *lock(&launcher.zygote) = zygote;
        Ok(launcher)
    }

    /// The fork server to fork from, if the start method has one. A `ForkServer`
    /// server that is gone (killed, or out of memory) is replaced here; a `Fork`
    /// server cannot be, as this process runs the pool's threads now.
    fn zygote(&self) -> Result<Option<Arc<Zygote>>, Error> {
        let mut current = lock(&self.zygote);
        if let Some(zygote) = current.as_ref() {
            if zygote.is_gone()
                && self.method == StartMethod::ForkServer
                && !self.stopped.load(Ordering::Acquire)
            {
                let fresh = self.spawn_server()?;
                if let Some(old) = current.replace(fresh) {
                    old.shutdown();
                }
            }
        }
        Ok(current.clone())
    }

    /// Starts a worker process (spawns it, or has the fork server fork it) without
    /// waiting for it: [`finish`](Launcher::finish) takes it through its handshake,
    /// so that a replacement can start while the worker it replaces still works.
    /// Dropped unfinished, the process is killed.
    pub(crate) fn begin(&self) -> Result<Starting, Error> {
        let spawn_id = self.next_spawn.fetch_add(1, Ordering::Relaxed);
        match self.zygote()? {
            None => {
                let (listener, ticket) = listen(spawn_id)?;
                let guard = KillOnDrop(Some(Proc::Child(self.command(Role::Worker, &ticket)?)));
                Ok(Starting::Spawned {
                    guard,
                    listener,
                    ticket,
                })
            }
            Some(zygote) => Ok(Starting::Forked(self.request_worker(zygote, spawn_id)?)),
        }
    }

    /// Takes a started worker (or the error of starting it) through the handshake
    /// and the initializer. `on_start` learns the PID (and the pidfd the launcher
    /// holds, if any) before the initializer runs
    /// (so a `terminate` can kill a worker stuck in it); returning false abandons
    /// the worker. A start that failed because the fork server died is made again
    /// with a new server (`ForkServer`), or explained (`Fork`).
    pub(crate) fn finish(
        &self,
        started: Result<Starting, Error>,
        on_start: &OnStart<'_>,
    ) -> Result<Connected, Error> {
        let error = match started.and_then(|s| self.handshake(s, on_start)) {
            Ok(connected) => return Ok(connected),
            Err(error) => error,
        };
        if !lock(&self.zygote).as_ref().is_some_and(|z| z.is_gone()) {
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
                return Err(Error::Initializer {
                    error: crate::pool::task_error(err, self.config.initializer.as_ref()),
                });
            }
            Ok(other) => {
                return Err(start_error(format!(
                    "unexpected {other:?} from a new worker"
                )));
            }
            Err(_) => {
                let pid = guard.proc().pid();
                let exit = guard.proc().status(Duration::from_secs(2));
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
    fn request_worker(&self, zygote: Arc<Zygote>, spawn_id: u64) -> Result<PendingFork, Error> {
        let (stream, theirs) = UnixStream::pair().map_err(|source| Error::Io {
            context: "cannot create a new worker's socket pair",
            source,
        })?;
        zygote.request_fork(spawn_id, &theirs)?;
        // The server and the worker hold their own copies now; with ours closed, the
        // stream ends as soon as both are gone.
        drop(theirs);
        let pending = PendingFork {
            zygote,
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
        let zygote = Arc::clone(&pending.zygote);
        let spawn_id = pending.spawn_id;
        stream
            .set_read_timeout(Some(self.config.handshake_timeout))
            .map_err(io_err)?;
        match check_hello(read_message(&mut stream), &Ticket::forked(spawn_id)) {
            Ok((pid, registry)) => {
                zygote.claim(spawn_id);
                let guard = KillOnDrop(Some(Proc::Forked {
                    pid,
                    zygote,
                    exited: None,
                    pidfd: sys::pidfd(pid),
                }));
                Ok((guard, stream, registry))
            }
            Err(HelloFailed::Invalid(error)) => {
                zygote.abandon(spawn_id);
                Err(error)
            }
            Err(HelloFailed::Read(read)) => {
                Err(zygote.explain_missing_hello(spawn_id, &read, self.config.handshake_timeout))
            }
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
        command
            .spawn()
            .map_err(|e| start_error(format!("cannot execute {}: {e}", self.config.exe.display())))
    }

    /// Waits for the spawned process to connect and say a valid hello.
    fn accept(
        &self,
        listener: &UnixListener,
        ticket: &Ticket,
        proc: &mut Proc,
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
    fn spawn_server(&self) -> Result<Arc<Zygote>, Error> {
        let spawn_id = self.next_spawn.fetch_add(1, Ordering::Relaxed);
        let (listener, ticket) = listen(spawn_id)?;
        let child = self.command(Role::Server, &ticket)?;
        let mut proc = KillOnDrop(Some(Proc::Child(child)));
        let (stream, registry) = self.accept(&listener, &ticket, proc.proc())?;
        let parent = dilly::registry::fingerprint();
        if registry != parent {
            return Err(Error::RegistryMismatch {
                parent,
                worker: registry,
            });
        }
        stream.set_read_timeout(None).map_err(io_err)?;
        let Some(Proc::Child(child)) = proc.0.take() else {
            unreachable!("the server is a spawned child")
        };
        Zygote::start(stream, ZygoteProc::Child(child))
    }

    /// Stops the fork server, if any.
    pub(crate) fn shutdown(&self) {
        // Under the lock: a replacement being started is finished and then shut.
        let current = lock(&self.zygote);
        self.stopped.store(true, Ordering::Release);
        if let Some(zygote) = current.as_ref() {
            zygote.shutdown();
        }
    }
}

/// A worker process started by [`Launcher::begin`], its handshake not read yet.
pub(crate) enum Starting {
    Spawned {
        guard: KillOnDrop,
        listener: UnixListener,
        ticket: Ticket,
    },
    Forked(PendingFork),
}

/// A fork requested from the fork server, with the pool's end of the worker's
/// socket. Dropped before its hello was read, the worker is killed.
pub(crate) struct PendingFork {
    zygote: Arc<Zygote>,
    spawn_id: u64,
    /// Taken when the hello is read.
    stream: Option<UnixStream>,
}

impl Drop for PendingFork {
    fn drop(&mut self) {
        if self.stream.take().is_some() {
            self.zygote.abandon(self.spawn_id);
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
pub(crate) struct KillOnDrop(Option<Proc>);

impl KillOnDrop {
    fn proc(&mut self) -> &mut Proc {
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

fn start_error(reason: String) -> Error {
    Error::WorkerStart { reason }
}

fn io_err(source: io::Error) -> Error {
    Error::Io {
        context: "talking to a new worker",
        source,
    }
}

fn read_message(stream: &mut UnixStream) -> io::Result<FromWorker> {
    match protocol::read_frame(stream, 1 << 20)? {
        Some(body) => FromWorker::decode(&body),
        None => Err(io::ErrorKind::UnexpectedEof.into()),
    }
}

/// 16 random bytes from the OS (falling back to hashed time and IDs).
fn random_token() -> [u8; 16] {
    let mut token = [0u8; 16];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut token))
        .is_ok()
    {
        return token;
    }
    use std::hash::{BuildHasher, Hasher};
    for half in token.chunks_mut(8) {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
        );
        h.write_u32(std::process::id());
        half.copy_from_slice(&h.finish().to_le_bytes());
    }
    token
}

/// A fresh non-blocking listener and the ticket naming it.
fn listen(spawn_id: u64) -> Result<(UnixListener, Ticket), Error> {
    let token = random_token();
    let nonce: String = token[..6].iter().map(|b| format!("{b:02x}")).collect();
    let name = format!("dilly-pool/{}/{spawn_id}/{nonce}", std::process::id());
    let listener = bind(&name).map_err(|source| Error::Io {
        context: "cannot listen for a new worker",
        source,
    })?;
    listener.set_nonblocking(true).map_err(io_err)?;
    Ok((
        listener,
        Ticket {
            address: address_bytes(&name),
            spawn_id,
            token,
        },
    ))
}

#[cfg(target_os = "linux")]
fn bind(name: &str) -> io::Result<UnixListener> {
    use std::os::linux::net::SocketAddrExt;
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
    UnixListener::bind_addr(&addr)
}

#[cfg(target_os = "linux")]
fn address_bytes(name: &str) -> Vec<u8> {
    name.as_bytes().to_vec()
}

#[cfg(not(target_os = "linux"))]
fn socket_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(name.replace('/', "-"))
}

#[cfg(not(target_os = "linux"))]
fn bind(name: &str) -> io::Result<UnixListener> {
    let path = socket_path(name);
    let _ = std::fs::remove_file(&path);
    UnixListener::bind(path)
}

#[cfg(not(target_os = "linux"))]
fn address_bytes(name: &str) -> Vec<u8> {
    use std::os::unix::ffi::OsStrExt;
    socket_path(name).as_os_str().as_bytes().to_vec()
}

/// The server process itself.
enum ZygoteProc {
    Child(Child),
    Forked(u32),
}

/// The parent's side of a fork server.
///
/// The server's reports (each fork's PID, each reaped worker's status) are read
/// when somebody needs one, not by a thread of ours sleeping on the stream: a
/// worker start makes two reports, and waking a thread for each cost a tenth of a
/// `ForkServer` start on 2 cores. Each start reads what has arrived before it
/// asks for a fork, so unread reports never fill the stream.
pub(crate) struct Zygote {
    control: Mutex<UnixStream>,
    reports: Mutex<Reports>,
    /// Signalled when the waiter that sleeps on the stream for all of them
    /// ([`Reports::watched`]) read what came, or stopped sleeping.
    changed: Condvar,
    /// The control stream for reading: without blocking, under `reports`' lock,
    /// and in `poll`, outside it. (Not `O_NONBLOCK`, which the copy that sends
    /// requests would share.)
    incoming: std::os::fd::OwnedFd,
    process: Mutex<Option<ZygoteProc>>,
}

/// The server's reports received so far, and what they say.
struct Reports {
    /// Received bytes not yet a whole report.
    pending: Vec<u8>,
    /// Fork reports (spawn ID → PID, 0 if the fork failed) not yet claimed.
    forked: HashMap<u64, u32>,
    /// Spawn IDs whose workers said hello before the server's report came.
    claimed: HashSet<u64>,
    exited: HashMap<u32, i32>,
    gone: bool,
    /// A waiter sleeps in `poll` on the stream; the others wait for `changed`.
    watched: bool,
}

impl Reports {
    /// Reads whatever the server sent on `incoming`, without blocking.
    fn pump(&mut self, incoming: std::os::fd::BorrowedFd<'_>) {
        use rustix::io::Errno;
        let mut chunk = [0u8; 4096];
        while !self.gone {
            match rustix::net::recv(incoming, &mut chunk[..], rustix::net::RecvFlags::DONTWAIT) {
                Ok((0, _)) => self.gone = true,
                Ok((n, _)) => self.pending.extend_from_slice(&chunk[..n]),
                Err(Errno::AGAIN) => break,
                Err(Errno::INTR) => {}
                Err(_) => self.gone = true,
            }
        }
        loop {
            match protocol::take_frame(&mut self.pending, 1 << 20) {
                Ok(Some(body)) => match FromWorker::decode(&body) {
                    Ok(FromWorker::Forked { spawn_id, pid }) => {
                        if !self.claimed.remove(&spawn_id) {
                            self.forked.insert(spawn_id, pid);
                        }
                    }
                    Ok(FromWorker::Exited { pid, status }) => {
                        self.exited.insert(pid, status);
                    }
                    // Nothing else comes from a sane server.
                    _ => self.gone = true,
                },
                Ok(None) => return,
                Err(_) => {
                    self.gone = true;
                    return;
                }
            }
        }
    }
}

impl Zygote {
    /// `Fork`: forks the server from this (single-threaded) process.
    fn fork_here() -> Result<Arc<Zygote>, Error> {
        let (ours, theirs) = UnixStream::pair().map_err(|source| Error::Io {
            context: "cannot create the fork server's socket pair",
            source,
        })?;
        match sys::fork_single_threaded() {
            Ok(None) => {
                drop(ours);
                sys::exit_now(worker::zygote(theirs));
            }
            Ok(Some(pid)) => {
                drop(theirs);
                Zygote::start(ours, ZygoteProc::Forked(pid))
            }
            Err(sys::ForkRefused::Threads(threads)) => Err(Error::ForkUnsafe { threads }),
            Err(sys::ForkRefused::Uncountable) => Err(Error::Unsupported {
                what: "StartMethod::Fork without /proc/self/task to count threads",
            }),
            Err(sys::ForkRefused::Os(source)) => Err(Error::Io {
                context: "fork failed",
                source,
            }),
        }
    }

    fn start(stream: UnixStream, process: ZygoteProc) -> Result<Arc<Zygote>, Error> {
        let incoming = std::os::fd::OwnedFd::from(stream.try_clone().map_err(io_err)?);
        Ok(Arc::new(Zygote {
            control: Mutex::new(stream),
            reports: Mutex::new(Reports {
                pending: Vec::new(),
                forked: HashMap::new(),
                claimed: HashSet::new(),
                exited: HashMap::new(),
                gone: false,
                watched: false,
            }),
            changed: Condvar::new(),
            incoming,
            process: Mutex::new(Some(process)),
        }))
    }

    /// The reports, with everything the server sent so far read.
    fn reports(&self) -> std::sync::MutexGuard<'_, Reports> {
        use std::os::fd::AsFd;
        let mut reports = lock(&self.reports);
        reports.pump(self.incoming.as_fd());
        reports
    }

    /// Waits until `found` finds what it looks for in the reports (it may take it
    /// out): `Err(true)` if the server is gone first, `Err(false)` if `patience`
    /// runs out. One waiter sleeps in `poll` on the stream and wakes the others
    /// once it has read what came, so no waiter sleeps through its report.
    fn wait_for<T>(
        &self,
        patience: Duration,
        mut found: impl FnMut(&mut Reports) -> Option<T>,
    ) -> Result<T, bool> {
        use std::os::fd::AsFd;
        let deadline = Instant::now() + patience;
        let mut reports = self.reports();
        loop {
            if let Some(value) = found(&mut reports) {
                return Ok(value);
            }
            if reports.gone {
                return Err(true);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(false);
            }
            if reports.watched {
                reports = self
                    .changed
                    .wait_timeout(reports, left)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
                reports.pump(self.incoming.as_fd());
            } else {
                reports.watched = true;
                drop(reports);
                let _ = sys::poll_readable(&[self.incoming.as_fd()], Some(left));
                reports = self.reports();
                reports.watched = false;
                self.changed.notify_all();
            }
        }
    }

    /// Asks the server to fork a worker that serves on `socket` (the server gets its
    /// own copy of the descriptor with the request).
    fn request_fork(&self, spawn_id: u64, socket: &UnixStream) -> Result<(), Error> {
        use std::os::fd::AsFd;
        let frame = ToWorker::Fork { spawn_id }.encode().map_err(io_err)?;
        sys::send_with_fd(&lock(&self.control), &frame, socket.as_fd()).map_err(|e| {
            // It no longer reads its requests, whether or not its end was seen yet.
            self.set_gone();
            start_error(format!("the fork server is gone: {e}"))
        })
    }

    /// Whether the server is known to be gone.
    fn is_gone(&self) -> bool {
        self.reports().gone
    }

    fn set_gone(&self) {
        self.reports().gone = true;
        self.changed.notify_all();
    }

    /// The worker of `spawn_id` said hello, with its PID: the server's report of the
    /// fork is not needed (dropped now, or when it comes).
    fn claim(&self, spawn_id: u64) {
        let mut reports = self.reports();
        if reports.forked.remove(&spawn_id).is_none() {
            reports.claimed.insert(spawn_id);
        }
    }

    /// Kills the worker of `spawn_id`, if it was forked, and forgets it.
    fn abandon(&self, spawn_id: u64) {
        if let Ok(pid) = self.forked_pid(spawn_id) {
            self.kill_unless_reaped(pid);
            let _ = self.wait_exit(pid, Duration::from_secs(2));
        }
    }

    /// Kills forked worker `pid` by PID, unless the server has reported it
    /// reaped (its PID may belong to another process by then).
    fn kill_unless_reaped(&self, pid: u32) {
        if !self.has_exited(pid) {
            sys::kill(pid);
        }
    }

    /// Why the worker of `spawn_id` sent no hello (`read` is what reading it gave):
    /// the server could not fork, is gone, or the worker ended or hung — then it is
    /// killed. Consumes the fork and exit reports.
    fn explain_missing_hello(&self, spawn_id: u64, read: &io::Error, timeout: Duration) -> Error {
        let pid = match self.forked_pid(spawn_id) {
            Ok(pid) => pid,
            Err(error) => return error,
        };
        let timed_out = matches!(
            read.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
        );
        if timed_out {
            self.kill_unless_reaped(pid);
        }
        match self.wait_exit(pid, Duration::from_secs(2)) {
            _ if timed_out => start_error(format!(
                "the new worker process {pid} did not say hello within {timeout:?}"
            )),
            Some(exit) => start_error(format!(
                "the new worker process {pid} ended ({exit}) before its hello"
            )),
            None => start_error(format!(
                "the new worker process {pid} sent no hello: {read}"
            )),
        }
    }

    /// The PID the server reported for a fork request, waiting for the report.
    fn forked_pid(&self, spawn_id: u64) -> Result<u32, Error> {
        match self.wait_for(Duration::from_secs(30), |r| r.forked.remove(&spawn_id)) {
            Ok(0) => Err(start_error("the fork server could not fork".to_owned())),
            Ok(pid) => Ok(pid),
            Err(true) => Err(start_error("the fork server is gone".to_owned())),
            Err(false) => Err(start_error("the fork server did not answer".to_owned())),
        }
    }

    fn has_exited(&self, pid: u32) -> bool {
        self.reports().exited.contains_key(&pid)
    }

    /// The reported status of `pid`, consumed (each worker's status is read once).
    fn exit_status(&self, pid: u32) -> Option<WorkerExit> {
        let mut reports = self.reports();
        match reports.exited.remove(&pid) {
            Some(raw) => Some(WorkerExit::from_raw(raw)),
            None if reports.gone => Some(WorkerExit::Unknown),
            None => None,
        }
    }

    fn wait_exit(&self, pid: u32, patience: Duration) -> Option<WorkerExit> {
        self.wait_for(patience, |r| r.exited.remove(&pid))
            .ok()
            .map(WorkerExit::from_raw)
    }

    fn shutdown(&self) {
        let control = lock(&self.control);
        let _ = control.shutdown(std::net::Shutdown::Both);
        drop(control);
        if let Some(process) = lock(&self.process).take() {
            match process {
                ZygoteProc::Child(mut child) => {
                    let _ = child.kill();
                    let _ = child.wait();
                }
                ZygoteProc::Forked(pid) => {
                    // It exits when its control stream closes; make sure.
                    sys::kill(pid);
                    sys::wait_pid(pid);
                }
            }
        }
    }
}

/// Locks, ignoring poisoning (the pool's state stays consistent across panics in
/// user callbacks, which never run under these locks).
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `Zygote` whose "server" is the returned stream (no process behind it).
    fn fake_server() -> (Arc<Zygote>, UnixStream) {
        let (ours, server) = UnixStream::pair().unwrap();
        // A PID that is never signalled: the test never shuts this zygote down.
        let zygote = Zygote::start(ours, ZygoteProc::Forked(u32::MAX)).unwrap();
        (zygote, server)
    }

    fn report(server: &UnixStream, msg: FromWorker) {
        protocol::write_frame(server, &msg.encode().unwrap()).unwrap();
    }

    #[test]
    fn reports_are_read_when_asked_for_and_reach_every_waiter() {
        let (zygote, server) = fake_server();
        // Read without waiting, in pieces as they come.
        report(
            &server,
            FromWorker::Forked {
                spawn_id: 1,
                pid: 41,
            },
        );
        assert_eq!(zygote.forked_pid(1).unwrap(), 41);
        let frame = FromWorker::Exited { pid: 41, status: 0 }.encode().unwrap();
        sys::send_all(&server, &frame[..3]).unwrap();
        assert_eq!(zygote.exit_status(41), None);
        sys::send_all(&server, &frame[3..]).unwrap();
        assert!(zygote.has_exited(41));
        assert_eq!(zygote.exit_status(41), Some(WorkerExit::from_raw(0)));
        // Several waiters: one sleeps on the stream, the others on the condition
        // variable; each gets its own report, whichever of them read it.
        let waiters: Vec<_> = (100..104u32)
            .map(|pid| {
                let zygote = Arc::clone(&zygote);
                std::thread::spawn(move || zygote.wait_exit(pid, Duration::from_secs(30)))
            })
            .collect();
        std::thread::sleep(Duration::from_millis(50));
        for pid in (100..104u32).rev() {
            report(&server, FromWorker::Exited { pid, status: 9 });
            std::thread::sleep(Duration::from_millis(5));
        }
        for waiter in waiters {
            assert_eq!(waiter.join().unwrap(), Some(WorkerExit::from_raw(9)));
        }
        // The end of the stream: the server is gone, and waiters learn it.
        let waiter = {
            let zygote = Arc::clone(&zygote);
            std::thread::spawn(move || zygote.wait_exit(200, Duration::from_secs(30)))
        };
        drop(server);
        assert_eq!(waiter.join().unwrap(), None);
        assert!(zygote.is_gone());
        assert_eq!(zygote.exit_status(200), Some(WorkerExit::Unknown));
    }

    #[test]
    fn a_garbled_report_means_the_server_is_gone() {
        let (zygote, server) = fake_server();
        // A whole frame (length 1) whose tag no message has.
        protocol::write_frame(&server, &[1, 0, 0, 0, 0xff]).unwrap();
        assert!(zygote.is_gone());
        assert!(zygote.forked_pid(3).is_err());
    }
}
