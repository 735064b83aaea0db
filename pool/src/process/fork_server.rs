//! The pool's side of a fork server: asking it for workers and reading its
//! reports of their starts and ends.

use std::collections::{HashMap, HashSet};
use std::io;
use std::os::unix::net::UnixStream;
use std::process::Child;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::error::{Error, WorkerExit};
use crate::protocol::{self, FromWorker, ToWorker};
use crate::sync::lock;
use crate::sys;
use crate::worker::{self};

/// The server process itself.
pub(super) enum ForkServerProcess {
    Child(Child),
    Forked(u32),
}

/// The parent's side of a fork server.
///
/// The server's reports (each fork's PID, each reaped worker's status) are read
/// when somebody needs one, not by a thread of ours sleeping on the stream: a
/// worker start makes two reports, and a thread woken for each would add two
/// wake-ups to every start. Each start reads what has arrived before it asks for
/// a fork, so unread reports never fill the stream.
pub(super) struct ForkServer {
    control: Mutex<UnixStream>,
    reports: Mutex<Reports>,
    /// Signalled when the waiter that sleeps on the stream for all of them
    /// ([`Reports::watched`]) read what came, or stopped sleeping.
    changed: Condvar,
    /// The control stream for reading: without blocking, under `reports`' lock,
    /// and in `poll`, outside it. (Not `O_NONBLOCK`, which the copy that sends
    /// requests would share.)
    incoming: std::os::fd::OwnedFd,
    process: Mutex<Option<ForkServerProcess>>,
}

/// Why a wait for a fork server's report ended without it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum NoReport {
    /// The server is gone.
    ServerGone,
    /// The patience ran out.
    OutOfPatience,
}

/// The server's reports received so far, and what they say.
pub(super) struct Reports {
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
    /// Reads whatever the server sent on `incoming`, without blocking. Only
    /// through [`ForkServer::catch_up`], which knows whether it may read.
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
            match protocol::take_frame(&mut self.pending, protocol::CONTROL_FRAME_LIMIT) {
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

impl ForkServer {
    /// `Fork`: forks the server from this (single-threaded) process.
    pub(super) fn fork_here() -> Result<Arc<ForkServer>, Error> {
        let (ours, theirs) = UnixStream::pair().map_err(|source| Error::Io {
            context: "cannot create the fork server's socket pair",
            source,
        })?;
        let parent = std::process::id();
        match sys::fork_single_threaded() {
            Ok(None) => {
                drop(ours);
                sys::exit_now(worker::run_forked_fork_server(theirs, parent));
            }
            Ok(Some(pid)) => {
                drop(theirs);
                ForkServer::start(ours, ForkServerProcess::Forked(pid))
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

    pub(super) fn start(
        stream: UnixStream,
        process: ForkServerProcess,
    ) -> Result<Arc<ForkServer>, Error> {
        let incoming = std::os::fd::OwnedFd::from(stream.try_clone().map_err(io_err)?);
        Ok(Arc::new(ForkServer {
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

    /// The reports, with everything the server sent so far read — unless a
    /// waiter sleeps on the stream, which reads it when it wakes.
    pub(super) fn reports(&self) -> std::sync::MutexGuard<'_, Reports> {
        let mut reports = lock(&self.reports);
        self.catch_up(&mut reports);
        reports
    }

    /// Reads what the server sent, unless a waiter sleeps in `poll` on the
    /// stream ([`Reports::watched`]): only that waiter reads then. Bytes taken from
    /// under it would leave it asleep until its patience ran out, however soon its
    /// report came; and a waiter on `changed` whose report another thread read
    /// would sleep as long. So whoever reads a report wakes the waiters.
    fn catch_up(&self, reports: &mut Reports) {
        use std::os::fd::AsFd;
        if reports.watched {
            return;
        }
        let before = (reports.forked.len(), reports.exited.len(), reports.gone);
        reports.pump(self.incoming.as_fd());
        if (reports.forked.len(), reports.exited.len(), reports.gone) != before {
            self.changed.notify_all();
        }
    }

    /// Waits until `found` finds what it looks for in the reports (it may take it
    /// out), or why it did not. One waiter sleeps in `poll` on the stream; only it
    /// reads the stream meanwhile, and it wakes the others once it has read what
    /// came, so no waiter sleeps through its report.
    pub(super) fn wait_for<T>(
        &self,
        patience: Duration,
        mut found: impl FnMut(&mut Reports) -> Option<T>,
    ) -> Result<T, NoReport> {
        use std::os::fd::AsFd;
        let deadline = Instant::now() + patience;
        let mut reports = self.reports();
        loop {
            if let Some(value) = found(&mut reports) {
                return Ok(value);
            }
            if reports.gone {
                return Err(NoReport::ServerGone);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(NoReport::OutOfPatience);
            }
            if reports.watched {
                reports = self
                    .changed
                    .wait_timeout(reports, left)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
                self.catch_up(&mut reports);
            } else {
                reports.watched = true;
                drop(reports);
                let _ = sys::poll_readable(&[self.incoming.as_fd()], Some(left));
                reports = lock(&self.reports);
                reports.watched = false;
                reports.pump(self.incoming.as_fd());
                // Whatever came, the others look again (one of them sleeps on
                // the stream next).
                self.changed.notify_all();
            }
        }
    }

    /// Asks the server to fork a worker that serves on `socket` (the server gets its
    /// own copy of the descriptor with the request).
    pub(super) fn request_fork(&self, spawn_id: u64, socket: &UnixStream) -> Result<(), Error> {
        use std::os::fd::AsFd;
        let frame = ToWorker::Fork { spawn_id }.encode().map_err(io_err)?;
        sys::send_with_fd(&lock(&self.control), &frame, socket.as_fd()).map_err(|e| {
            // It no longer reads its requests, whether or not its end was seen yet.
            self.set_gone();
            start_error(format!("the fork server is gone: {e}"))
        })
    }

    /// Whether the server is known to be gone.
    pub(super) fn is_gone(&self) -> bool {
        self.reports().gone
    }

    pub(super) fn set_gone(&self) {
        self.reports().gone = true;
        self.changed.notify_all();
    }

    /// The worker of `spawn_id` said hello, with its PID: the server's report of the
    /// fork is not needed (dropped now, or when it comes).
    pub(super) fn claim(&self, spawn_id: u64) {
        let mut reports = self.reports();
        if reports.forked.remove(&spawn_id).is_none() {
            reports.claimed.insert(spawn_id);
        }
    }

    /// Kills the worker of `spawn_id`, if it was forked, and forgets it.
    pub(super) fn abandon(&self, spawn_id: u64) {
        if let Ok(pid) = self.forked_pid(spawn_id) {
            self.kill_unless_reaped(pid);
            let _ = self.wait_exit(pid, Duration::from_secs(2));
        }
    }

    /// Kills forked worker `pid` by PID, unless the server has reported it
    /// reaped (its PID may belong to another process by then).
    pub(super) fn kill_unless_reaped(&self, pid: u32) {
        if !self.has_exited(pid) {
            sys::kill(pid);
        }
    }

    /// Why the worker of `spawn_id` sent no hello (`read` is what reading it gave):
    /// the server could not fork, is gone, or the worker ended or hung — then it is
    /// killed. Consumes the fork and exit reports.
    pub(super) fn explain_missing_hello(
        &self,
        spawn_id: u64,
        read: &io::Error,
        timeout: Duration,
    ) -> Error {
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
    pub(super) fn forked_pid(&self, spawn_id: u64) -> Result<u32, Error> {
        match self.wait_for(Duration::from_secs(30), |r| r.forked.remove(&spawn_id)) {
            Ok(0) => Err(start_error("the fork server could not fork".to_owned())),
            Ok(pid) => Ok(pid),
            Err(NoReport::ServerGone) => Err(start_error("the fork server is gone".to_owned())),
            Err(NoReport::OutOfPatience) => {
                Err(start_error("the fork server did not answer".to_owned()))
            }
        }
    }

    pub(super) fn has_exited(&self, pid: u32) -> bool {
        self.reports().exited.contains_key(&pid)
    }

    /// The reported status of `pid`, consumed (each worker's status is read once).
    pub(super) fn exit_status(&self, pid: u32) -> Option<WorkerExit> {
        let mut reports = self.reports();
        match reports.exited.remove(&pid) {
            Some(raw) => Some(WorkerExit::from_raw(raw)),
            None if reports.gone => Some(WorkerExit::Unknown),
            None => None,
        }
    }

    pub(super) fn wait_exit(&self, pid: u32, patience: Duration) -> Option<WorkerExit> {
        self.wait_for(patience, |r| r.exited.remove(&pid))
            .ok()
            .map(WorkerExit::from_raw)
    }

    pub(super) fn shutdown(&self) {
        let control = lock(&self.control);
        let _ = control.shutdown(std::net::Shutdown::Both);
        drop(control);
        if let Some(process) = lock(&self.process).take() {
            match process {
                ForkServerProcess::Child(mut child) => {
                    let _ = child.kill();
                    let _ = child.wait();
                }
                ForkServerProcess::Forked(pid) => {
                    // It exits when its control stream closes; make sure.
                    sys::kill(pid);
                    sys::wait_pid(pid);
                }
            }
        }
    }
}

pub(super) fn start_error(reason: String) -> Error {
    Error::WorkerStart { reason }
}

pub(super) fn io_err(source: io::Error) -> Error {
    Error::Io {
        context: "talking to a new worker",
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `ForkServer` whose "server" is the returned stream (no process behind it).
    pub(super) fn fake_server() -> (Arc<ForkServer>, UnixStream) {
        let (ours, server) = UnixStream::pair().unwrap();
        // A PID that is never signalled: the test never shuts this fork_server down.
        let fork_server = ForkServer::start(ours, ForkServerProcess::Forked(u32::MAX)).unwrap();
        (fork_server, server)
    }

    pub(super) fn report(server: &UnixStream, msg: FromWorker) {
        protocol::write_frame(server, &msg.encode().unwrap()).unwrap();
    }

    #[test]
    pub(super) fn reports_are_read_when_asked_for_and_reach_every_waiter() {
        let (fork_server, server) = fake_server();
        // Read without waiting, in pieces as they come.
        report(
            &server,
            FromWorker::Forked {
                spawn_id: 1,
                pid: 41,
            },
        );
        assert_eq!(fork_server.forked_pid(1).unwrap(), 41);
        let frame = FromWorker::Exited { pid: 41, status: 0 }.encode().unwrap();
        sys::send_all(&server, &frame[..3]).unwrap();
        assert_eq!(fork_server.exit_status(41), None);
        sys::send_all(&server, &frame[3..]).unwrap();
        assert!(fork_server.has_exited(41));
        assert_eq!(fork_server.exit_status(41), Some(WorkerExit::from_raw(0)));
        // Several waiters: one sleeps on the stream, the others on the condition
        // variable; each gets its own report, whichever of them read it.
        let waiters: Vec<_> = (100..104u32)
            .map(|pid| {
                let fork_server = Arc::clone(&fork_server);
                std::thread::spawn(move || fork_server.wait_exit(pid, Duration::from_secs(30)))
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
            let fork_server = Arc::clone(&fork_server);
            std::thread::spawn(move || fork_server.wait_exit(200, Duration::from_secs(30)))
        };
        drop(server);
        assert_eq!(waiter.join().unwrap(), None);
        assert!(fork_server.is_gone());
        assert_eq!(fork_server.exit_status(200), Some(WorkerExit::Unknown));
    }

    #[test]
    fn a_report_looked_at_by_another_thread_still_wakes_its_waiter() {
        // Two waiters, one asleep on the stream and one on the condition variable;
        // a third thread looks at the reports just as the first waiter's report
        // comes. That waiter must wake with its report, not when its patience runs
        // out (a minute here: one that slept through its report is caught by the
        // bound below). Several rounds, so that each waiter is the sleeper on the
        // stream in some.
        let (fork_server, server) = fake_server();
        let patience = Duration::from_secs(60);
        let wait = |pid: u32| {
            let fork_server = Arc::clone(&fork_server);
            std::thread::spawn(move || {
                let started = Instant::now();
                (fork_server.wait_exit(pid, patience), started.elapsed())
            })
        };
        for round in 0..20u32 {
            let (first, second) = (2 * round + 1, 2 * round + 2);
            let first_waiter = wait(first);
            let second_waiter = wait(second);
            std::thread::sleep(Duration::from_millis(20));
            report(
                &server,
                FromWorker::Exited {
                    pid: first,
                    status: 0,
                },
            );
            let _ = fork_server.has_exited(first);
            let (status, waited) = first_waiter.join().unwrap();
            assert_eq!(status, Some(WorkerExit::from_raw(0)));
            assert!(
                waited < patience / 4,
                "round {round}: slept {waited:?} through its report"
            );
            report(
                &server,
                FromWorker::Exited {
                    pid: second,
                    status: 0,
                },
            );
            let _ = fork_server.has_exited(second);
            let (status, waited) = second_waiter.join().unwrap();
            assert_eq!(status, Some(WorkerExit::from_raw(0)));
            assert!(
                waited < patience / 4,
                "round {round}: slept {waited:?} through its report"
            );
        }
    }

    #[test]
    pub(super) fn a_garbled_report_means_the_server_is_gone() {
        let (fork_server, server) = fake_server();
        // A whole frame (length 1) whose tag no message has.
        protocol::write_frame(&server, &[1, 0, 0, 0, 0xff]).unwrap();
        assert!(fork_server.is_gone());
        assert!(fork_server.forked_pid(3).is_err());
    }
}
