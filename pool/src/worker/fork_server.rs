//! The fork server's loop, shared by `ForkServer` and `Fork`: it forks a worker
//! for each request and reports the starts and ends of its workers.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use crate::protocol::{self, FromWorker, Ticket, ToWorker, connect};
use crate::sys;

use super::*;

/// A fork server started by `StartMethod::ForkServer`: connect, say hello, then
/// fork workers on request.
pub(super) fn run_spawned_fork_server(ticket: &Ticket) -> i32 {
    let Ok(stream) = connect(ticket) else {
        return EXIT_BROKEN;
    };
    if send(&stream, &hello(ticket)).is_err() {
        return EXIT_BROKEN;
    }
    run_fork_server(stream)
}

/// A fork server forked by `StartMethod::Fork` from `parent`, the pool's process:
/// it dies with it ([`sys::die_with_parent`]), then serves.
pub(crate) fn run_forked_fork_server(control: UnixStream, parent: u32) -> i32 {
    if !sys::die_with_parent(parent) {
        return EXIT_BROKEN;
    }
    run_fork_server(control)
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
        protocol::take_frame(&mut self.buf, protocol::CONTROL_FRAME_LIMIT)
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
const FORK_SERVER_FALLBACK_TICK: Duration = Duration::from_millis(20);

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
pub(crate) fn run_fork_server(control: UnixStream) -> i32 {
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
    // The parent of the workers forked here, which they check they still have.
    let server = std::process::id();
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
                let timeout = fallback.then_some(FORK_SERVER_FALLBACK_TICK);
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
                // It dies with this server, which dies with the pool's process.
                if !sys::die_with_parent(server) {
                    sys::exit_now(EXIT_BROKEN);
                }
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
