//! The worker side: recognizing a re-executed copy of the program, the serve loop,
//! and the fork server ("zygote") loop shared by `ForkServer` and `Fork`.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Duration;

use dilly::ErasedFunc;

use crate::protocol::{self, AfterRun, FromWorker, PROTOCOL, Ticket, ToWorker, WireError};
use crate::sys;

/// The environment variable that tells a copy of the program to serve.
pub(crate) const MARKER: &str = "DILLY_POOL_WORKER";

/// Set (with [`BIND_NOW`]) in a spawned fork server's environment when the pool
/// set `LD_BIND_NOW` there, so the server takes both out again before it serves.
pub(crate) const SET_BIND_NOW: &str = "DILLY_POOL_SET_BIND_NOW";

/// Makes the dynamic loader resolve every symbol of every library at start. A
/// fork server started so has its workers inherit a resolved program: otherwise
/// each forked worker repeats the lazy symbol lookups of the libraries it calls
/// (the program itself is bound at start already: Rust links with `-z now`), and
/// pays page faults for them. Measured: worker starts 11–17 % faster.
pub(crate) const BIND_NOW: &str = "LD_BIND_NOW";

/// Test aid: a worker started with this variable set to `1` reports a registry
/// fingerprint that differs from its real one, as a stale binary would.
pub(crate) const FAKE_SKEW: &str = "DILLY_POOL_FAKE_REGISTRY_SKEW";

/// Exit code of a worker that finished normally.
const EXIT_OK: i32 = 0;
/// Exit code of a worker that could not reach or talk to its parent.
const EXIT_BROKEN: i32 = 101;

/// What a re-executed copy of the program is asked to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Worker,
    Server,
}

/// Builds the marker's value.
pub(crate) fn marker_value(role: Role, ticket: &Ticket) -> String {
    let role = match role {
        Role::Worker => 'w',
        Role::Server => 's',
    };
    format!(
        "{PROTOCOL}:{role}:{}:{}:{}",
        hex(&ticket.address),
        ticket.spawn_id,
        hex(&ticket.token)
    )
}

fn parse_marker(value: &str) -> Option<(Role, Ticket)> {
    let mut parts = value.split(':');
    if parts.next()?.parse::<u32>().ok()? != PROTOCOL {
        return None;
    }
    let role = match parts.next()? {
        "w" => Role::Worker,
        "s" => Role::Server,
        _ => return None,
    };
    let address = unhex(parts.next()?)?;
    let spawn_id = parts.next()?.parse().ok()?;
    let token: [u8; 16] = unhex(parts.next()?)?.try_into().ok()?;
    Some((
        role,
        Ticket {
            address,
            spawn_id,
            token,
        },
    ))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Serves as a pool worker and exits if this process was started as one; returns
/// at once otherwise.
///
/// With the default `auto-worker` feature a pre-main hook calls this before `main`
/// (or the test harness) runs, so no set-up is needed. Without that feature, call it
/// first thing in `main` — before any output, thread or side effect — so that a
/// worker never runs the rest of `main`:
///
/// ```no_run
/// # #[allow(clippy::needless_doctest_main)]
/// fn main() {
///     dilly_pool::serve_if_worker();
///     // ... the program, which builds pools ...
/// }
/// ```
pub fn serve_if_worker() {
    let Some(value) = std::env::var_os(MARKER) else {
        return;
    };
    sys::forget_marker(MARKER);
    if std::env::var_os(SET_BIND_NOW).is_some() {
        // Binding is done by now; the programs tasks start bind as they would.
        sys::forget_marker(SET_BIND_NOW);
        sys::forget_marker(BIND_NOW);
    }
    let code = match value.to_str().and_then(parse_marker) {
        Some((Role::Worker, ticket)) => run_worker(&ticket),
        Some((Role::Server, ticket)) => run_server(&ticket),
        None => {
            eprintln!(
                "dilly-pool: this process was started as a worker, but the {MARKER} value \
                 {value:?} is not understood (a different dilly-pool version?); exiting"
            );
            EXIT_BROKEN
        }
    };
    sys::exit_now(code);
}

/// Connects to the parent's listener named by `ticket`.
pub(crate) fn connect(ticket: &Ticket) -> io::Result<UnixStream> {
    #[cfg(target_os = "linux")]
    {
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(&ticket.address)?;
        UnixStream::connect_addr(&addr)
    }
    #[cfg(not(target_os = "linux"))]
    {
        use std::os::unix::ffi::OsStrExt;
        UnixStream::connect(std::ffi::OsStr::from_bytes(&ticket.address))
    }
}

/// Whether this process pretends to have another registry ([`FAKE_SKEW`], for
/// tests). Read once: a fork server reads it before its first fork, so that forked
/// workers do not touch the environment (whose lock's page each would copy).
fn fakes_skew() -> bool {
    static FAKES: std::sync::LazyLock<bool> =
        std::sync::LazyLock::new(|| std::env::var_os(FAKE_SKEW).is_some_and(|v| v == "1"));
    *FAKES
}

fn hello(ticket: &Ticket) -> FromWorker {
    let mut registry = dilly::registry::fingerprint();
    if fakes_skew() {
        registry.count += 1;
    }
    FromWorker::Hello {
        protocol: PROTOCOL,
        pid: std::process::id(),
        spawn_id: ticket.spawn_id,
        token: ticket.token,
        registry,
    }
}

fn send(stream: &UnixStream, msg: &FromWorker) -> io::Result<()> {
    protocol::write_frame(stream, &msg.encode()?)
}

/// A worker: connect, handshake, initializer, then tasks until told to exit or
/// until the parent goes away.
pub(crate) fn run_worker(ticket: &Ticket) -> i32 {
    match worker(ticket) {
        Ok(()) => EXIT_OK,
        Err(_) => EXIT_BROKEN,
    }
}

thread_local! {
    /// The last panic's message and location, recorded by the worker's panic hook.
    static LAST_PANIC: RefCell<Option<(String, Option<String>)>> = const { RefCell::new(None) };
}

fn install_panic_hook() {
    panic::set_hook(Box::new(|info| {
        let message = if let Some(s) = info.payload().downcast_ref::<&str>() {
            (*s).to_owned()
        } else if let Some(s) = info.payload().downcast_ref::<String>() {
            s.clone()
        } else {
            "Box<dyn Any>".to_owned()
        };
        let location = info
            .location()
            .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()));
        LAST_PANIC.with(|p| *p.borrow_mut() = Some((message, location)));
    }));
}

fn take_panic() -> WireError {
    let (message, location) = LAST_PANIC
        .with(|p| p.borrow_mut().take())
        .unwrap_or_else(|| ("unknown panic".to_owned(), None));
    WireError::Panicked { message, location }
}

fn load(func: &dilly::RawFunc) -> Result<Arc<dyn ErasedFunc>, WireError> {
    let prepared = panic::catch_unwind(|| func.prepare());
    match prepared {
        Ok(Ok(f)) => Ok(f),
        Ok(Err(dilly::Error::UnknownSymbol { id, .. })) => Err(WireError::UnknownSymbol { id }),
        Ok(Err(other)) => Err(WireError::Load {
            message: other.to_string(),
        }),
        Err(_) => Err(take_panic()),
    }
}

/// Runs a task, its encoded result replacing what `out` held.
fn call(f: &Arc<dyn ErasedFunc>, args: &[u8], out: &mut Vec<u8>) -> Result<(), WireError> {
    out.clear();
    match panic::catch_unwind(AssertUnwindSafe(|| f.call_into(args, out))) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(dilly::Error::Encode { detail, .. })) => Err(WireError::Result { message: detail }),
        Ok(Err(other)) => Err(WireError::Arguments {
            message: other.to_string(),
        }),
        Err(_) => Err(take_panic()),
    }
}

/// A worker forked by a fork server, on the socket the pool sent with the request:
/// handshake, initializer, then tasks.
pub(crate) fn run_forked_worker(stream: UnixStream, spawn_id: u64) -> i32 {
    match serve(stream, &Ticket::forked(spawn_id), Handshake::ConfigFirst) {
        Ok(()) => EXIT_OK,
        Err(_) => EXIT_BROKEN,
    }
}

/// The order of a worker's handshake.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Handshake {
    /// A spawned worker connects and says hello; the pool answers with the settings
    /// once it has checked the hello.
    HelloFirst,
    /// A forked worker's pool sent the settings with its socket, without waiting:
    /// the worker reads them first, then says hello — with `Ready` in the same
    /// write when there is no initializer, so the pool wakes once per start.
    ConfigFirst,
}

fn worker(ticket: &Ticket) -> io::Result<()> {
    serve(connect(ticket)?, ticket, Handshake::HelloFirst)
}

fn serve(stream: UnixStream, ticket: &Ticket, handshake: Handshake) -> io::Result<()> {
    if handshake == Handshake::HelloFirst {
        send(&stream, &hello(ticket))?;
    }
    let mut reader = io::BufReader::with_capacity(64 << 10, stream.try_clone()?);
    let mut limit = dilly::Limits::DEFAULT.max_len as u64;
    let Some(body) = protocol::read_frame(&mut reader, limit)? else {
        return Ok(());
    };
    let config = match ToWorker::decode(&body)? {
        ToWorker::Config(config) => config,
        ToWorker::Reject | ToWorker::Exit => return Ok(()),
        other => {
            return Err(protocol::violation(format!(
                "expected config, got {other:?}"
            )));
        }
    };
    // Frames to send before `Ready` (or with it): a forked worker's hello.
    let mut greeting = match handshake {
        Handshake::HelloFirst => Vec::new(),
        Handshake::ConfigFirst => hello(ticket).encode()?,
    };
    if config.registry != dilly::registry::fingerprint() {
        // The parent refuses us too (it compares our hello); nothing to do.
        return sys::send_all(&stream, &greeting);
    }
    limit = config.max_frame;
    install_panic_hook();
    if let Some(bytes) = config.memory_limit {
        // Best effort: a failure leaves the worker unlimited, which the parent
        // cannot observe; report it on stderr like any worker diagnostic.
        if let Err(err) = sys::set_memory_limit(bytes) {
            eprintln!(
                "dilly-pool: worker {}: cannot set the memory limit: {err}",
                std::process::id()
            );
        }
    }
    if let Some(init) = &config.initializer {
        // The pool learns the PID from the hello before the initializer runs, so
        // that it can kill a worker stuck in it.
        sys::send_all(&stream, &std::mem::take(&mut greeting))?;
        let unit = dilly::to_bytes(&())
            .map(|b| b[1..].to_vec())
            .unwrap_or_default();
        match load(init).and_then(|f| call(&f, &unit, &mut Vec::new())) {
            Ok(_) => send(&stream, &FromWorker::Ready)?,
            Err(err) => {
                send(&stream, &FromWorker::InitFailed(err))?;
                return Ok(());
            }
        }
    } else {
        greeting.extend_from_slice(&FromWorker::Ready.encode()?);
        sys::send_all(&stream, &greeting)?;
    }

    let results = Results::start(stream.try_clone()?, config.result_window);
    let mut funcs: HashMap<u64, Result<Arc<dyn ErasedFunc>, WireError>> = HashMap::new();
    // Each task's result is encoded here first (outside the results lock), reused.
    let mut scratch = Vec::new();
    while let Some(body) = protocol::read_frame(&mut reader, limit)? {
        // The hot message, with its items borrowed from the frame.
        if let Some((key, items)) = protocol::decode_run(&body)? {
            let func = funcs.get(&key).cloned().unwrap_or_else(|| {
                Err(WireError::Load {
                    message: format!("no function loaded under key {key}"),
                })
            });
            if !items.is_empty() {
                results.start_task(items.len() == 1);
            }
            for (n, item) in items.iter().enumerate() {
                let last = n + 1 == items.len();
                let outcome = match &func {
                    Ok(f) => match call(f, item, &mut scratch) {
                        Ok(()) if scratch.len() as u64 > limit => Err(WireError::Result {
                            message: format!(
                                "a result of {} bytes exceeds the frame limit of {limit} \
                                 bytes; raise it with `Builder::max_frame`",
                                scratch.len()
                            ),
                        }),
                        other => other,
                    },
                    Err(err) => Err(err.clone()),
                };
                // The chunk's last result goes out at once, with any before it.
                let next = (!last).then_some(n + 2 == items.len());
                match outcome {
                    Ok(()) => results.finish(Finished::Done(&scratch), last, next)?,
                    Err(err) => {
                        let frame = FromWorker::Failed(err).encode()?;
                        results.finish(Finished::Frame(&frame), last, next)?
                    }
                }
            }
            // Its results are out; a caller waits for them and may send more at
            // once: poll a while before the blocking read, so that a chunk sent
            // soon is taken without a wake-up.
            match protocol::after_run(&body) {
                AfterRun::Spin if !protocol::holds_frame(reader.buffer()) => {
                    sys::spin_until_readable(reader.get_ref().as_fd(), config.spin);
                }
                // Its results are out (the chunk's last one is written at once).
                AfterRun::Exit => return Ok(()),
                _ => {}
            }
            continue;
        }
        match ToWorker::decode(&body)? {
            ToWorker::Load { key, func } => {
                funcs.insert(key, load(&func));
            }
            ToWorker::Clear => funcs.clear(),
            ToWorker::Exit => return Ok(()),
            other => return Err(protocol::violation(format!("unexpected {other:?}"))),
        }
    }
    Ok(())
}

/// How long a finished task's result may wait in the worker's buffer for the
/// results of the next ones, by default (`Builder::result_window`). Results of fast
/// tasks travel together (one write for many). Once a task has run longer than
/// this, every earlier result is sent, followed by a `Busy` frame: if the worker
/// dies now (or is killed at a timeout), the parent knows exactly which task it was
/// running.
pub(crate) const RESULT_WINDOW: Duration = Duration::from_millis(1);

/// Results waiting to be written, flushed at the end of a chunk, when large, or by
/// a helper thread at most one result window after the first one arrived.
struct Results {
    shared: Arc<ResultsShared>,
}

struct ResultsShared {
    stream: UnixStream,
    buf: std::sync::Mutex<ResultBuf>,
    filled: std::sync::Condvar,
    /// Signalled when `Busy` was sent (for [`wait_until_busy`]).
    busy: std::sync::Condvar,
    /// How long results may wait ([`RESULT_WINDOW`] unless configured); zero: each
    /// is written when its task ends.
    window: Duration,
}

/// This worker's result buffer, for [`wait_until_busy`].
static RESULTS: std::sync::OnceLock<std::sync::Weak<ResultsShared>> = std::sync::OnceLock::new();

/// Test aid: in a task running on a pool worker, blocks until the worker has told
/// the parent that this task is the one running (the `Busy` frame), after which a
/// death of the worker is blamed on this task exactly. Returns at once elsewhere.
pub(crate) fn wait_until_busy() {
    let Some(shared) = RESULTS.get().and_then(std::sync::Weak::upgrade) else {
        return;
    };
    let mut buf = lock(&shared.buf);
    while buf.running.is_some()
        && buf.busy_sent != buf.running
        && !buf.broken
        && buf.helper != Helper::Failed
    {
        buf = shared
            .busy
            .wait_timeout(buf, Duration::from_millis(100))
            .map(|(b, _)| b)
            .unwrap_or_else(|e| e.into_inner().0);
    }
}

#[derive(Default)]
struct ResultBuf {
    bytes: Vec<u8>,
    broken: bool,
    /// Sequence number of the running task, if one runs.
    running: Option<u64>,
    /// Tasks started so far.
    started: u64,
    /// The running task for which `Busy` was sent.
    busy_sent: Option<u64>,
    /// The helper thread.
    helper: Helper,
}

#[derive(Default, Debug, Clone, Copy, PartialEq, Eq)]
enum Helper {
    #[default]
    NotStarted,
    Running,
    Failed,
}

impl ResultBuf {
    /// Nothing buffered, and no task running that may need a `Busy` frame.
    fn nothing_to_do(&self) -> bool {
        self.bytes.is_empty() && (self.running.is_none() || self.busy_sent == self.running)
    }
}

/// Buffered results beyond this size are written at once.
const RESULT_BUFFER: usize = 64 << 10;

impl Results {
    fn start(stream: UnixStream, window: Duration) -> Results {
        let shared = Arc::new(ResultsShared {
            stream,
            buf: std::sync::Mutex::new(ResultBuf::default()),
            filled: std::sync::Condvar::new(),
            busy: std::sync::Condvar::new(),
            window,
        });
        let _ = RESULTS.set(Arc::downgrade(&shared));
        Results { shared }
    }

    /// Starts the helper thread that writes buffered results after
    /// [`RESULT_WINDOW`] and sends `Busy` frames, the first time one is needed (a
    /// worker that only ever runs one-item chunks never starts it). Called with the
    /// buffer locked. Without it, every result is written at once: slower for tiny
    /// tasks, never wrong — but then no `Busy` either, so blame for a death
    /// mid-chunk is found by re-running the chunk's rest one item per chunk.
    fn wake_helper(&self, buf: &mut ResultBuf) {
        match buf.helper {
            Helper::Running => self.shared.filled.notify_one(),
            Helper::Failed => {}
            Helper::NotStarted => {
                buf.helper = match Results::spawn_helper(Arc::downgrade(&self.shared)) {
                    Ok(()) => Helper::Running,
                    Err(_) => Helper::Failed,
                };
            }
        }
    }

    fn spawn_helper(weak: std::sync::Weak<ResultsShared>) -> io::Result<()> {
        std::thread::Builder::new()
            .name("dilly-pool-results".into())
            .spawn(move || {
                loop {
                    let Some(shared) = weak.upgrade() else { return };
                    let seen = {
                        let buf = lock(&shared.buf);
                        let buf = shared
                            .filled
                            .wait_timeout_while(buf, Duration::from_millis(100), |b| {
                                b.nothing_to_do()
                            })
                            .map(|(b, _)| b)
                            .unwrap_or_else(|e| e.into_inner().0);
                        if buf.nothing_to_do() {
                            continue;
                        }
                        buf.running
                    };
                    std::thread::sleep(shared.window);
                    let mut buf = lock(&shared.buf);
                    shared.write(&mut buf);
                    // The same task still runs after a whole window: say so, after
                    // every earlier result.
                    if seen.is_some() && buf.running == seen && buf.busy_sent != seen {
                        buf.busy_sent = seen;
                        match FromWorker::Busy.encode() {
                            Ok(frame) => {
                                buf.bytes.extend_from_slice(&frame);
                                shared.write(&mut buf);
                            }
                            Err(_) => buf.broken = true,
                        }
                        shared.busy.notify_all();
                    }
                }
            })
            .map(drop)
    }

    /// Marks the start of a task; `last` if it is the last of its chunk.
    ///
    /// The last task of a chunk that starts with no result buffered is the only
    /// unreported item of its chunk: should the worker die now, the parent blames
    /// it and nothing else without a `Busy` frame (its result, when done, is
    /// written at once). So the helper thread is not woken for it — the common
    /// one-item chunk (`apply`, chunk size 1) costs no thread wake-up besides the
    /// worker's own — and it counts as reported busy from the start.
    fn start_task(&self, last: bool) {
        let mut buf = lock(&self.shared.buf);
        self.start_locked(&mut buf, last);
    }

    fn start_locked(&self, buf: &mut ResultBuf, last: bool) {
        let idle = buf.running.is_none() && buf.bytes.is_empty();
        buf.started += 1;
        buf.running = Some(buf.started);
        // Without a window nothing is ever buffered when a task starts: every task
        // counts as reported busy, as the last of a chunk does here.
        if (last || self.shared.window.is_zero()) && buf.bytes.is_empty() {
            buf.busy_sent = buf.running;
        } else if idle {
            self.wake_helper(buf);
        }
    }

    /// Adds the running task's outcome, writing everything buffered if `now`;
    /// then, with `next = Some(last)`, marks the start of the chunk's next task
    /// ([`start_task`](Results::start_task)). One lock per task.
    fn finish(&self, outcome: Finished<'_>, now: bool, next: Option<bool>) -> io::Result<()> {
        let mut buf = lock(&self.shared.buf);
        // The parent was told this task runs (`Busy`): until its result arrives, a
        // death is blamed on it. So that result must not wait in the buffer while
        // later tasks run (one of which may be the one that dies).
        let reported_busy = buf.running.is_some() && buf.busy_sent == buf.running;
        buf.running = None;
        if buf.broken {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        let was_empty = buf.bytes.is_empty();
        let mut direct = None;
        match outcome {
            // A large result goes out as it is, after what is buffered and its
            // frame head: not copied into the buffer first.
            Finished::Done(result) if result.len() >= RESULT_BUFFER => {
                protocol::append_done_head(&mut buf.bytes, result.len())?;
                direct = Some(result);
            }
            Finished::Done(result) => protocol::append_done(&mut buf.bytes, result)?,
            Finished::Frame(frame) => buf.bytes.extend_from_slice(frame),
        }
        if let Some(result) = direct {
            self.shared.write(&mut buf);
            self.shared.write_direct(&mut buf, result);
        } else if now
            || reported_busy
            || buf.bytes.len() >= RESULT_BUFFER
            || buf.helper == Helper::Failed
        {
            self.shared.write(&mut buf);
        } else if was_empty {
            self.wake_helper(&mut buf);
        }
        if buf.broken {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        if let Some(last) = next {
            self.start_locked(&mut buf, last);
        }
        Ok(())
    }
}

/// How a task ended, for [`Results::finish`].
enum Finished<'a> {
    /// With this encoded result (sent in a `Done` frame).
    Done(&'a [u8]),
    /// With this whole frame (a failure).
    Frame(&'a [u8]),
}

impl ResultsShared {
    /// Writes `bytes` (the rest of a frame whose head was just written with the
    /// buffer), under the buffer's lock, so nothing else goes out in between.
    fn write_direct(&self, buf: &mut ResultBuf, bytes: &[u8]) {
        if !buf.broken && sys::send_all(&self.stream, bytes).is_err() {
            buf.broken = true;
        }
    }

    fn write(&self, buf: &mut ResultBuf) {
        if buf.bytes.is_empty() || buf.broken {
            return;
        }
        if sys::send_all(&self.stream, &buf.bytes).is_err() {
            buf.broken = true;
        }
        buf.bytes.clear();
    }
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A fork server started by `StartMethod::ForkServer`: connect, say hello, then
/// fork workers on request.
fn run_server(ticket: &Ticket) -> i32 {
    let Ok(stream) = connect(ticket) else {
        return EXIT_BROKEN;
    };
    if send(&stream, &hello(ticket)).is_err() {
        return EXIT_BROKEN;
    }
    zygote(stream)
}

/// Accumulates bytes from the control stream and hands out whole frames, keeping
/// the descriptors that came along (one per `Fork` request) in arrival order.
struct Frames {
    buf: Vec<u8>,
    passed: VecDeque<OwnedFd>,
}

impl Frames {
    /// The next complete frame body already received, if any.
    fn take(&mut self) -> io::Result<Option<Vec<u8>>> {
        protocol::take_frame(&mut self.buf, 1 << 20)
    }

    /// Reads what the stream has (one `recvmsg`); `Err(UnexpectedEof)` when the
    /// peer closed it.
    fn fill(&mut self, stream: &UnixStream) -> io::Result<()> {
        let mut chunk = [0u8; 4096];
        match sys::recv_with_fds(stream, &mut chunk, &mut self.passed) {
            Ok(0) => Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(())
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
}

/// How long the fork server sleeps between looks for ended workers where it cannot
/// be woken by their end (no `pidfd_open`).
const ZYGOTE_FALLBACK_TICK: Duration = Duration::from_millis(20);

/// The fork server loop: single-threaded; forks a worker per `Fork` request, reports
/// each fork and each reaped worker, and exits when the parent closes the stream.
///
/// Each request carries the new worker's socket (the other end stays with the
/// pool): the worker serves on it at once, with no connection to make and nothing
/// to prove, and the server closes its copy right after the fork, so the pool sees
/// the end of the stream if the worker dies before its hello.
///
/// It sleeps in `poll` on the control stream and on one pidfd per live worker, so a
/// worker's end is reported as soon as it happens (the parent waits for that report
/// when it replaces a worker that died). Without pidfds it looks every 20 ms.
pub(crate) fn zygote(control: UnixStream) -> i32 {
    // Build the registry index once, so forked workers inherit it ready (and the
    // answers of their hello).
    let _ = dilly::registry::fingerprint();
    fakes_skew();
    // Counted once: this loop starts no thread. Where the process has several
    // (another crate's start-up code started one), every request is refused.
    let single = sys::SingleThreaded::check();
    // Blocking: it is read only after `poll` said it is readable.
    if control.set_read_timeout(None).is_err() {
        return EXIT_BROKEN;
    }
    let mut frames = Frames {
        buf: Vec::new(),
        passed: VecDeque::new(),
    };
    // Live workers' pidfds; `fallback` once one could not be opened.
    let mut pidfds: HashMap<u32, OwnedFd> = HashMap::new();
    let mut fallback = false;
    loop {
        while let Some((pid, status)) = sys::reap_any() {
            pidfds.remove(&pid);
            if send(&control, &FromWorker::Exited { pid, status }).is_err() {
                return EXIT_BROKEN;
            }
        }
        let body = match frames.take() {
            Ok(Some(body)) => body,
            Ok(None) => {
                let timeout = fallback.then_some(ZYGOTE_FALLBACK_TICK);
                let mut fds = vec![control.as_fd()];
                fds.extend(pidfds.values().map(|fd| fd.as_fd()));
                let ready = match sys::poll_readable(&fds, timeout) {
                    Ok(ready) => ready,
                    Err(_) => return EXIT_BROKEN,
                };
                if ready[0] && frames.fill(&control).is_err() {
                    return EXIT_OK;
                }
                continue;
            }
            Err(_) => return EXIT_BROKEN,
        };
        let spawn_id = match ToWorker::decode(&body) {
            Ok(ToWorker::Fork { spawn_id }) => spawn_id,
            Ok(ToWorker::Exit) => return EXIT_OK,
            _ => return EXIT_BROKEN,
        };
        // Each request comes with its worker's socket, in order.
        let Some(socket) = frames.passed.pop_front() else {
            return EXIT_BROKEN;
        };
        let pid = match single.as_ref().map(sys::SingleThreaded::fork) {
            Ok(Ok(None)) => {
                // The child: it must not keep the parent's control stream, its
                // siblings' pidfds or sockets not yet used open.
                drop(pidfds);
                drop(control);
                drop(frames);
                sys::exit_now(run_forked_worker(UnixStream::from(socket), spawn_id));
            }
            Ok(Ok(Some(pid))) => {
                match sys::pidfd(pid) {
                    Some(fd) => {
                        pidfds.insert(pid, fd);
                    }
                    None => fallback = true,
                }
                pid
            }
            // The pool sees its socket closed, and this reply says why.
            Ok(Err(_)) | Err(_) => 0,
        };
        drop(socket);
        if send(&control, &FromWorker::Forked { spawn_id, pid }).is_err() {
            return EXIT_BROKEN;
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[dilly::func]
    fn triple(x: u64) -> u64 {
        x * 3
    }

    /// Reads the next message the worker sent.
    fn next_message(stream: &mut UnixStream) -> FromWorker {
        let body = protocol::read_frame(stream, 1 << 20)
            .expect("a frame")
            .expect("not the end");
        FromWorker::decode(&body).expect("a message")
    }

    #[test]
    fn a_worker_sent_its_last_chunk_exits_once_the_results_are_out() {
        // The pool keeps its end open: the worker must leave by itself, without
        // `Exit` and without the end of the stream.
        let (mut pool, theirs) = UnixStream::pair().unwrap();
        let worker = std::thread::spawn(move || run_forked_worker(theirs, 7));
        let config = ToWorker::Config(protocol::Config {
            registry: dilly::registry::fingerprint(),
            memory_limit: None,
            max_frame: 1 << 20,
            spin: Duration::ZERO,
            result_window: Duration::ZERO,
            initializer: None,
        });
        protocol::write_frame(&pool, &config.encode().unwrap()).unwrap();
        assert!(matches!(
            next_message(&mut pool),
            FromWorker::Hello { spawn_id: 7, .. }
        ));
        assert_eq!(next_message(&mut pool), FromWorker::Ready);
        let f = dilly::func_of!(triple);
        let load = ToWorker::Load {
            key: 1,
            func: f.raw(),
        };
        let mut items = crate::backend::Items::with_capacity(2, 0);
        for x in [4u64, 5] {
            items
                .push_with(|out| f.encode_args_into(&(x,), out))
                .unwrap();
        }
        let run = protocol::encode_run(1, &items, AfterRun::Exit).unwrap();
        protocol::write_frame(&pool, &[load.encode().unwrap(), run].concat()).unwrap();
        for expected in [12u64, 15] {
            match next_message(&mut pool) {
                FromWorker::Done(bytes) => assert_eq!(f.decode_result(&bytes).unwrap(), expected),
                other => panic!("expected a result, got {other:?}"),
            }
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while !worker.is_finished() {
            assert!(Instant::now() < deadline, "the worker still serves");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(worker.join().unwrap(), EXIT_OK);
        // The worker's panic hook stays with this test process otherwise.
        let _ = panic::take_hook();
        drop(pool);
    }

    #[test]
    fn marker_round_trips() {
        let ticket = Ticket {
            address: b"\x00abc/1".to_vec(),
            spawn_id: 42,
            token: [7; 16],
        };
        for role in [Role::Worker, Role::Server] {
            let value = marker_value(role, &ticket);
            assert_eq!(parse_marker(&value), Some((role, ticket.clone())));
        }
        assert_eq!(parse_marker("garbage"), None);
        assert_eq!(parse_marker("1:w:zz:1:00"), None);
    }
}
