//! The thread that starts the pool's child processes.
//!
//! Every process the pool starts dies with the pool's process
//! (`sys::die_with_parent`): it asks the kernel for `SIGKILL` when its parent
//! ends. On Linux that "parent" is the *thread* that started it, so a worker
//! started from a caller's short-lived thread (an `apply` that began a
//! replacement, a `build` on a thread that then ended) would be killed with that
//! thread. One thread per launcher starts them all instead, and lives as long as
//! the launcher: until every process it started has been stopped.

use std::io;
use std::process::{Child, Command};
use std::sync::Mutex;
use std::sync::mpsc;
use std::thread::JoinHandle;

use crate::sync::lock;

/// A command to start, and where its child goes.
type Request = (Command, mpsc::SyncSender<io::Result<Child>>);

/// The launcher's spawning thread, started on its first request (a `Fork` pool,
/// whose workers the fork server forks, never has one).
#[derive(Default)]
pub(super) struct Spawner {
    thread: Mutex<Option<(mpsc::Sender<Request>, JoinHandle<()>)>>,
}

impl Spawner {
    /// Starts `command` from the spawning thread.
    pub(super) fn spawn(&self, command: Command) -> io::Result<Child> {
        let (reply, child) = mpsc::sync_channel(1);
        {
            let mut thread = lock(&self.thread);
            if thread.is_none() {
                let (requests, incoming) = mpsc::channel::<Request>();
                let handle = std::thread::Builder::new()
                    .name("dilly-pool-spawner".into())
                    .spawn(move || {
                        for (mut command, reply) in incoming {
                            let _ = reply.send(command.spawn());
                        }
                    })?;
                *thread = Some((requests, handle));
            }
            let (requests, _) = thread.as_ref().expect("started above");
            requests
                .send((command, reply))
                .map_err(|_| io::Error::other("the pool's spawning thread is gone"))?;
        }
        child
            .recv()
            .map_err(|_| io::Error::other("the pool's spawning thread is gone"))?
    }
}

impl Drop for Spawner {
    fn drop(&mut self) {
        let thread = self.thread.get_mut().unwrap_or_else(|e| e.into_inner());
        if let Some((requests, handle)) = thread.take() {
            drop(requests);
            let _ = handle.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn children_outlive_the_threads_that_asked_for_them_and_errors_come_back() {
        let spawner = std::sync::Arc::new(Spawner::default());
        let children: Vec<Child> = (0..2)
            .map(|_| {
                let spawner = std::sync::Arc::clone(&spawner);
                std::thread::spawn(move || {
                    let mut command = Command::new("sleep");
                    command.arg("60");
                    spawner.spawn(command).unwrap()
                })
                .join()
                .unwrap()
            })
            .collect();
        for mut child in children {
            assert_eq!(child.try_wait().unwrap(), None, "it still runs");
            child.kill().unwrap();
            child.wait().unwrap();
        }
        let missing = Command::new("/nonexistent/dilly-pool-test");
        assert_eq!(
            spawner.spawn(missing).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        // Dropping it ends (and joins) its thread.
        drop(std::sync::Arc::into_inner(spawner).expect("the last reference"));
    }
}
