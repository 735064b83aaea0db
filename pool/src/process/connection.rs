//! The parent's side of one worker's connection: sending it functions and chunks,
//! and reading its outcomes.

use std::collections::HashSet;
use std::io::{self, BufRead, BufReader};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use crate::backend::{Items, Outcomes};
use crate::error::TaskError;
use crate::protocol::{self, AfterRun, FromWorker, ToWorker};

use super::PoolCore;
use super::child::WorkerProcess;
use super::launch::Connected;
use super::queue::JobInfo;

/// How many functions a worker keeps prepared before the pool tells it to forget
/// them all.
pub(super) const MAX_LOADED: usize = 256;

/// Why a worker's connection ended.
#[derive(Debug)]
pub(super) enum Loss {
    /// The worker died or hung up by itself.
    Died,
    /// The worker is to be killed: it broke the protocol or ran past the task
    /// timeout, and the task it was running fails with this error.
    Killed(TaskError),
}

/// A live worker, parent side.
pub(super) struct Connection {
    /// The worker's socket (written through [`Connection::socket`]).
    pub(super) reader: BufReader<UnixStream>,
    pub(super) proc: WorkerProcess,
    pub(super) loaded: HashSet<u64>,
    pub(super) tasks: usize,
    /// The worker said `Busy` about the task whose result is awaited.
    pub(super) busy: bool,
    /// A caller borrowed it and waits for its results ([`PoolCore::run_inline`]):
    /// both poll for a while before they block (`Builder::spin`).
    pub(super) inline: bool,
    /// It was sent its last chunk, after which it exits without being told.
    pub(super) exits: bool,
    /// The socket's read timeout as last set (set again only when it changes).
    read_timeout: Option<Duration>,
}

/// How long the pool waits for a worker's next message before it looks whether
/// the worker was stopped (`SIGSTOP`, `SIGTSTP`); a worker seen stopped at two
/// looks in a row fails its task with [`TaskError::WorkerStopped`]. Two looks, so
/// that a worker stopped with its parent (`Ctrl-Z` stops a whole process group)
/// and resumed with it is never caught in the moment before its `SIGCONT`.
const STOP_GRACE: Duration = Duration::from_secs(1);

impl Connection {
    pub(super) fn new(connected: Connected, timeout: Option<Duration>) -> io::Result<Connection> {
        let Connected { stream, proc } = connected;
        stream.set_read_timeout(timeout)?;
        Ok(Connection {
            reader: BufReader::with_capacity(64 << 10, stream),
            proc,
            loaded: HashSet::new(),
            tasks: 0,
            busy: false,
            inline: false,
            exits: false,
            read_timeout: timeout,
        })
    }

    /// Sets the socket's read timeout, unless it is set so already.
    fn set_read_timeout(&mut self, timeout: Option<Duration>) {
        if self.read_timeout != timeout && self.socket().set_read_timeout(timeout).is_ok() {
            self.read_timeout = timeout;
        }
    }

    /// The worker's socket, for writing: one descriptor serves both directions, so
    /// a worker start needs no `dup`.
    pub(super) fn socket(&self) -> &UnixStream {
        self.reader.get_ref()
    }

    /// Tells the worker to exit, unless it was sent its last chunk and exits by
    /// itself. A worker gone already makes the write fail, which is fine.
    pub(super) fn tell_to_exit(&self) {
        if !self.exits {
            let _ =
                protocol::write_frame(self.socket(), &ToWorker::Exit.encode().unwrap_or_default());
        }
    }
}

impl PoolCore {
    /// Sends the function (first time on this worker) and a chunk's items, in one
    /// write when the chunk is small, and large items without copying them.
    /// `last`: the worker retires after this chunk, and exits by itself.
    pub(super) fn send_run(
        &self,
        live: &mut Connection,
        job: &JobInfo,
        items: &Items,
        last: bool,
    ) -> io::Result<()> {
        let after = if last {
            live.exits = true;
            AfterRun::Exit
        } else if live.inline && !self.launcher.config().spin.is_zero() {
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
    /// (`Builder::spin`). `Err` means the worker is lost, and why.
    pub(super) fn receive(
        &self,
        live: &mut Connection,
        job: &JobInfo,
        index: u64,
        max: usize,
        out: &mut Outcomes,
    ) -> std::result::Result<usize, Loss> {
        // At most the task timeout, which counts from the end of the spin.
        let mut spin = match (live.inline, self.settings.task_timeout) {
            (false, _) => Duration::ZERO,
            (true, None) => self.launcher.config().spin,
            (true, Some(timeout)) => self.launcher.config().spin.min(timeout),
        };
        loop {
            // The hot case: results that arrived together, taken from the read
            // buffer in one pass.
            let mut next = index;
            let (count, used) = protocol::split_done_frames(
                live.reader.buffer(),
                max,
                self.launcher.config().max_frame,
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
            if live.reader.buffer().is_empty() {
                self.wait_for_bytes(live)?;
            }
            if !protocol::holds_frame(live.reader.buffer()) {
                // The rest of a frame begun: the task timeout, not a slice.
                live.set_read_timeout(self.settings.task_timeout);
            }
            let frame =
                match protocol::read_head(&mut live.reader, self.launcher.config().max_frame) {
                    // The hot case: the result goes straight into the batch's buffer.
                    Ok(Some((tag, len))) if protocol::is_done(tag) => {
                        live.busy = false;
                        let reader = &mut live.reader;
                        match out
                            .push_ok_with(index, |buf| protocol::read_body_into(reader, len, buf))
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
            if let Ok(Some((tag, rest))) = &frame
                && protocol::is_busy(*tag, rest)
            {
                live.busy = true;
                continue;
            }
            if matches!(frame, Ok(Some(_))) {
                live.busy = false;
            }
            return self.outcome(live, index, frame, out).map(|()| 1);
        }
    }

    /// Waits until the worker's socket has bytes to read (read into its buffer),
    /// the end of the stream or an error, in slices of [`STOP_GRACE`], looking
    /// between them whether the worker was stopped: a stopped worker is told from
    /// a slow one without a task timeout. `Err` when it stayed stopped
    /// ([`TaskError::WorkerStopped`]) or the task timeout passed.
    fn wait_for_bytes(&self, live: &mut Connection) -> std::result::Result<(), Loss> {
        let timeout = self.settings.task_timeout;
        let started = Instant::now();
        let mut slice = timeout.map_or(STOP_GRACE, |t| t.min(STOP_GRACE));
        let mut stopped_looks = 0;
        loop {
            live.set_read_timeout(Some(slice));
            match live.reader.fill_buf() {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                // Bytes, the end, or an error that the read which follows meets
                // again.
                _ => return Ok(()),
            }
            let pid = live.proc.pid();
            if let Some(after) = timeout {
                let left = after.saturating_sub(started.elapsed());
                if left.is_zero() {
                    return Err(Loss::Killed(TaskError::TimedOut { after, pid }));
                }
                slice = left.min(STOP_GRACE);
            }
            if crate::sys::is_stopped(pid) {
                stopped_looks += 1;
                if stopped_looks >= 2 {
                    return Err(Loss::Killed(TaskError::WorkerStopped {
                        pid,
                        after: started.elapsed(),
                    }));
                }
            } else {
                stopped_looks = 0;
            }
        }
    }

    /// Adds one frame's outcome to `out` (see [`PoolCore::receive`]).
    pub(super) fn outcome(
        &self,
        live: &mut Connection,
        index: u64,
        frame: io::Result<Option<(u8, Vec<u8>)>>,
        out: &mut Outcomes,
    ) -> std::result::Result<(), Loss> {
        let protocol_error = |live: &Connection, detail: String| {
            Loss::Killed(TaskError::Protocol {
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
                    out.push_err(index, err);
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
                    Some(after) => Err(Loss::Killed(TaskError::TimedOut {
                        after,
                        pid: live.proc.pid(),
                    })),
                    None => Err(Loss::Died),
                }
            }
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                Err(protocol_error(live, e.to_string()))
            }
            Ok(None) | Err(_) => Err(Loss::Died),
        }
    }
}
