//! The worker's result batching: finished results wait in one buffer and travel
//! together, flushed at the end of a chunk, when large, or by a helper thread at
//! most one result window after the first one arrived.

use std::io;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::Duration;

use crate::protocol::{self, FromWorker};
use crate::sync::lock;
use crate::sys;

/// Results waiting to be written, flushed at the end of a chunk, when large, or by
/// a helper thread at most one result window after the first one arrived.
pub(super) struct Results {
    shared: Arc<ResultsShared>,
}

struct ResultsShared {
    stream: UnixStream,
    buf: std::sync::Mutex<ResultBuf>,
    filled: std::sync::Condvar,
    /// Signalled when `Busy` was sent (for [`wait_until_busy`]).
    busy: std::sync::Condvar,
    /// How long results may wait (`ProcessPoolBuilder::result_window`); zero: each
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
    pub(super) fn start(stream: UnixStream, window: Duration) -> Results {
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
    /// the result window and sends `Busy` frames, the first time one is needed (a
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
    pub(super) fn start_task(&self, last: bool) {
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
    pub(super) fn finish(
        &self,
        outcome: Finished<'_>,
        now: bool,
        next: Option<bool>,
    ) -> io::Result<()> {
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
pub(super) enum Finished<'a> {
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
