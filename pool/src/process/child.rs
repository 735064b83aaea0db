//! A worker process as its pool sees it: its PID, how to kill it and how to
//! collect its end, whether it is this process's child or the fork server's.

use std::process::Child;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::WorkerExit;
use crate::sys;

use super::fork_server::ForkServer;

/// A started worker process, parent side.
pub(super) enum WorkerProcess {
    /// Spawned by this process.
    Child(Child),
    /// Forked by a fork server, which reaps it and reports its status (kept in
    /// `exited` once read). Signalled through `pidfd` where there is one (opened
    /// when it said hello), so never another process that got its PID later;
    /// otherwise by PID, unless the server reported it gone.
    Forked {
        pid: u32,
        fork_server: Arc<ForkServer>,
        exited: Option<WorkerExit>,
        pidfd: Option<std::os::fd::OwnedFd>,
    },
}

/// Told of each new worker process before its initializer runs, with its PID and
/// the pidfd its [`WorkerProcess`] holds, if any; returning false abandons the worker.
pub(super) type OnStart<'a> = dyn Fn(u32, Option<std::os::fd::BorrowedFd<'_>>) -> bool + 'a;

impl WorkerProcess {
    pub(super) fn pid(&self) -> u32 {
        match self {
            WorkerProcess::Child(c) => c.id(),
            WorkerProcess::Forked { pid, .. } => *pid,
        }
    }

    /// The pidfd held for the process: a forked one's (opened at its hello).
    pub(super) fn pidfd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        use std::os::fd::AsFd;
        match self {
            WorkerProcess::Child(_) => None,
            WorkerProcess::Forked { pidfd, .. } => pidfd.as_ref().map(|fd| fd.as_fd()),
        }
    }

    /// `SIGKILL`s the process (if it still runs).
    pub(super) fn kill(&mut self) {
        match self {
            WorkerProcess::Child(c) => {
                let _ = c.kill();
            }
            WorkerProcess::Forked {
                pid,
                fork_server,
                exited,
                pidfd,
            } => {
                use std::os::fd::AsFd;
                match pidfd {
                    _ if exited.is_some() => {}
                    Some(fd) => sys::pidfd_kill(fd.as_fd()),
                    None => fork_server.kill_unless_reaped(*pid),
                }
            }
        }
    }

    /// Whether this is a forked worker whose fork server is gone: it was killed
    /// with the server (it asks the kernel for `SIGKILL` when its parent ends),
    /// and its exit status was lost with it.
    pub(super) fn fork_server_gone(&self) -> bool {
        matches!(self, WorkerProcess::Forked { fork_server, .. } if fork_server.is_gone())
    }

    pub(super) fn try_status(&mut self) -> Option<WorkerExit> {
        match self {
            WorkerProcess::Child(c) => match c.try_wait() {
                Ok(Some(status)) => Some(WorkerExit::from_status(status)),
                Ok(None) => None,
                Err(_) => Some(WorkerExit::Unknown),
            },
            WorkerProcess::Forked {
                pid,
                fork_server,
                exited,
                ..
            } => {
                if exited.is_none() {
                    *exited = fork_server.exit_status(*pid);
                }
                *exited
            }
        }
    }

    /// How the process ended: waits up to `patience` for it to end by itself, then
    /// kills it and waits for that. Sleeps until the end is known (a pidfd for a
    /// spawned child, the fork server's report for a forked one), never in naps.
    pub(super) fn wait_or_kill(&mut self, patience: Duration) -> WorkerExit {
        if let Some(status) = self.try_status() {
            return status;
        }
        let deadline = Instant::now() + patience;
        match self {
            WorkerProcess::Child(c) => match sys::pidfd(c.id()) {
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
            WorkerProcess::Forked {
                pid,
                fork_server,
                exited,
                ..
            } => {
                if exited.is_none() {
                    *exited = fork_server.wait_exit(*pid, patience);
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
    pub(super) fn reap(&mut self) -> WorkerExit {
        match self {
            WorkerProcess::Child(c) => c
                .wait()
                .map(WorkerExit::from_status)
                .unwrap_or(WorkerExit::Unknown),
            WorkerProcess::Forked {
                pid,
                fork_server,
                exited,
                ..
            } => {
                if exited.is_none() {
                    *exited = Some(
                        fork_server
                            .wait_exit(*pid, Duration::from_secs(5))
                            .unwrap_or(WorkerExit::Unknown),
                    );
                }
                exited.unwrap_or(WorkerExit::Unknown)
            }
        }
    }
}
