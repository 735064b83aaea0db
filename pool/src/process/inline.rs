//! Running a task from the caller's thread: a caller that waits for its own task
//! borrows an idle slot's worker, sends the chunk and reads the result itself.

use crate::sync::lock;

use super::PoolCore;
use super::queue::OverBudget;
use super::slot::{Handover, ParkedWorker, Slot};

impl PoolCore {
    /// Runs the next queued chunk, if it is one of job `job`'s, on an idle slot's
    /// worker in this (the caller's) thread: the worker is woken directly and its
    /// results are read here, two thread wake-ups per round trip instead of four.
    /// Failures are handled exactly as on the slot thread (the same [`Slot`] code
    /// runs). False if nothing was run.
    pub(super) fn run_inline(&self, job: u64) -> bool {
        let limit = usize::try_from(self.launcher.config().max_frame).unwrap_or(usize::MAX);
        let (index, live, info, chunk) = {
            let mut state = lock(&self.state);
            if state.terminated || state.queue.front().is_none_or(|c| c.job != job) {
                return false;
            }
            let Some(index) = state
                .parked
                .iter()
                .find_map(|(i, d)| matches!(d, ParkedWorker::Idle(_)).then_some(*i))
            else {
                return false;
            };
            let capacity = match state.parked.get(&index) {
                Some(ParkedWorker::Idle(live)) => self.capacity_of(Some(live)),
                _ => None,
            };
            let Some((info, chunk)) =
                self.take(&mut state, index, capacity, limit, OverBudget::TakeFirst)
            else {
                return false;
            };
            let Some(ParkedWorker::Idle(mut live)) = state.parked.insert(index, ParkedWorker::Lent)
            else {
                unreachable!("the worker was parked")
            };
            live.inline = true;
            (index, live, info, chunk)
        };
        let mut slot = Slot::new(self, index, live);
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            slot.run_chunk(info, chunk);
        }));
        let mut live = slot.live.take();
        if let Some(live) = &mut live {
            live.inline = false;
        }
        // A worker retired here, and the successor begun with its last task, go to
        // the slot, given back without a worker (a worker still live has neither).
        let handover = Handover {
            retiring: std::mem::take(&mut slot.retiring),
            next_worker: slot.next_worker.take(),
        };
        {
            let mut state = lock(&self.state);
            let lost = live.is_none();
            state.parked.insert(
                index,
                live.map_or(ParkedWorker::Vacated(handover), ParkedWorker::Idle),
            );
            if lost {
                // Its slot thread starts a replacement at once.
                self.work.notify_all();
            }
            if state.returned_waiters > 0 {
                self.returned.notify_all();
            }
        }
        if let Err(panic) = run {
            std::panic::resume_unwind(panic);
        }
        true
    }
}
