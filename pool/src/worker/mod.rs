//! The worker side: recognizing a re-executed copy of the program, the serve loop,
//! and the fork server ("fork_server") loop shared by `ForkServer` and `Fork`.

mod fork_server;
mod results;
mod serve;

pub(crate) use fork_server::run_forked_fork_server;
pub(crate) use results::wait_until_busy;

use fork_server::run_spawned_fork_server;
use serve::{Handshake, serve, worker};

use std::cell::RefCell;
use std::io;
use std::os::unix::net::UnixStream;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;

use dilly::ErasedFunc;

use crate::error::TaskError;
use crate::protocol::{self, FromWorker, PROTOCOL, Ticket};
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
/// pays page faults for them (docs/benchmarks.md has the effect on start times).
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

/// Builds the marker's value, naming this process as the parent the new process
/// must have ([`sys::die_with_parent`]).
pub(crate) fn marker_value(role: Role, ticket: &Ticket) -> String {
    let role = match role {
        Role::Worker => 'w',
        Role::Server => 's',
    };
    format!(
        "{PROTOCOL}:{role}:{}:{}:{}:{}",
        hex(&ticket.address),
        ticket.spawn_id,
        hex(&ticket.token),
        std::process::id()
    )
}

/// The role, the ticket and the parent's PID in a marker's value.
fn parse_marker(value: &str) -> Option<(Role, Ticket, u32)> {
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
    let parent = parts.next()?.parse().ok()?;
    Some((
        role,
        Ticket {
            address,
            spawn_id,
            token,
        },
        parent,
    ))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
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
        // Its pool's process is gone already: nobody will send it work.
        Some((_, _, parent)) if !sys::die_with_parent(parent) => EXIT_BROKEN,
        Some((Role::Worker, ticket, _)) => run_worker(&ticket),
        Some((Role::Server, ticket, _)) => run_spawned_fork_server(&ticket),
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

/// The pre-main hook: a re-executed copy of the program serves as a worker (or a
/// fork server) and exits before `main` or the test harness runs. Without the
/// marker in the environment it returns at once and the program runs normally.
#[cfg(feature = "auto-worker")]
#[ctor::ctor(unsafe)]
fn dilly_pool_worker_hook() {
    // Only reading one environment variable happens unless the marker is set.
    serve_if_worker();
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
    /// The last panic's message, location and backtrace, recorded by the worker's
    /// panic hook.
    static LAST_PANIC: RefCell<Option<LastPanic>> = const { RefCell::new(None) };
}

/// What the panic hook records of a panic: message, location, backtrace.
type LastPanic = (String, Option<String>, Option<String>);

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
        // Captured only when `RUST_BACKTRACE` / `RUST_LIB_BACKTRACE` ask for it.
        let trace = std::backtrace::Backtrace::capture();
        let backtrace = (trace.status() == std::backtrace::BacktraceStatus::Captured)
            .then(|| trace.to_string());
        LAST_PANIC.with(|p| *p.borrow_mut() = Some((message, location, backtrace)));
    }));
}

fn take_panic() -> TaskError {
    let (message, location, backtrace) = LAST_PANIC
        .with(|p| p.borrow_mut().take())
        .unwrap_or_else(|| ("unknown panic".to_owned(), None, None));
    TaskError::Panicked {
        message,
        location,
        backtrace,
    }
}

fn load(func: &dilly::RawFunc) -> Result<Arc<dyn ErasedFunc>, TaskError> {
    match panic::catch_unwind(|| func.prepare()) {
        Ok(Ok(f)) => Ok(f),
        Ok(Err(error)) => Err(TaskError::Rejected { error }),
        Err(_) => Err(take_panic()),
    }
}

/// Runs a task, its encoded result replacing what `out` held.
fn call(f: &Arc<dyn ErasedFunc>, args: &[u8], out: &mut Vec<u8>) -> Result<(), TaskError> {
    out.clear();
    match panic::catch_unwind(AssertUnwindSafe(|| f.call_into(args, out))) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error @ dilly::Error::Encode { .. })) => Err(TaskError::Unserializable { error }),
        Ok(Err(error)) => Err(TaskError::Arguments { error }),
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    use crate::protocol::{AfterRun, ToWorker};

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
            assert_eq!(
                parse_marker(&value),
                Some((role, ticket.clone(), std::process::id()))
            );
        }
        assert_eq!(parse_marker("garbage"), None);
        assert_eq!(parse_marker("1:w:zz:1:00"), None);
    }
}
