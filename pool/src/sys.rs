//! The only module with `unsafe` code: `fork`, signals, `waitpid`, `setrlimit`,
//! `poll`, pidfds and the environment before `main`. Everything here is a thin,
//! safe wrapper whose preconditions are checked (or cannot be violated) by callers.
//! The crate denies `unsafe_code`; each function here that needs it allows it for
//! itself, so a safe wrapper that does not stays checked.

use std::io;

/// Number of threads in this process, from `/proc/self/task` (Linux). `None` where
/// it cannot be counted.
pub(crate) fn thread_count() -> Option<usize> {
    std::fs::read_dir("/proc/self/task")
        .ok()
        .map(|dir| dir.filter(|e| e.is_ok()).count())
}

/// Forks this process if, and only if, it has exactly one thread. Returns
/// `Ok(None)` in the child and `Ok(Some(pid))` in the parent.
///
/// The child must only run code that does not depend on other threads (it has
/// none), and leave through [`exit_now`].
pub(crate) fn fork_single_threaded() -> Result<Option<u32>, ForkRefused> {
    SingleThreaded::check()?.fork().map_err(ForkRefused::Os)
}

/// How long [`SingleThreaded::check`] waits for threads that were just joined to
/// leave the count.
const SETTLE: std::time::Duration = std::time::Duration::from_millis(50);

/// Proof that this process had a single thread when it was made, for a loop that
/// forks again and again and never starts a thread (the fork server): it counts the
/// threads once, so that no fork is preceded by a read of `/proc/self/task` (a
/// directory read and its allocations, whose pages every fork then copies). Not
/// `Send`: it stays with the thread that made it.
pub(crate) struct SingleThreaded {
    _not_send: std::marker::PhantomData<*const ()>,
}

impl SingleThreaded {
    /// Counts this process's threads: the proof if there is exactly one. Flushes
    /// buffered standard output, which both processes would write otherwise: the
    /// holder prints nothing before it forks (the fork server prints nothing at
    /// all, and a flush before every fork copied the page of stdout's lock in
    /// each).
    ///
    /// A thread that was just joined can still be listed for a moment (the kernel
    /// wakes its joiner before it removes the thread: a few joins in ten thousand
    /// on Linux 6), so a count above one is taken again for up to
    /// [`SETTLE`] before it refuses.
    pub(crate) fn check() -> Result<SingleThreaded, ForkRefused> {
        let started = std::time::Instant::now();
        let mut count = thread_count();
        while count.is_some_and(|n| n > 1) && started.elapsed() < SETTLE {
            std::thread::sleep(std::time::Duration::from_micros(100));
            count = thread_count();
        }
        match count {
            Some(1) => {
                use std::io::Write;
                let _ = std::io::stdout().flush();
                Ok(SingleThreaded {
                    _not_send: std::marker::PhantomData,
                })
            }
            Some(threads) => Err(ForkRefused::Threads(threads)),
            None => Err(ForkRefused::Uncountable),
        }
    }

    /// Forks: `Ok(None)` in the child, `Ok(Some(pid))` in the parent. The holder
    /// must not have started a thread (nor printed) since
    /// [`check`](SingleThreaded::check); the child runs only code that does not
    /// depend on other threads and leaves through [`exit_now`].
    #[allow(unsafe_code)]
    pub(crate) fn fork(&self) -> io::Result<Option<u32>> {
        // SAFETY: the process had a single thread when `self` was made, and its
        // holder starts none (the fork server's loop, or `fork_single_threaded`
        // right after the check), so no lock can be held by a thread that does not
        // exist in the child, which is the hazard of forking a multi-threaded
        // process. `fork` has no memory-safety preconditions of its own.
        let pid = unsafe { libc::fork() };
        match pid {
            -1 => Err(io::Error::last_os_error()),
            0 => Ok(None),
            pid => Ok(Some(pid as u32)),
        }
    }
}

/// Why [`fork_single_threaded`] did not fork.
#[derive(Debug)]
pub(crate) enum ForkRefused {
    /// The process runs this many threads.
    Threads(usize),
    /// `/proc/self/task` could not be read.
    Uncountable,
    /// `fork` itself failed.
    Os(io::Error),
}

/// Ends the process at once, without running `atexit` handlers or destructors that
/// belong to the parent a forked child was copied from.
#[allow(unsafe_code)]
pub(crate) fn exit_now(code: i32) -> ! {
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    // SAFETY: `_exit` takes an integer and never returns; it is async-signal-safe
    // and valid in any process state.
    unsafe { libc::_exit(code) }
}

/// Has the kernel `SIGKILL` this process when its parent ends, then checks that
/// its parent is still `parent`, the process that started it: one that died before
/// the signal was set would never send it (this process was handed to another
/// parent already). False if it is gone; the caller then exits.
///
/// On Linux the signal comes when the *thread* that started this process ends, not
/// the whole parent: the pool starts processes only from threads that live as long
/// as the processes they start. Elsewhere only the check is made.
pub(crate) fn die_with_parent(parent: u32) -> bool {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        // Should setting it fail (it cannot, for a valid signal), the check below
        // still stands; the process then ends when it finds its stream closed.
        let _ =
            rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL));
    }
    std::os::unix::process::parent_id() == parent
}

/// Whether process `pid` is stopped by a signal (`SIGSTOP`, `SIGTSTP`, ...: state
/// `T` in `/proc/<pid>/stat`). A process stopped by a tracer (state `t`, a
/// debugger), a running one, one that is gone, or one on a system without `/proc`
/// is not.
pub(crate) fn is_stopped(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The state follows the command name, in parentheses that may hold anything.
    stat.rfind(')')
        .and_then(|end| stat.get(end + 2..))
        .and_then(|rest| rest.chars().next())
        == Some('T')
}

/// Sends `SIGKILL` to `pid`. Errors (the process is already gone) are ignored.
#[allow(unsafe_code)]
pub(crate) fn kill(pid: u32) {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return;
    };
    if pid <= 0 {
        // 0 and negative values address process groups: never do that.
        return;
    }
    // SAFETY: `kill` only takes integers; `pid` is a positive process ID, so it
    // addresses one process and never a group.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
}

/// Reaps one exited child without blocking: `(pid, raw wait status)`.
#[allow(unsafe_code)]
pub(crate) fn reap_any() -> Option<(u32, i32)> {
    let mut status: libc::c_int = 0;
    // SAFETY: `status` is a valid, writable `c_int` for the duration of the call;
    // `-1` waits for any child, `WNOHANG` never blocks.
    let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
    if pid > 0 {
        Some((pid as u32, status))
    } else {
        None
    }
}

/// Limits this process's address space (`RLIMIT_AS`) to `bytes`.
#[allow(unsafe_code)]
pub(crate) fn set_memory_limit(bytes: u64) -> io::Result<()> {
    let limit = libc::rlimit {
        rlim_cur: bytes as libc::rlim_t,
        rlim_max: bytes as libc::rlim_t,
    };
    // SAFETY: `limit` is a valid `rlimit` that lives across the call, which only
    // reads it.
    let rc = unsafe { libc::setrlimit(libc::RLIMIT_AS, &limit) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Removes the worker marker from this process's environment, so programs the
/// worker's tasks start do not take themselves for workers.
#[allow(unsafe_code)]
pub(crate) fn forget_marker(name: &str) {
    // SAFETY: called only by a worker before it has started any thread (before
    // `main` from the pre-main hook, first thing in `serve_if_worker`, or in a
    // freshly forked single-threaded child), so no other thread reads the
    // environment concurrently.
    unsafe { std::env::remove_var(name) }
}

/// Waits (blocking) for the child `pid` to end.
#[allow(unsafe_code)]
pub(crate) fn wait_pid(pid: u32) -> Option<i32> {
    let pid = libc::pid_t::try_from(pid).ok().filter(|p| *p > 0)?;
    let mut status: libc::c_int = 0;
    loop {
        // SAFETY: `status` is a valid, writable `c_int` for the duration of the
        // call; `pid` is positive, so only that child is waited for.
        let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
        if rc == pid {
            return Some(status);
        }
        if rc == -1 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
            continue;
        }
        return None;
    }
}

/// Writes all of `buf` to a connected socket without ever raising `SIGPIPE` (a peer
/// that died must be an error, not the end of this process, even in programs that
/// restored the default `SIGPIPE` action).
#[allow(unsafe_code)]
pub(crate) fn send_all(socket: &std::os::unix::net::UnixStream, mut buf: &[u8]) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    #[cfg(any(target_os = "linux", target_os = "android"))]
    const FLAGS: libc::c_int = libc::MSG_NOSIGNAL;
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    const FLAGS: libc::c_int = 0;
    while !buf.is_empty() {
        // SAFETY: the pointer and length describe the live slice `buf`, which `send`
        // only reads; the descriptor belongs to `socket`, borrowed for the call.
        let n = unsafe { libc::send(socket.as_raw_fd(), buf.as_ptr().cast(), buf.len(), FLAGS) };
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        buf = &buf[n as usize..];
    }
    Ok(())
}

/// Writes all of `frame` to `socket` with a copy of `fd` attached (`SCM_RIGHTS`):
/// the peer receives its own descriptor for the same open socket or file, with
/// the frame's first bytes ([`recv_with_fds`]). Never raises `SIGPIPE`.
pub(crate) fn send_with_fd(
    socket: &std::os::unix::net::UnixStream,
    frame: &[u8],
    fd: std::os::fd::BorrowedFd<'_>,
) -> io::Result<()> {
    use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let flags = SendFlags::NOSIGNAL;
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let flags = SendFlags::empty();
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    let fds = [fd];
    if !control.push(SendAncillaryMessage::ScmRights(&fds)) {
        return Err(io::Error::other(
            "no room for a descriptor in the control buffer",
        ));
    }
    let sent = loop {
        match rustix::net::sendmsg(socket, &[io::IoSlice::new(frame)], &mut control, flags) {
            Ok(sent) => break sent,
            Err(rustix::io::Errno::INTR) => continue,
            Err(err) => return Err(err.into()),
        }
    };
    // A short write sent the descriptor with the first part; the rest is plain.
    send_all(socket, &frame[sent..])
}

/// Descriptors one [`recv_with_fds`] call can take: more than a peer that attaches
/// one per frame ever sends at once (Linux hands them over one message at a time).
const MAX_RECEIVED_FDS: usize = 4;

/// One `recvmsg` on `socket` into `buf`: the number of bytes read (0 at the end of
/// the stream), with any descriptors that came along appended to `fds` (close on
/// exec). Descriptors the kernel had to drop for want of room are an error, since
/// the caller could no longer tell which frame each belongs to.
pub(crate) fn recv_with_fds(
    socket: &std::os::unix::net::UnixStream,
    buf: &mut [u8],
    fds: &mut std::collections::VecDeque<std::os::fd::OwnedFd>,
) -> io::Result<usize> {
    use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags};
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let flags = RecvFlags::CMSG_CLOEXEC;
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let flags = RecvFlags::empty();
    let mut space =
        [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_RECEIVED_FDS))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let received = loop {
        match rustix::net::recvmsg(socket, &mut [io::IoSliceMut::new(buf)], &mut control, flags) {
            Ok(received) => break received,
            Err(rustix::io::Errno::INTR) => continue,
            Err(err) => return Err(err.into()),
        }
    };
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(passed) = message {
            fds.extend(passed);
        }
    }
    if received.flags.contains(ReturnFlags::CTRUNC) {
        return Err(io::Error::other(
            "descriptors sent along were dropped (control buffer too small)",
        ));
    }
    Ok(received.bytes)
}

/// Waits until one of `fds` is readable (or hung up / in error), at most `timeout`
/// (forever with `None`). Returns which ones are ready; all `false` on a timeout or
/// when a signal interrupted the wait.
#[allow(unsafe_code)]
pub(crate) fn poll_readable(
    fds: &[std::os::fd::BorrowedFd<'_>],
    timeout: Option<std::time::Duration>,
) -> io::Result<Vec<bool>> {
    use std::os::fd::AsRawFd;
    let mut polled: Vec<libc::pollfd> = fds
        .iter()
        .map(|fd| libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let millis = match timeout {
        None => -1,
        // Round up, so a short positive timeout never becomes a busy loop.
        Some(t) => libc::c_int::try_from(t.as_micros().div_ceil(1000)).unwrap_or(libc::c_int::MAX),
    };
    // SAFETY: `polled` is a valid, writable array of `polled.len()` `pollfd`s for the
    // duration of the call; every descriptor in it is borrowed from `fds`, so it
    // stays open until `poll` returns.
    let rc = unsafe { libc::poll(polled.as_mut_ptr(), polled.len() as libc::nfds_t, millis) };
    if rc < 0 {
        let err = io::Error::last_os_error();
        if err.kind() == io::ErrorKind::Interrupted {
            return Ok(vec![false; fds.len()]);
        }
        return Err(err);
    }
    Ok(polled.iter().map(|p| p.revents != 0).collect())
}

/// A descriptor that becomes readable when process `pid` ends (`pidfd_open`, Linux
/// 5.3+). `None` where unsupported; callers then fall back to polling the status.
///
/// Only for processes whose PID cannot have been reused yet: this process's own
/// unwaited children, or a process that has just shown it is alive (a forked
/// worker's hello).
#[allow(unsafe_code)]
pub(crate) fn pidfd(pid: u32) -> Option<std::os::fd::OwnedFd> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        use std::os::fd::FromRawFd;
        let pid = libc::pid_t::try_from(pid).ok().filter(|p| *p > 0)?;
        // SAFETY: `pidfd_open` takes a PID and flags (0) and returns a new
        // descriptor or -1; it reads and writes no memory of ours.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0 as libc::c_uint) };
        let fd = libc::c_int::try_from(fd).ok().filter(|fd| *fd >= 0)?;
        // SAFETY: `fd` was just returned by `pidfd_open`, is open, and is owned by
        // nothing else.
        Some(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        let _ = pid;
        None
    }
}

/// Sends `SIGKILL` to the process `pidfd` was opened for: never to another one
/// that got its PID after it ended (and was reaped, perhaps by another process,
/// such as a fork server). Errors (it has ended already) are ignored.
pub(crate) fn pidfd_kill(pidfd: std::os::fd::BorrowedFd<'_>) {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let _ = rustix::process::pidfd_send_signal(pidfd, rustix::process::Signal::KILL);
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let _ = pidfd;
}

/// Kills a process through its pidfd when there is one, which cannot reach another
/// process that reused the PID; by PID otherwise.
pub(crate) fn kill_process(pidfd: Option<std::os::fd::BorrowedFd<'_>>, pid: u32) {
    match pidfd {
        Some(fd) => pidfd_kill(fd),
        None => kill(pid),
    }
}

/// Whether `fd` is readable now — data, end of stream, or an error to read —
/// without waiting. A failed `poll` counts as readable: the caller's read then
/// reports what is wrong.
#[allow(unsafe_code)]
pub(crate) fn readable_now(fd: std::os::fd::BorrowedFd<'_>) -> bool {
    use std::os::fd::AsRawFd;
    let mut polled = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: `polled` is one valid, writable `pollfd` for the duration of the call;
    // its descriptor is borrowed from `fd`, so it stays open until `poll` returns. A
    // zero timeout never blocks.
    let rc = unsafe { libc::poll(&mut polled, 1, 0) };
    rc != 0 && (rc < 0 || polled.revents != 0)
}

/// Looks at `fd` without blocking, again and again, for at most `window`, yielding
/// the CPU between looks (so a thread that needs it, such as the peer on the same
/// CPU, runs). True as soon as `fd` is readable ([`readable_now`]); false when the
/// window passed without that, or at once for a zero window.
///
/// A bounded spin before a blocking read: when the peer answers within the window,
/// this thread never sleeps, so neither side pays for a wake-up (tens of
/// microseconds across CPUs on a VM).
pub(crate) fn spin_until_readable(
    fd: std::os::fd::BorrowedFd<'_>,
    window: std::time::Duration,
) -> bool {
    if window.is_zero() {
        return false;
    }
    let start = std::time::Instant::now();
    loop {
        if readable_now(fd) {
            return true;
        }
        if start.elapsed() >= window {
            return false;
        }
        std::thread::yield_now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;
    use std::time::Duration;

    #[test]
    fn descriptors_sent_with_frames_arrive_in_order_and_work() {
        use std::io::Read;
        let (sender, receiver) = UnixStream::pair().unwrap();
        let (mut first_peer, first) = UnixStream::pair().unwrap();
        let (mut second_peer, second) = UnixStream::pair().unwrap();
        send_with_fd(&sender, b"one", first.as_fd()).unwrap();
        send_with_fd(&sender, b"two", second.as_fd()).unwrap();
        // The receiver's copies are all that is left of them.
        drop((first, second));

        let mut fds = std::collections::VecDeque::new();
        let mut got = Vec::new();
        let mut buf = [0u8; 64];
        while got.len() < 6 {
            let n = recv_with_fds(&receiver, &mut buf, &mut fds).unwrap();
            assert_ne!(n, 0);
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(got, b"onetwo");
        assert_eq!(fds.len(), 2);
        for peer in [&mut first_peer, &mut second_peer] {
            let fd = fds.pop_front().unwrap();
            #[cfg(target_os = "linux")]
            assert!(
                rustix::io::fcntl_getfd(&fd)
                    .unwrap()
                    .contains(rustix::io::FdFlags::CLOEXEC),
                "received descriptors are close-on-exec"
            );
            let mut stream = UnixStream::from(fd);
            stream.write_all(b"x").unwrap();
            let mut byte = [0u8; 1];
            peer.read_exact(&mut byte).unwrap();
            assert_eq!(&byte, b"x");
        }
        drop(sender);
        assert_eq!(recv_with_fds(&receiver, &mut buf, &mut fds).unwrap(), 0);
    }

    #[test]
    fn descriptors_dropped_for_want_of_room_are_an_error() {
        use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
        const MANY: usize = MAX_RECEIVED_FDS * 2;
        let (sender, receiver) = UnixStream::pair().unwrap();
        let pairs: Vec<_> = (0..MANY).map(|_| UnixStream::pair().unwrap()).collect();
        let fds: Vec<_> = pairs.iter().map(|(a, _)| a.as_fd()).collect();
        let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MANY))];
        let mut control = SendAncillaryBuffer::new(&mut space);
        assert!(control.push(SendAncillaryMessage::ScmRights(&fds)));
        rustix::net::sendmsg(
            &sender,
            &[io::IoSlice::new(b"frame")],
            &mut control,
            SendFlags::empty(),
        )
        .unwrap();
        let mut received = std::collections::VecDeque::new();
        let err = recv_with_fds(&receiver, &mut [0u8; 16], &mut received).unwrap_err();
        assert!(err.to_string().contains("dropped"), "{err}");
    }

    #[test]
    fn pidfd_kill_ends_its_process_and_is_harmless_once_it_is_gone() {
        use std::os::unix::process::ExitStatusExt;
        let mut child = std::process::Command::new("sleep")
            .arg("60")
            .spawn()
            .unwrap();
        let fd = pidfd(child.id()).expect("pidfd_open (Linux 5.3+)");
        pidfd_kill(fd.as_fd());
        let status = child.wait().unwrap();
        assert_eq!(status.signal(), Some(libc::SIGKILL));
        // Reaped: its PID may belong to another process by now, which the
        // descriptor never reaches.
        pidfd_kill(fd.as_fd());
    }

    #[test]
    fn readable_now_sees_data_and_hang_ups_without_waiting() {
        let (mut a, b) = UnixStream::pair().unwrap();
        assert!(!readable_now(b.as_fd()));
        a.write_all(b"x").unwrap();
        assert!(readable_now(b.as_fd()));
        let (a, b) = UnixStream::pair().unwrap();
        drop(a);
        assert!(readable_now(b.as_fd()));
    }

    #[test]
    fn spin_until_readable_is_bounded_and_stops_at_data() {
        let (mut a, b) = UnixStream::pair().unwrap();
        // Nothing comes: the window passes.
        assert!(!spin_until_readable(b.as_fd(), Duration::from_millis(2)));
        // A zero window never looks.
        a.write_all(b"x").unwrap();
        assert!(!spin_until_readable(b.as_fd(), Duration::ZERO));
        assert!(spin_until_readable(b.as_fd(), Duration::from_millis(2)));
        // Data that arrives while it spins ends the spin (the window is far longer
        // than the test may take).
        let (a, b) = UnixStream::pair().unwrap();
        let writer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(5));
            (&a).write_all(b"y").unwrap();
            a
        });
        assert!(spin_until_readable(b.as_fd(), Duration::from_secs(60)));
        drop(writer.join().unwrap());
        // A peer that hangs up ends it too.
        let (a, b) = UnixStream::pair().unwrap();
        let closer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(5));
            drop(a);
        });
        assert!(spin_until_readable(b.as_fd(), Duration::from_secs(60)));
        closer.join().unwrap();
    }
}
