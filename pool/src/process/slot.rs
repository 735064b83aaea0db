//! A slot: the thread that owns one worker at a time, feeds it chunks, reads their
//! outcomes, and on the worker's loss blames the one task it held and requeues the
//! rest.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::backend::Outcomes;
use crate::error::{Error, Result, TaskError, WorkerExit};
use crate::sync::lock;

use super::PoolCore;
use super::child::WorkerProcess;
use super::connection::{Connection, Loss};
use super::launch::Starting;
use super::queue::{Chunk, JobInfo, Next, OverBudget, fail_chunk};

/// A live worker as `terminate` sees it: its PID, and a pidfd opened when it was
/// registered (it had just started or said hello), through which it is killed,
/// so that a PID reused after the worker was reaped is never signalled.
pub(super) struct Registered {
    pub(super) pid: u32,
    pub(super) pidfd: Option<std::os::fd::OwnedFd>,
}

impl Registered {
    pub(super) fn kill(&self) {
        use std::os::fd::AsFd;
        crate::sys::kill_process(self.pidfd.as_ref().map(AsFd::as_fd), self.pid);
    }
}

/// Largest `Run` frame sent while the worker may still be busy writing results: it
/// always fits the socket's buffer, so parent and worker never both block writing.
pub(super) const PIPELINE_FRAME: usize = 32 << 10;

/// Chunks sent to one worker ahead of its results.
pub(super) const PIPELINE_DEPTH: usize = 2;

/// Longest a chunk may be expected to wait behind the ones in flight on its
/// worker for it to be pipelined: while tasks come back within this, a second
/// chunk in flight keeps the worker from idling through each round trip; a
/// longer wait could hold a task back while another worker idles, so chunks of
/// longer (or not yet measured) tasks are sent only to a free worker.
pub(super) const PIPELINE_HORIZON: Duration = Duration::from_millis(2);

/// Whether a worker, when it was lost, was running the next unreported item of
/// its oldest chunk: that item is the one to blame for the loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Running {
    HeadItem,
    Nothing,
}

/// A chunk sent to a worker whose results are being read.
pub(super) struct InFlight {
    pub(super) job: Arc<JobInfo>,
    pub(super) chunk: Chunk,
    /// Items whose outcome arrived.
    pub(super) reported: usize,
    /// Whether the frame reached the worker (a failed write means it never ran).
    pub(super) sent: bool,
    /// Outcomes read but not yet handed to the job.
    pub(super) out: Outcomes,
    /// When its frame was written.
    pub(super) sent_at: Instant,
}

impl PoolCore {
    /// A small chunk for `slot` to pipeline behind the ones in flight, if one is
    /// queued and every other slot has work: a free slot (or one about to be
    /// free) starts it at once, where behind this slot's chunk it would wait for
    /// however long that one runs.
    pub(super) fn pipelined_chunk(
        &self,
        slot: usize,
        capacity: Option<usize>,
    ) -> Option<(Arc<JobInfo>, Chunk)> {
        let mut state = lock(&self.state);
        let other_free = state
            .in_flight
            .iter()
            .enumerate()
            .any(|(i, &n)| i != slot && n == 0);
        if state.terminated || capacity == Some(0) || other_free {
            return None;
        }
        self.take(
            &mut state,
            slot,
            capacity,
            PIPELINE_FRAME,
            OverBudget::TakeNothing,
        )
    }

    /// Takes a worker begun early (or, with `None`, a new one) through its start,
    /// registered under `slot` for `terminate`.
    pub(super) fn launch(&self, slot: usize, begun: Option<Starting>) -> Result<Connection> {
        let register = |pid: u32, held: Option<std::os::fd::BorrowedFd<'_>>| {
            // Copying the launcher's pidfd is cheaper than opening another (which
            // allocates a file).
            let pidfd = match held {
                Some(fd) => fd.try_clone_to_owned().ok(),
                None => crate::sys::pidfd(pid),
            };
            let mut state = lock(&self.state);
            if state.terminated {
                return false;
            }
            state.running.insert(slot, Registered { pid, pidfd });
            true
        };
        let started = begun.map_or_else(|| self.launcher.begin(), Ok);
        let connected = match self.launcher.finish(started, &register) {
            Ok(c) => c,
            Err(e) => {
                self.forget(slot);
                return Err(e);
            }
        };
        let live =
            Connection::new(connected, self.settings.task_timeout).map_err(|source| Error::Io {
                context: "cannot configure a worker's socket",
                source,
            })?;
        if lock(&self.state).terminated {
            let mut live = live;
            live.proc.kill();
            live.proc.reap();
            self.forget(slot);
            return Err(Error::Closed);
        }
        Ok(live)
    }

    pub(super) fn forget(&self, slot: usize) {
        lock(&self.state).running.remove(&slot);
    }
}

/// A slot: one thread that owns one worker process at a time, keeps up to
/// [`PIPELINE_DEPTH`] chunks in flight on it, and reads their results in order.
pub(super) fn slot_main(shared: Arc<PoolCore>, slot: usize, ready: mpsc::Sender<Result<()>>) {
    let live = match shared.launch(slot, None) {
        Ok(live) => {
            let _ = ready.send(Ok(()));
            live
        }
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    drop(ready);
    let mut slot = Slot::new(&shared, slot, live);
    slot.serve();
    slot.stop();
}

pub(super) struct Slot<'a> {
    pub(super) shared: &'a PoolCore,
    pub(super) index: usize,
    pub(super) live: Option<Connection>,
    pub(super) inflight: VecDeque<InFlight>,
    pub(super) start_error: Option<String>,
    /// Workers told to exit whose end is not collected yet: the replacement starts
    /// first.
    pub(super) retiring: Vec<WorkerProcess>,
    /// When the last chunk completed on this worker (a chunk pipelined behind it
    /// started then).
    pub(super) last_done: Option<Instant>,
    /// The next worker, begun while the current one runs the last tasks it may
    /// take (`max_tasks_per_child`), so that it is ready, or nearly, when that one
    /// retires. Killed if the slot stops first.
    pub(super) next_worker: Option<Starting>,
}

impl<'a> Slot<'a> {
    /// Slot `index` with its worker `live`, nothing in flight.
    pub(super) fn new(shared: &'a PoolCore, index: usize, live: Connection) -> Slot<'a> {
        Slot {
            shared,
            index,
            live: Some(live),
            inflight: VecDeque::new(),
            start_error: None,
            retiring: Vec::new(),
            last_done: None,
            next_worker: None,
        }
    }
}

impl Slot<'_> {
    /// Tasks the current worker may still take before it is retired.
    pub(super) fn capacity(&self) -> Option<usize> {
        let max = self.shared.settings.max_tasks_per_child?;
        let used = self.live.as_ref().map_or(0, |l| l.tasks)
            + self
                .inflight
                .iter()
                .map(|f| f.chunk.items.len())
                .sum::<usize>();
        Some(max.saturating_sub(used))
    }

    /// Takes over what a caller left when it gave this slot back without a worker
    /// ([`ParkedWorker::Vacated`]).
    pub(super) fn take_over(&mut self, handover: Handover) {
        self.retiring.extend(handover.retiring);
        if let Some(next) = handover.next_worker
            && self.next_worker.is_none()
        {
            self.next_worker = Some(next);
        }
    }

    pub(super) fn serve(&mut self) {
        loop {
            if self.inflight.is_empty() && !self.start_next() {
                return;
            }
            self.top_up();
            self.read_one();
        }
    }

    /// Waits for a chunk and sends it; false when the slot should stop.
    pub(super) fn start_next(&mut self) -> bool {
        loop {
            if self.live.is_none() {
                let launched = match self.shared.launch(self.index, self.next_worker.take()) {
                    // A start that failed once (its process was killed, say) is
                    // made again before the chunks that wait for it fail.
                    Err(e) if !matches!(e, Error::Closed | Error::Initializer { .. }) => {
                        self.shared.launch(self.index, None)
                    }
                    other => other,
                };
                self.collect_retired();
                match launched {
                    Ok(l) => {
                        self.live = Some(l);
                        self.start_error = None;
                    }
                    Err(Error::Closed) => return false,
                    Err(e) => self.start_error = Some(e.to_string()),
                }
            }
            let mut handover = Handover::default();
            let next = self
                .shared
                .next_chunk(self.index, &mut self.live, &mut handover);
            self.take_over(handover);
            let (job, chunk) = match next {
                Next::Chunk(job, chunk) => (job, chunk),
                Next::Relaunch => continue,
                Next::Stop => return false,
            };
            if self.live.is_none() {
                let reason = self
                    .start_error
                    .clone()
                    .unwrap_or_else(|| "unknown start failure".to_owned());
                fail_chunk(
                    &job,
                    chunk.first,
                    chunk.items.len(),
                    &TaskError::WorkerStart { reason },
                );
                self.shared.chunk_done(self.index);
                // Do not spin on a start failure that repeats.
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
            if self.dispatch(job, chunk) {
                return true;
            }
        }
    }

    /// Sends `chunk` to the live worker and tracks it as in flight. False when there
    /// is no live worker or it turned out dead: the chunk is then requeued, or
    /// handed to `lost` without blame.
    pub(super) fn dispatch(&mut self, job: Arc<JobInfo>, chunk: Chunk) -> bool {
        let Some(worker) = self.live.as_mut() else {
            self.shared
                .requeue(&job, chunk.job, chunk.first, chunk.items);
            self.shared.chunk_done(self.index);
            return false;
        };
        // A worker that died while idle is replaced without blaming any task.
        if worker.proc.try_status().is_some() {
            self.shared.forget(self.index);
            self.live = None;
            self.shared
                .requeue(&job, chunk.job, chunk.first, chunk.items);
            self.shared.chunk_done(self.index);
            return false;
        }
        if !self.send(job, chunk) {
            // It died before it could start this chunk: nobody is to blame.
            self.lost(Loss::Died, Running::Nothing);
            return false;
        }
        true
    }

    /// Writes `chunk` to the live worker and tracks it as in flight (also when the
    /// write failed: the worker's loss then sorts it out). False if the write failed.
    pub(super) fn send(&mut self, job: Arc<JobInfo>, chunk: Chunk) -> bool {
        // This chunk spends what the worker may still take (`max_tasks_per_child`).
        let last = self
            .capacity()
            .is_some_and(|left| left <= chunk.items.len());
        let sent = self.live.as_mut().is_some_and(|worker| {
            self.shared
                .send_run(worker, &job, &chunk.items, last)
                .is_ok()
        });
        self.inflight.push_back(InFlight {
            job,
            chunk,
            reported: 0,
            sent,
            out: Outcomes::new(),
            sent_at: Instant::now(),
        });
        if sent && last && self.next_worker.is_none() {
            // The worker retires once the chunks it holds are done: start the next
            // one now, in parallel with them. Should that fail, the start after
            // the retirement tries again and reports why.
            self.next_worker = self.shared.launcher.begin().ok();
        }
        sent
    }

    /// Runs one chunk on the current worker and reads all its results (for
    /// [`PoolCore::run_inline`]).
    pub(super) fn run_chunk(&mut self, job: Arc<JobInfo>, chunk: Chunk) {
        if self.dispatch(job, chunk) {
            while !self.inflight.is_empty() && self.live.is_some() {
                self.read_one();
            }
        }
    }

    /// How long the chunks in flight are estimated to keep the worker busy (their
    /// unreported items at their jobs' measured time per item); `None` if a job
    /// has no measure yet.
    pub(super) fn busy_for(&self) -> Option<Duration> {
        self.inflight.iter().try_fold(Duration::ZERO, |total, f| {
            let left = f.chunk.items.len() - f.reported;
            Some(total.saturating_add(f.job.expected(left)?))
        })
    }

    /// Sends small queued chunks behind the ones in flight, while those are
    /// estimated to be done within [`PIPELINE_HORIZON`]: a chunk behind a long
    /// one would wait for it even if another worker became free meanwhile.
    pub(super) fn top_up(&mut self) {
        while self.inflight.len() < PIPELINE_DEPTH && self.live.is_some() {
            if self.busy_for().is_none_or(|busy| busy > PIPELINE_HORIZON) {
                return;
            }
            let Some((job, chunk)) = self.shared.pipelined_chunk(self.index, self.capacity())
            else {
                return;
            };
            if !self.send(job, chunk) {
                // The head chunk's read will see the death and sort everything out.
                return;
            }
        }
    }

    /// Reads the next result of the oldest chunk in flight (and any more of its
    /// results that arrived with it).
    pub(super) fn read_one(&mut self) {
        let (Some(worker), Some(head)) = (self.live.as_mut(), self.inflight.front_mut()) else {
            return;
        };
        let index = head.chunk.first + head.reported as u64;
        let max = head.chunk.items.len() - head.reported;
        match self
            .shared
            .receive(worker, &head.job, index, max, &mut head.out)
        {
            Ok(count) => {
                head.reported += count;
                if head.reported == head.chunk.items.len() {
                    let done = self.inflight.pop_front().expect("a head chunk");
                    let now = Instant::now();
                    let began = self.last_done.map_or(done.sent_at, |t| t.max(done.sent_at));
                    done.job
                        .observe(now.duration_since(began) / done.chunk.items.len() as u32);
                    self.last_done = Some(now);
                    // Free before the caller hears: a caller that submits again at
                    // once must find this slot free, or its next chunk may be
                    // pipelined behind a long one on another worker.
                    self.shared.chunk_done(self.index);
                    done.job.send(done.out);
                    worker.tasks += done.chunk.items.len();
                    let retire = self
                        .shared
                        .settings
                        .max_tasks_per_child
                        .is_some_and(|max| worker.tasks >= max);
                    if retire && self.inflight.is_empty() {
                        self.retire();
                    }
                }
            }
            Err(loss) => self.lost(loss, Running::HeadItem),
        }
    }

    /// Tells the current worker to exit. Its end is collected later
    /// ([`Slot::collect_retired`]), after its replacement has started.
    pub(super) fn retire(&mut self) {
        if let Some(old) = self.live.take() {
            self.shared.forget(self.index);
            old.tell_to_exit();
            self.retiring.push(old.proc);
        }
    }

    /// Collects the ends of retired workers that have exited, without waiting.
    pub(super) fn collect_retired(&mut self) {
        self.retiring.retain_mut(|proc| proc.try_status().is_none());
    }

    /// The worker is gone. If it was running the head chunk's next item, that item
    /// gets the loss's error ([`TaskError::WorkerDied`] if it died by itself);
    /// everything else in flight goes back to the queue.
    pub(super) fn lost(&mut self, loss: Loss, running: Running) {
        let Some(mut old) = self.live.take() else {
            return;
        };
        let pid = old.proc.pid();
        let exit = if matches!(loss, Loss::Killed(_)) {
            old.proc.kill();
            self.shared.forget(self.index);
            old.proc.reap()
        } else {
            let exit = old.proc.wait_or_kill(Duration::from_secs(2));
            self.shared.forget(self.index);
            exit
        };
        let terminated = lock(&self.shared.state).terminated;
        let busy = old.busy;
        // A worker that died by itself (no timeout, no protocol error) with several
        // items of its chunk unreported may have finished some of them: their
        // results can sit unsent in its buffer for up to the result window. Run those
        // items again one per chunk, where the one that kills its worker is known
        // exactly; the others deliver their results once.
        // Without a result window every finished task's result was sent before the
        // next task started, so the first unreported item is the one it ran.
        // A forked worker also dies with its fork server: with the server gone and
        // the worker's end unknown, the loss is the server's, so its unreported
        // items run again one per chunk too, and a task that takes the server down
        // with it is blamed at its second run.
        let started = running == Running::HeadItem;
        let windowed = !self.shared.launcher.config().result_window.is_zero();
        let with_server = matches!(exit, WorkerExit::Unknown) && old.proc.fork_server_gone();
        let ambiguous = started
            && matches!(loss, Loss::Died)
            && !terminated
            && !busy
            && self.inflight.front().is_some_and(|f| {
                let unreported = f.chunk.items.len() - f.reported;
                f.sent
                    && ((windowed && unreported > 1)
                        || (with_server && !f.chunk.isolated && unreported > 0))
            });
        if ambiguous
            && let Some(InFlight {
                job,
                mut chunk,
                reported,
                out,
                ..
            }) = self.inflight.pop_front()
        {
            job.send(out);
            let rest = chunk.items.split_off(reported);
            let first = chunk.first + reported as u64;
            self.shared.requeue_singly(&job, chunk.job, first, rest);
            self.shared.chunk_done(self.index);
        }
        let mut blame = (started && !ambiguous).then_some(loss);
        while let Some(InFlight {
            job,
            mut chunk,
            reported,
            sent,
            out,
            ..
        }) = self.inflight.pop_front()
        {
            // What arrived before the loss goes first.
            job.send(out);
            let mut rest = chunk.items.split_off(reported.min(chunk.items.len()));
            let mut first = chunk.first + reported as u64;
            // Only the item the worker was running is to blame: the next unreported
            // one of the oldest chunk it received.
            if let Some(loss) = blame.take()
                && sent
                && !rest.is_empty()
            {
                rest = rest.split_off(1);
                let error = match loss {
                    _ if terminated => TaskError::Terminated,
                    Loss::Killed(error) => error,
                    Loss::Died => TaskError::WorkerDied {
                        pid,
                        exit,
                        memory_limited: self.shared.launcher.config().memory_limit.is_some(),
                    },
                };
                job.send_error(first, error);
                first += 1;
            }
            self.shared.requeue(&job, chunk.job, first, rest);
            self.shared.chunk_done(self.index);
        }
    }

    /// Ends the slot: stops its worker (gracefully unless terminating).
    pub(super) fn stop(&mut self) {
        {
            let mut state = lock(&self.shared.state);
            loop {
                match state.parked.remove(&self.index) {
                    None => break,
                    Some(ParkedWorker::Idle(l)) => {
                        self.live = Some(l);
                        break;
                    }
                    Some(ParkedWorker::Vacated(handover)) => {
                        self.take_over(handover);
                        break;
                    }
                    Some(ParkedWorker::Lent) => {
                        state.parked.insert(self.index, ParkedWorker::Lent);
                        state.returned_waiters += 1;
                        state = self
                            .shared
                            .returned
                            .wait(state)
                            .unwrap_or_else(|e| e.into_inner());
                        state.returned_waiters -= 1;
                    }
                }
            }
        }
        // A worker begun for later is not needed (killed when dropped).
        drop(self.next_worker.take());
        if !self.inflight.is_empty() {
            self.lost(Loss::Killed(TaskError::Terminated), Running::HeadItem);
        }
        // Retired workers were idle when told to exit, so they end promptly; waiting
        // for that (rather than killing) never signals a PID the fork server has
        // already reaped.
        for mut proc in std::mem::take(&mut self.retiring) {
            proc.wait_or_kill(Duration::from_secs(2));
        }
        let terminated = lock(&self.shared.state).terminated;
        if let Some(mut worker) = self.live.take() {
            self.shared.forget(self.index);
            if terminated {
                worker.proc.kill();
                worker.proc.reap();
            } else {
                worker.tell_to_exit();
                worker.proc.wait_or_kill(Duration::from_secs(2));
            }
        }
    }
}

/// The worker of an idle slot, parked in the state so that a caller waiting for
/// its own task can run it on that worker directly ([`PoolCore::run_inline`]): the
/// slot thread then wakes neither to send the task nor to hand back its result.
/// No entry: the slot thread holds its worker.
pub(super) enum ParkedWorker {
    /// Idle, with this worker.
    Idle(Connection),
    /// A caller runs a chunk on it.
    Lent,
    /// Given back without a worker (it was lost, or retired by
    /// `max_tasks_per_child`): the slot starts a new one, and takes over what the
    /// caller left.
    Vacated(Handover),
}

/// What a caller that ran a chunk on a borrowed worker leaves to the slot: the
/// worker it retired (to be reaped) and the successor it began.
#[derive(Default)]
pub(super) struct Handover {
    pub(super) retiring: Vec<WorkerProcess>,
    pub(super) next_worker: Option<Starting>,
}

impl PoolCore {
    /// The next chunk for slot `slot`, waiting for one. While it waits, the slot's
    /// idle worker is parked for callers to borrow; it is back in `live` (or gone,
    /// [`Next::Relaunch`], with what the caller left in `handover`) when this
    /// returns. The chunk fits what the worker may still take
    /// (`max_tasks_per_child`), callers' tasks counted.
    pub(super) fn next_chunk(
        &self,
        slot: usize,
        live: &mut Option<Connection>,
        handover: &mut Handover,
    ) -> Next {
        let limit = usize::try_from(self.launcher.config().max_frame).unwrap_or(usize::MAX);
        let mut state = lock(&self.state);
        loop {
            match state.parked.remove(&slot) {
                None => {}
                Some(ParkedWorker::Idle(l)) => *live = Some(l),
                Some(ParkedWorker::Vacated(left)) => {
                    *handover = left;
                    *live = None;
                    if state.terminated || (state.closed && state.queue.is_empty()) {
                        return Next::Stop;
                    }
                    return Next::Relaunch;
                }
                Some(ParkedWorker::Lent) => {
                    state.parked.insert(slot, ParkedWorker::Lent);
                    // A wake-up meant for an idle slot goes on to another one.
                    if !state.queue.is_empty() {
                        self.work.notify_one();
                    }
                    state.returned_waiters += 1;
                    state = self.returned.wait(state).unwrap_or_else(|e| e.into_inner());
                    state.returned_waiters -= 1;
                    continue;
                }
            }
            if state.terminated {
                return Next::Stop;
            }
            let capacity = self.capacity_of(live.as_ref());
            if let Some((job, chunk)) =
                self.take(&mut state, slot, capacity, limit, OverBudget::TakeFirst)
            {
                return Next::Chunk(job, chunk);
            }
            if state.closed {
                return Next::Stop;
            }
            if let Some(l) = live.take() {
                state.parked.insert(slot, ParkedWorker::Idle(l));
            }
            state = self.work.wait(state).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// How many tasks `live` may still take (`max_tasks_per_child`), at least one.
    pub(super) fn capacity_of(&self, live: Option<&Connection>) -> Option<usize> {
        let max = self.settings.max_tasks_per_child?;
        Some(max.saturating_sub(live.map_or(0, |l| l.tasks)).max(1))
    }
}
