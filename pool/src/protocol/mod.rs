//! Frames between the parent and a worker (or a fork server).
//!
//! Every frame is a 4-byte little-endian length followed by that many bytes; the
//! first byte of the body is a message tag. Lengths are checked against a limit
//! before anything is allocated, so a corrupt or hostile peer cannot make the other
//! side allocate more than the limit. Bodies are hand-written little-endian fields:
//! the hot messages (`Run`, `Done`) are a few integers around opaque byte strings
//! that the core codec produced, so a general serializer would only add copies.
//! A failure travels as its [`TaskError`] in the core codec, the form every backend
//! sends.

mod address;
mod cursor;
mod frame;
#[cfg(test)]
mod tests;

pub(crate) use address::{connect, listen};
#[cfg(test)]
pub(crate) use frame::read_tagged;
pub(crate) use frame::{
    holds_frame, is_done, read_body_into, read_frame, read_head, split_done_frames, take_frame,
    write_frame,
};

use cursor::{BodyReader, BodyWriter};

use std::io;

use dilly::RawFunc;
use dilly::registry::RegistryFingerprint;

use crate::backend::Items;
use crate::error::TaskError;

/// Protocol revision, checked in the handshake (2: the spin window in `Config`, and
/// `RUN_SPIN`; 3: the result window in `Config`; 4: `Fork` carries the worker's
/// socket, and a forked worker reads its `Config` before its hello; 5: `RUN_LAST`;
/// 6: failures are [`TaskError`]s in the core codec).
pub(crate) const PROTOCOL: u32 = 6;

/// Bytes of framing around a message body, allowed on top of the payload limit.
pub(super) const OVERHEAD: usize = 64 << 10;

/// Payload limit for frames that carry no task data (hellos, fork requests, the
/// fork server's reports): they are tens of bytes, so a larger one is corrupt.
pub(crate) const CONTROL_FRAME_LIMIT: u64 = 1 << 20;

/// Tags of messages from the parent.
mod to_worker {
    pub(super) const CONFIG: u8 = 1;
    pub(super) const REJECT: u8 = 2;
    pub(super) const LOAD: u8 = 3;
    pub(super) const RUN: u8 = 4;
    pub(super) const CLEAR: u8 = 5;
    pub(super) const EXIT: u8 = 6;
    pub(super) const FORK: u8 = 7;
    /// `Run`, after which the worker polls for its next frame a while before it
    /// blocks: a caller waits for the result and will likely send more soon.
    pub(super) const RUN_SPIN: u8 = 8;
    /// `Run`, after which the worker exits: its task budget
    /// (`max_tasks_per_child`) is spent, so the pool sends nothing more.
    pub(super) const RUN_LAST: u8 = 9;
}

/// What a worker does once a chunk's results are out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AfterRun {
    /// Blocks reading its next frame.
    Wait,
    /// Polls for its next frame a while before it blocks: a caller waits for the
    /// result and will likely send more soon.
    Spin,
    /// Exits: it retires after this chunk, and its successor needs the CPU more
    /// than a worker waiting to be told so.
    Exit,
}

impl AfterRun {
    fn tag(self) -> u8 {
        match self {
            AfterRun::Wait => to_worker::RUN,
            AfterRun::Spin => to_worker::RUN_SPIN,
            AfterRun::Exit => to_worker::RUN_LAST,
        }
    }
}

/// Tags of messages from a worker or fork server.
mod from_worker {
    pub(super) const HELLO: u8 = 101;
    pub(super) const READY: u8 = 102;
    pub(super) const INIT_FAILED: u8 = 103;
    pub(super) const DONE: u8 = 104;
    pub(super) const FAILED: u8 = 105;
    pub(super) const FORKED: u8 = 106;
    pub(super) const EXITED: u8 = 107;
    pub(super) const BUSY: u8 = 108;
}

/// Where a forked or spawned worker connects back to, and how it proves who it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Ticket {
    /// The listening socket's name (abstract on Linux, a path elsewhere).
    pub(crate) address: Vec<u8>,
    /// Which spawn this worker is.
    pub(crate) spawn_id: u64,
    /// A random secret the worker echoes in its hello.
    pub(crate) token: [u8; 16],
}

impl Ticket {
    /// A forked worker's: it serves on a socket the pool sent to the fork server
    /// itself, so there is nothing to connect to and nothing to prove.
    pub(crate) fn forked(spawn_id: u64) -> Ticket {
        Ticket {
            address: Vec::new(),
            spawn_id,
            token: [0; 16],
        }
    }
}

/// A worker's settings, sent after a good hello.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Config {
    /// The parent's registry fingerprint (the worker checks it too).
    pub(crate) registry: RegistryFingerprint,
    /// `RLIMIT_AS` in bytes.
    pub(crate) memory_limit: Option<u64>,
    /// Largest frame the worker may accept.
    pub(crate) max_frame: u64,
    /// How long the worker polls for its next frame before it blocks
    /// (`Builder::spin`); on the wire in nanoseconds.
    pub(crate) spin: std::time::Duration,
    /// How long finished results may wait to be sent together
    /// (`Builder::result_window`); on the wire in nanoseconds.
    pub(crate) result_window: std::time::Duration,
    /// Runs once before the first task.
    pub(crate) initializer: Option<RawFunc>,
}

/// Messages the parent sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ToWorker {
    /// After a good hello: settings and the initializer.
    Config(Config),
    /// After a bad hello: the worker exits.
    Reject,
    /// Prepare a function under `key` (sent once per worker and function).
    Load { key: u64, func: RawFunc },
    /// Forget every loaded function.
    Clear,
    /// Exit now.
    Exit,
    /// To a fork server: fork a worker that serves on the socket sent with this
    /// frame (`SCM_RIGHTS`), and says `spawn_id` in its hello.
    Fork { spawn_id: u64 },
}

/// Messages a worker or fork server sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FromWorker {
    /// First frame on a fresh connection.
    Hello {
        protocol: u32,
        pid: u32,
        spawn_id: u64,
        token: [u8; 16],
        registry: RegistryFingerprint,
    },
    /// The initializer (if any) ran; tasks may come.
    Ready,
    /// The initializer failed; the worker exits.
    InitFailed(TaskError),
    /// One item's encoded result.
    Done(Vec<u8>),
    /// One item failed.
    Failed(TaskError),
    /// A fork server forked a worker.
    Forked { spawn_id: u64, pid: u32 },
    /// A fork server reaped a worker: raw wait status.
    Exited { pid: u32, status: i32 },
    /// Every result before the running task has been sent, and that task has run
    /// for a while: if the worker dies now, it is the one to blame.
    Busy,
}

/// A protocol violation by the peer.
pub(crate) fn violation(detail: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, detail.into())
}

impl ToWorker {
    /// The whole frame, length prefix included.
    pub(crate) fn encode(&self) -> io::Result<Vec<u8>> {
        let out = match self {
            ToWorker::Config(config) => {
                let mut o = BodyWriter::new(to_worker::CONFIG);
                o.registry(config.registry);
                o.opt_u64(config.memory_limit);
                o.u64(config.max_frame);
                o.duration(config.spin);
                o.duration(config.result_window);
                match &config.initializer {
                    None => o.u8(0),
                    Some(f) => {
                        o.u8(1);
                        o.func(f)?;
                    }
                }
                o
            }
            ToWorker::Reject => BodyWriter::new(to_worker::REJECT),
            ToWorker::Load { key, func } => {
                let mut o = BodyWriter::new(to_worker::LOAD);
                o.u64(*key);
                o.func(func)?;
                o
            }
            ToWorker::Clear => BodyWriter::new(to_worker::CLEAR),
            ToWorker::Exit => BodyWriter::new(to_worker::EXIT),
            ToWorker::Fork { spawn_id } => {
                let mut o = BodyWriter::new(to_worker::FORK);
                o.u64(*spawn_id);
                o
            }
        };
        out.finish()
    }

    /// Reads a body (without its length prefix).
    pub(crate) fn decode(body: &[u8]) -> io::Result<ToWorker> {
        let (&tag, rest) = body.split_first().ok_or_else(|| violation("empty frame"))?;
        let mut i = BodyReader { rest };
        let msg = match tag {
            to_worker::CONFIG => {
                let registry = i.registry()?;
                let memory_limit = i.opt_u64()?;
                let max_frame = i.u64()?;
                let spin = std::time::Duration::from_nanos(i.u64()?);
                let result_window = std::time::Duration::from_nanos(i.u64()?);
                let initializer = match i.u8()? {
                    0 => None,
                    _ => Some(i.func()?),
                };
                ToWorker::Config(Config {
                    registry,
                    memory_limit,
                    max_frame,
                    spin,
                    result_window,
                    initializer,
                })
            }
            to_worker::REJECT => ToWorker::Reject,
            to_worker::LOAD => ToWorker::Load {
                key: i.u64()?,
                func: i.func()?,
            },
            to_worker::RUN | to_worker::RUN_SPIN | to_worker::RUN_LAST => {
                // Chunks are read in place by `decode_run`, never as a message.
                return Err(violation("a Run frame is not a control message"));
            }
            to_worker::CLEAR => ToWorker::Clear,
            to_worker::EXIT => ToWorker::Exit,
            to_worker::FORK => ToWorker::Fork { spawn_id: i.u64()? },
            t => {
                return Err(violation(format!(
                    "unknown message tag {t} from the parent"
                )));
            }
        };
        i.end()?;
        Ok(msg)
    }
}

/// A whole `Run` frame in one buffer (what [`write_run`] sends in pieces), telling
/// the worker what to do after it ([`after_run`]).
#[cfg(test)]
pub(crate) fn encode_run(key: u64, items: &Items, after: AfterRun) -> io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(items.byte_len() + 8 * items.len() + 32);
    append_run(&mut out, key, items, after, |out, item| {
        out.extend_from_slice(item);
        Ok(())
    })?;
    Ok(out)
}

/// Items at least this large are written to the socket as they are rather than
/// copied into the frame ([`write_run`]).
const DIRECT_ITEM: usize = 64 << 10;

/// Writes `before` (whole frames, e.g. a `Load`) and then a `Run` frame, as
/// [`encode_run`] would encode it, without copying items of [`DIRECT_ITEM`] bytes
/// or more: the small parts are gathered and sent between them.
pub(crate) fn write_run(
    socket: &std::os::unix::net::UnixStream,
    mut before: Vec<u8>,
    key: u64,
    items: &Items,
    after: AfterRun,
) -> io::Result<()> {
    append_run(&mut before, key, items, after, |out, item| {
        if item.len() < DIRECT_ITEM {
            out.extend_from_slice(item);
            return Ok(());
        }
        write_frame(socket, out)?;
        out.clear();
        write_frame(socket, item)
    })?;
    write_frame(socket, &before)
}

/// Appends a `Run` frame's length, tag, key and item count to `out`, then each
/// item's length followed by whatever `item` does with the item.
fn append_run(
    out: &mut Vec<u8>,
    key: u64,
    items: &Items,
    after: AfterRun,
    mut item: impl FnMut(&mut Vec<u8>, &[u8]) -> io::Result<()>,
) -> io::Result<()> {
    let body = 1 + 8 + 8 + 8 * items.len() + items.byte_len();
    let len = u32::try_from(body).map_err(|_| violation("a frame does not fit a 32-bit length"))?;
    out.extend_from_slice(&len.to_le_bytes());
    out.push(after.tag());
    out.extend_from_slice(&key.to_le_bytes());
    out.extend_from_slice(&(items.len() as u64).to_le_bytes());
    for bytes in items.iter() {
        out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
        item(out, bytes)?;
    }
    Ok(())
}

impl FromWorker {
    /// The whole frame, length prefix included.
    pub(crate) fn encode(&self) -> io::Result<Vec<u8>> {
        let out = match self {
            FromWorker::Hello {
                protocol,
                pid,
                spawn_id,
                token,
                registry,
            } => {
                let mut o = BodyWriter::new(from_worker::HELLO);
                o.u32(*protocol);
                o.u32(*pid);
                o.u64(*spawn_id);
                o.0.extend_from_slice(token);
                o.registry(*registry);
                o
            }
            FromWorker::Ready => BodyWriter::new(from_worker::READY),
            FromWorker::InitFailed(e) => {
                let mut o = BodyWriter::new(from_worker::INIT_FAILED);
                o.error(e)?;
                o
            }
            FromWorker::Done(bytes) => {
                let mut o = BodyWriter::new(from_worker::DONE);
                o.0.extend_from_slice(bytes);
                o
            }
            FromWorker::Failed(e) => {
                let mut o = BodyWriter::new(from_worker::FAILED);
                o.error(e)?;
                o
            }
            FromWorker::Forked { spawn_id, pid } => {
                let mut o = BodyWriter::new(from_worker::FORKED);
                o.u64(*spawn_id);
                o.u32(*pid);
                o
            }
            FromWorker::Exited { pid, status } => {
                let mut o = BodyWriter::new(from_worker::EXITED);
                o.u32(*pid);
                o.i32(*status);
                o
            }
            FromWorker::Busy => BodyWriter::new(from_worker::BUSY),
        };
        out.finish()
    }

    /// Reads a body (without its length prefix).
    pub(crate) fn decode(body: &[u8]) -> io::Result<FromWorker> {
        let (&tag, rest) = body.split_first().ok_or_else(|| violation("empty frame"))?;
        FromWorker::decode_parts(tag, rest)
    }

    /// Reads a body split into its tag and the rest (as [`read_head`] leaves it).
    /// Results are read by the parent without this (straight into a batch).
    pub(crate) fn decode_parts(tag: u8, rest: &[u8]) -> io::Result<FromWorker> {
        if tag == from_worker::DONE {
            return Ok(FromWorker::Done(rest.to_vec()));
        }
        let mut i = BodyReader { rest };
        let msg = match tag {
            from_worker::HELLO => FromWorker::Hello {
                protocol: i.u32()?,
                pid: i.u32()?,
                spawn_id: i.u64()?,
                token: i.token()?,
                registry: i.registry()?,
            },
            from_worker::READY => FromWorker::Ready,
            from_worker::INIT_FAILED => FromWorker::InitFailed(i.error()?),
            from_worker::FAILED => FromWorker::Failed(i.error()?),
            from_worker::FORKED => FromWorker::Forked {
                spawn_id: i.u64()?,
                pid: i.u32()?,
            },
            from_worker::EXITED => FromWorker::Exited {
                pid: i.u32()?,
                status: i.i32()?,
            },
            from_worker::BUSY => FromWorker::Busy,
            t => return Err(violation(format!("unknown message tag {t} from a worker"))),
        };
        i.end()?;
        Ok(msg)
    }
}

/// Whether a frame split by [`read_tagged`] is [`FromWorker::Busy`].
pub(crate) fn is_busy(tag: u8, rest: &[u8]) -> bool {
    tag == from_worker::BUSY && rest.is_empty()
}

/// Appends a whole `Done` frame carrying `result` to `out`, without building the
/// message first.
pub(crate) fn append_done(out: &mut Vec<u8>, result: &[u8]) -> io::Result<()> {
    out.reserve(result.len() + 5);
    append_done_head(out, result.len())?;
    out.extend_from_slice(result);
    Ok(())
}

/// Appends the head (length and tag) of a `Done` frame whose result of `len`
/// bytes follows separately.
pub(crate) fn append_done_head(out: &mut Vec<u8>, len: usize) -> io::Result<()> {
    let len =
        u32::try_from(len + 1).map_err(|_| violation("a frame does not fit a 32-bit length"))?;
    out.extend_from_slice(&len.to_le_bytes());
    out.push(from_worker::DONE);
    Ok(())
}

/// What a `Run` body asks the worker to do after it.
pub(crate) fn after_run(body: &[u8]) -> AfterRun {
    match body.first() {
        Some(&to_worker::RUN_SPIN) => AfterRun::Spin,
        Some(&to_worker::RUN_LAST) => AfterRun::Exit,
        _ => AfterRun::Wait,
    }
}

/// A `Run` body: the function key and the items, borrowed from the body.
pub(crate) type RunItems<'a> = (u64, Vec<&'a [u8]>);

/// A `Run` body's function key and items, borrowed from the body; `Ok(None)` if the
/// body is another message.
pub(crate) fn decode_run(body: &[u8]) -> io::Result<Option<RunItems<'_>>> {
    let Some((&(to_worker::RUN | to_worker::RUN_SPIN | to_worker::RUN_LAST), rest)) =
        body.split_first()
    else {
        return Ok(None);
    };
    let mut i = BodyReader { rest };
    let key = i.u64()?;
    let n = i.u64()?;
    // Each item takes at least its 8-byte length: bound the allocation.
    if n > (i.rest.len() / 8) as u64 {
        return Err(violation(format!("run frame claims {n} items")));
    }
    let mut items = Vec::with_capacity(n as usize);
    for _ in 0..n {
        items.push(i.bytes()?);
    }
    i.end()?;
    Ok(Some((key, items)))
}

/// Reads `stream` as each side of a connection reads it — frame by frame as a
/// worker does, head then body as the parent does, results split off a buffer,
/// frames taken from received bytes — and decodes every body as each message it
/// could be. Returns the frames read whole. For the fuzzer, through
/// `dilly_pool::__fuzz`; every error is expected, a panic or an allocation that
/// follows a length claim rather than the bytes present is not.
pub(crate) fn read_stream(stream: &[u8], limit: u64) -> usize {
    let decode = |body: &[u8]| {
        let _ = ToWorker::decode(body);
        let _ = decode_run(body);
        let _ = FromWorker::decode(body);
    };
    let mut whole = 0;
    let mut reader = stream;
    while let Ok(Some(body)) = read_frame(&mut reader, limit) {
        decode(&body);
        whole += 1;
    }
    let mut reader = stream;
    while let Ok(Some((tag, len))) = read_head(&mut reader, limit) {
        let mut rest = Vec::new();
        if read_body_into(&mut reader, len, &mut rest).is_err() {
            break;
        }
        let _ = FromWorker::decode_parts(tag, &rest);
    }
    let (_, used) = split_done_frames(stream, usize::MAX, limit, |_| {});
    let mut received = stream[used..].to_vec();
    while let Ok(Some(body)) = take_frame(&mut received, limit) {
        decode(&body);
    }
    whole
}
