//! Frames between the parent and a worker (or a fork server).
//!
//! Every frame is a 4-byte little-endian length followed by that many bytes; the
//! first byte of the body is a message tag. Lengths are checked against a limit
//! before anything is allocated, so a corrupt or hostile peer cannot make the other
//! side allocate more than the limit. Bodies are hand-written little-endian fields:
//! the hot messages (`Run`, `Done`) are a few integers around opaque byte strings
//! that the core codec produced, so a general serializer would only add copies.

use std::io::{self, Read};

use dilly::registry::RegistryFingerprint;
use dilly::{Fingerprint, RawFunc, SymbolId};

use crate::backend::Items;

/// Protocol revision, checked in the handshake (2: the spin window in `Config`, and
/// `RUN_SPIN`; 3: the result window in `Config`; 4: `Fork` carries the worker's
/// socket, and a forked worker reads its `Config` before its hello; 5: `RUN_LAST`).
pub(crate) const PROTOCOL: u32 = 5;

/// Bytes of framing around a message body, allowed on top of the payload limit.
const OVERHEAD: usize = 64 << 10;

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
    /// Run each item with the function under `key`, reporting results in order.
    Run { key: u64, items: Items },
    /// Forget every loaded function.
    Clear,
    /// Exit now.
    Exit,
    /// To a fork server: fork a worker that serves on the socket sent with this
    /// frame (`SCM_RIGHTS`), and says `spawn_id` in its hello.
    Fork { spawn_id: u64 },
}

/// Why a task or the initializer failed on the worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum WireError {
    /// The function's ID is not registered on the worker.
    UnknownSymbol { id: SymbolId },
    /// The function could not be prepared for another reason.
    Load { message: String },
    /// The arguments did not decode.
    Arguments { message: String },
    /// The result did not encode.
    Result { message: String },
    /// The function panicked.
    Panicked {
        message: String,
        location: Option<String>,
    },
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
    InitFailed(WireError),
    /// One item's encoded result.
    Done(Vec<u8>),
    /// One item failed.
    Failed(WireError),
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

struct Out(Vec<u8>);

impl Out {
    fn new(tag: u8) -> Out {
        let mut v = Vec::with_capacity(64);
        v.extend_from_slice(&[0, 0, 0, 0, tag]);
        Out(v)
    }
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn i32(&mut self, v: i32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn bytes(&mut self, v: &[u8]) {
        self.u64(v.len() as u64);
        self.0.extend_from_slice(v);
    }
    /// In nanoseconds (saturating).
    fn duration(&mut self, v: std::time::Duration) {
        self.u64(u64::try_from(v.as_nanos()).unwrap_or(u64::MAX));
    }
    fn opt_u64(&mut self, v: Option<u64>) {
        match v {
            None => self.u8(0),
            Some(v) => {
                self.u8(1);
                self.u64(v);
            }
        }
    }
    fn registry(&mut self, r: RegistryFingerprint) {
        self.u64(r.count as u64);
        self.u64(r.hash.to_raw());
    }
    /// A function in the core crate's own encoding of [`RawFunc`].
    fn func(&mut self, f: &RawFunc) -> io::Result<()> {
        let bytes = dilly::to_bytes(f).map_err(|e| violation(e.to_string()))?;
        self.bytes(&bytes);
        Ok(())
    }
    fn error(&mut self, e: &WireError) {
        match e {
            WireError::UnknownSymbol { id } => {
                self.u8(0);
                self.u64(id.to_raw());
            }
            WireError::Load { message } => {
                self.u8(1);
                self.bytes(message.as_bytes());
            }
            WireError::Arguments { message } => {
                self.u8(2);
                self.bytes(message.as_bytes());
            }
            WireError::Result { message } => {
                self.u8(3);
                self.bytes(message.as_bytes());
            }
            WireError::Panicked { message, location } => {
                self.u8(4);
                self.bytes(message.as_bytes());
                match location {
                    None => self.u8(0),
                    Some(l) => {
                        self.u8(1);
                        self.bytes(l.as_bytes());
                    }
                }
            }
        }
    }
    /// Fills in the length prefix.
    fn finish(mut self) -> io::Result<Vec<u8>> {
        let len = u32::try_from(self.0.len() - 4)
            .map_err(|_| violation("a frame does not fit a 32-bit length"))?;
        self.0[..4].copy_from_slice(&len.to_le_bytes());
        Ok(self.0)
    }
}

struct In<'a> {
    rest: &'a [u8],
}

impl<'a> In<'a> {
    fn take(&mut self, n: usize) -> io::Result<&'a [u8]> {
        if self.rest.len() < n {
            return Err(violation(format!(
                "truncated frame: needed {n} more bytes, {} left",
                self.rest.len()
            )));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }
    fn u8(&mut self) -> io::Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> io::Result<u32> {
        let mut b = [0; 4];
        b.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(b))
    }
    fn u64(&mut self) -> io::Result<u64> {
        let mut b = [0; 8];
        b.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(b))
    }
    fn i32(&mut self) -> io::Result<i32> {
        Ok(self.u32()? as i32)
    }
    fn bytes(&mut self) -> io::Result<&'a [u8]> {
        let len = self.u64()?;
        let len = usize::try_from(len).map_err(|_| violation("length overflows usize"))?;
        self.take(len)
    }
    fn string(&mut self) -> io::Result<String> {
        Ok(String::from_utf8_lossy(self.bytes()?).into_owned())
    }
    fn opt_u64(&mut self) -> io::Result<Option<u64>> {
        match self.u8()? {
            0 => Ok(None),
            1 => Ok(Some(self.u64()?)),
            t => Err(violation(format!("bad option tag {t}"))),
        }
    }
    fn registry(&mut self) -> io::Result<RegistryFingerprint> {
        let count = self.u64()? as usize;
        let hash = Fingerprint::from_raw(self.u64()?);
        Ok(RegistryFingerprint { count, hash })
    }
    fn func(&mut self) -> io::Result<RawFunc> {
        dilly::from_bytes(self.bytes()?).map_err(|e| violation(format!("bad function: {e}")))
    }
    fn error(&mut self) -> io::Result<WireError> {
        Ok(match self.u8()? {
            0 => WireError::UnknownSymbol {
                id: SymbolId::from_raw(self.u64()?),
            },
            1 => WireError::Load {
                message: self.string()?,
            },
            2 => WireError::Arguments {
                message: self.string()?,
            },
            3 => WireError::Result {
                message: self.string()?,
            },
            4 => {
                let message = self.string()?;
                let location = match self.u8()? {
                    0 => None,
                    _ => Some(self.string()?),
                };
                WireError::Panicked { message, location }
            }
            t => return Err(violation(format!("bad error tag {t}"))),
        })
    }
    fn token(&mut self) -> io::Result<[u8; 16]> {
        let mut t = [0; 16];
        t.copy_from_slice(self.take(16)?);
        Ok(t)
    }
    fn end(&self) -> io::Result<()> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(violation(format!(
                "{} unexpected bytes after a message",
                self.rest.len()
            )))
        }
    }
}

impl ToWorker {
    /// The whole frame, length prefix included.
    pub(crate) fn encode(&self) -> io::Result<Vec<u8>> {
        let out = match self {
            ToWorker::Config(config) => {
                let mut o = Out::new(to_worker::CONFIG);
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
            ToWorker::Reject => Out::new(to_worker::REJECT),
            ToWorker::Load { key, func } => {
                let mut o = Out::new(to_worker::LOAD);
                o.u64(*key);
                o.func(func)?;
                o
            }
            ToWorker::Run { key, items } => return encode_run(*key, items, AfterRun::Wait),
            ToWorker::Clear => Out::new(to_worker::CLEAR),
            ToWorker::Exit => Out::new(to_worker::EXIT),
            ToWorker::Fork { spawn_id } => {
                let mut o = Out::new(to_worker::FORK);
                o.u64(*spawn_id);
                o
            }
        };
        out.finish()
    }

    /// Reads a body (without its length prefix).
    pub(crate) fn decode(body: &[u8]) -> io::Result<ToWorker> {
        let (&tag, rest) = body.split_first().ok_or_else(|| violation("empty frame"))?;
        let mut i = In { rest };
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
                let key = i.u64()?;
                let n = i.u64()?;
                // Each item takes at least its 8-byte length: bound the allocation.
                if n > (i.rest.len() / 8) as u64 {
                    return Err(violation(format!("run frame claims {n} items")));
                }
                let mut items = Items::with_capacity(n as usize, i.rest.len());
                for _ in 0..n {
                    items.push(i.bytes()?);
                }
                ToWorker::Run { key, items }
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

/// `Run` without cloning the items, telling the worker what to do after it
/// ([`after_run`]).
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
                let mut o = Out::new(from_worker::HELLO);
                o.u32(*protocol);
                o.u32(*pid);
                o.u64(*spawn_id);
                o.0.extend_from_slice(token);
                o.registry(*registry);
                o
            }
            FromWorker::Ready => Out::new(from_worker::READY),
            FromWorker::InitFailed(e) => {
                let mut o = Out::new(from_worker::INIT_FAILED);
                o.error(e);
                o
            }
            FromWorker::Done(bytes) => {
                let mut o = Out::new(from_worker::DONE);
                o.0.extend_from_slice(bytes);
                o
            }
            FromWorker::Failed(e) => {
                let mut o = Out::new(from_worker::FAILED);
                o.error(e);
                o
            }
            FromWorker::Forked { spawn_id, pid } => {
                let mut o = Out::new(from_worker::FORKED);
                o.u64(*spawn_id);
                o.u32(*pid);
                o
            }
            FromWorker::Exited { pid, status } => {
                let mut o = Out::new(from_worker::EXITED);
                o.u32(*pid);
                o.i32(*status);
                o
            }
            FromWorker::Busy => Out::new(from_worker::BUSY),
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
        let mut i = In { rest };
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

/// Whether `buf` starts with a whole frame (so reading it will not block).
pub(crate) fn holds_frame(buf: &[u8]) -> bool {
    buf.len() >= 4
        && (buf.len() - 4) as u64 >= u64::from(u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]))
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
    let mut i = In { rest };
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

/// Like [`read_frame`], but splits off the tag byte.
#[cfg(test)]
pub(crate) fn read_tagged(r: &mut impl Read, limit: u64) -> io::Result<Option<(u8, Vec<u8>)>> {
    let Some((tag, len)) = read_head(r, limit)? else {
        return Ok(None);
    };
    let mut rest = Vec::new();
    read_body_into(r, len, &mut rest)?;
    Ok(Some((tag, rest)))
}

/// Reads a frame's length and tag byte, refusing lengths over `limit` (+ framing
/// overhead): the tag and the length of the rest, which [`read_body_into`] reads.
/// `Ok(None)` on a clean end of stream at a frame boundary.
pub(crate) fn read_head(r: &mut impl Read, limit: u64) -> io::Result<Option<(u8, usize)>> {
    let Some(prefix) = read_prefix(r)? else {
        return Ok(None);
    };
    let len = body_len(prefix, limit)?;
    if len == 0 {
        return Err(violation("empty frame"));
    }
    let mut tag = [0u8];
    r.read_exact(&mut tag)?;
    Ok(Some((tag[0], len - 1)))
}

/// A frame's 4-byte length prefix; `Ok(None)` on a clean end of stream before it.
fn read_prefix(r: &mut impl Read) -> io::Result<Option<[u8; 4]>> {
    let mut prefix = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match r.read(&mut prefix[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(Some(prefix))
}

/// The body length a frame's prefix gives, refused over `limit` (+ framing
/// overhead) before anything is allocated for it.
fn body_len(prefix: [u8; 4], limit: u64) -> io::Result<usize> {
    let len = u64::from(u32::from_le_bytes(prefix));
    if len > limit.saturating_add(OVERHEAD as u64) {
        return Err(violation(format!(
            "frame of {len} bytes exceeds the limit of {limit} bytes"
        )));
    }
    Ok(len as usize)
}

/// Appends the `len` bytes after a frame's head ([`read_head`]) to `out`.
pub(crate) fn read_body_into(r: &mut impl Read, len: usize, out: &mut Vec<u8>) -> io::Result<()> {
    // Into the spare capacity, without zeroing it first (large results).
    out.reserve(len);
    let got = r.take(len as u64).read_to_end(out)?;
    if got < len {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(())
}

/// Splits up to `max` whole `Done` frames off the front of `buf` (bytes already
/// read from a worker), handing each result to `each`; stops at anything else
/// (another message, a partial frame, a length over `limit`), which the caller
/// then reads the usual way. Returns the number of results and of bytes used.
pub(crate) fn split_done_frames(
    buf: &[u8],
    max: usize,
    limit: u64,
    mut each: impl FnMut(&[u8]),
) -> (usize, usize) {
    let mut used = 0;
    let mut count = 0;
    while count < max {
        let rest = &buf[used..];
        let Some((head, body)) = rest.split_first_chunk::<4>() else {
            break;
        };
        let len = u32::from_le_bytes(*head) as usize;
        if len == 0
            || len as u64 > limit.saturating_add(OVERHEAD as u64)
            || body.len() < len
            || body[0] != from_worker::DONE
        {
            break;
        }
        each(&body[1..len]);
        used += 4 + len;
        count += 1;
    }
    (count, used)
}

/// Whether a frame's tag says it is a task's result.
pub(crate) fn is_done(tag: u8) -> bool {
    tag == from_worker::DONE
}

/// Reads one frame body, refusing lengths over `limit` (+ framing overhead) before
/// allocating. `Ok(None)` on a clean end of stream at a frame boundary.
pub(crate) fn read_frame(r: &mut impl Read, limit: u64) -> io::Result<Option<Vec<u8>>> {
    let Some(prefix) = read_prefix(r)? else {
        return Ok(None);
    };
    let mut body = vec![0; body_len(prefix, limit)?];
    r.read_exact(&mut body)?;
    Ok(Some(body))
}

/// Takes the first whole frame's body out of `buf` (bytes received so far), if it
/// holds one; a frame longer than `limit` is an error.
pub(crate) fn take_frame(buf: &mut Vec<u8>, limit: u64) -> io::Result<Option<Vec<u8>>> {
    let Some(&prefix) = buf.first_chunk::<4>() else {
        return Ok(None);
    };
    let end = 4 + body_len(prefix, limit)?;
    if buf.len() < end {
        return Ok(None);
    }
    let body = buf[4..end].to_vec();
    buf.drain(..end);
    Ok(Some(body))
}

/// Writes a whole frame produced by `encode` (never raising `SIGPIPE`).
pub(crate) fn write_frame(socket: &std::os::unix::net::UnixStream, frame: &[u8]) -> io::Result<()> {
    crate::sys::send_all(socket, frame)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn func() -> RawFunc {
        RawFunc::Registered {
            id: SymbolId::of("a::b"),
            fingerprint: Fingerprint::of("fn()"),
            shape: Fingerprint::of("shape"),
            state: vec![1, 2, 3],
        }
    }

    #[test]
    fn messages_round_trip() {
        let to = [
            ToWorker::Config(Config {
                registry: RegistryFingerprint {
                    count: 3,
                    hash: Fingerprint::of("x"),
                },
                memory_limit: Some(1 << 30),
                max_frame: 99,
                spin: std::time::Duration::from_micros(50),
                result_window: std::time::Duration::from_millis(1),
                initializer: Some(func()),
            }),
            ToWorker::Reject,
            ToWorker::Load {
                key: 7,
                func: func(),
            },
            ToWorker::Run {
                key: 7,
                items: [&[1u8][..], &[], &[2, 3]].into_iter().collect(),
            },
            ToWorker::Clear,
            ToWorker::Exit,
            ToWorker::Fork { spawn_id: 4 },
        ];
        for msg in to {
            let frame = msg.encode().unwrap();
            let body = read_frame(&mut &frame[..], 1 << 20).unwrap().unwrap();
            assert_eq!(ToWorker::decode(&body).unwrap(), msg);
        }
        let from = [
            FromWorker::Hello {
                protocol: PROTOCOL,
                pid: 5,
                spawn_id: 6,
                token: [1; 16],
                registry: RegistryFingerprint {
                    count: 1,
                    hash: Fingerprint::of("y"),
                },
            },
            FromWorker::Ready,
            FromWorker::InitFailed(WireError::UnknownSymbol {
                id: SymbolId::of("q"),
            }),
            FromWorker::Done(vec![4, 5]),
            FromWorker::Failed(WireError::Panicked {
                message: "boom".into(),
                location: Some("a.rs:1:2".into()),
            }),
            FromWorker::Failed(WireError::Result {
                message: "no".into(),
            }),
            FromWorker::Forked {
                spawn_id: 1,
                pid: 2,
            },
            FromWorker::Exited { pid: 2, status: 9 },
            FromWorker::Busy,
        ];
        for msg in from {
            let frame = msg.encode().unwrap();
            let body = read_frame(&mut &frame[..], 1 << 20).unwrap().unwrap();
            assert_eq!(FromWorker::decode(&body).unwrap(), msg);
        }
    }

    #[test]
    fn fast_paths_match_the_messages() {
        let items: Items = [&[1u8][..], &[], &[2, 3]].into_iter().collect();
        let frame = ToWorker::Run {
            key: 7,
            items: items.clone(),
        }
        .encode()
        .unwrap();
        let body = read_frame(&mut &frame[..], 1 << 20).unwrap().unwrap();
        let (key, borrowed) = decode_run(&body).unwrap().unwrap();
        assert_eq!(key, 7);
        assert_eq!(borrowed, items.iter().collect::<Vec<_>>());
        assert_eq!(after_run(&body), AfterRun::Wait);
        // The other variants carry the same chunk and say what comes after it.
        for after in [AfterRun::Spin, AfterRun::Exit] {
            let frame = encode_run(7, &items, after).unwrap();
            let variant = read_frame(&mut &frame[..], 1 << 20).unwrap().unwrap();
            assert_eq!(after_run(&variant), after);
            assert_eq!(decode_run(&variant).unwrap(), decode_run(&body).unwrap());
            assert_eq!(
                ToWorker::decode(&variant).unwrap(),
                ToWorker::decode(&body).unwrap()
            );
        }
        for cut in 0..body.len() {
            assert!(decode_run(&body[..cut]).map_or(true, |r| r.is_none() || cut == body.len()));
        }
        assert!(
            decode_run(&ToWorker::Clear.encode().unwrap()[4..])
                .unwrap()
                .is_none()
        );

        let mut out = Vec::new();
        append_done(&mut out, &[4, 5]).unwrap();
        assert_eq!(out, FromWorker::Done(vec![4, 5]).encode().unwrap());
        let busy = FromWorker::Busy.encode().unwrap();
        out.extend_from_slice(&busy);
        assert!(holds_frame(&out));
        assert!(!holds_frame(&out[..6]));
        let mut r = &out[..];
        let (tag, rest) = read_tagged(&mut r, 1 << 20).unwrap().unwrap();
        assert_eq!(
            FromWorker::decode_parts(tag, &rest).unwrap(),
            FromWorker::Done(vec![4, 5])
        );
        let (tag, rest) = read_tagged(&mut r, 1 << 20).unwrap().unwrap();
        assert!(is_busy(tag, &rest));
        assert!(read_tagged(&mut r, 1 << 20).unwrap().is_none());
        assert!(read_tagged(&mut &[0u8, 0, 0, 0][..], 10).is_err());
        assert!(read_tagged(&mut &u32::MAX.to_le_bytes()[..], 10).is_err());
    }

    #[test]
    fn frames_are_taken_from_received_bytes_only_when_whole() {
        let first = FromWorker::Forked {
            spawn_id: 3,
            pid: 9,
        }
        .encode()
        .unwrap();
        let second = FromWorker::Busy.encode().unwrap();
        let all = [first.clone(), second.clone()].concat();
        let mut buf = Vec::new();
        for (n, byte) in all.iter().enumerate() {
            buf.push(*byte);
            let taken = take_frame(&mut buf, 1 << 20).unwrap();
            if n + 1 == first.len() {
                assert_eq!(taken.as_deref(), Some(&first[4..]));
                assert!(buf.is_empty());
            } else if n + 1 == all.len() {
                assert_eq!(taken.as_deref(), Some(&second[4..]));
            } else {
                assert_eq!(taken, None, "after {} bytes", n + 1);
            }
        }
        assert!(buf.is_empty());
        // A length beyond the limit is an error before the body arrives.
        let mut huge = u32::MAX.to_le_bytes().to_vec();
        assert!(take_frame(&mut huge, 1 << 20).is_err());
    }

    #[test]
    fn oversized_frames_are_refused_before_allocating() {
        let frame = (u32::MAX).to_le_bytes();
        let err = read_frame(&mut &frame[..], 1024).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn a_run_written_in_pieces_is_the_encoded_run() {
        use std::io::Read;
        let big = vec![7u8; DIRECT_ITEM + 3];
        let items: Items = [&b"a"[..], &big, b"", &big[..DIRECT_ITEM], b"z"]
            .into_iter()
            .collect();
        let load = ToWorker::Clear.encode().unwrap();
        let (a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
        let expected = [load.clone(), encode_run(9, &items, AfterRun::Spin).unwrap()].concat();
        let reader = std::thread::spawn(move || {
            let mut got = vec![0; expected.len()];
            b.read_exact(&mut got).unwrap();
            assert_eq!(got, expected);
        });
        write_run(&a, load, 9, &items, AfterRun::Spin).unwrap();
        reader.join().unwrap();
    }

    #[test]
    fn buffered_results_split_off_up_to_the_first_other_frame() {
        let mut buf = Vec::new();
        append_done(&mut buf, b"one").unwrap();
        append_done(&mut buf, b"").unwrap();
        append_done(&mut buf, b"three").unwrap();
        let busy_at = buf.len();
        buf.extend_from_slice(&FromWorker::Busy.encode().unwrap());
        append_done(&mut buf, b"after").unwrap();
        let mut seen = Vec::new();
        let (count, used) = split_done_frames(&buf, 10, 1 << 20, |r| seen.push(r.to_vec()));
        assert_eq!((count, used), (3, busy_at));
        assert_eq!(seen, [b"one".to_vec(), vec![], b"three".to_vec()]);
        // At most `max`, and never a partial frame.
        let (count, used) = split_done_frames(&buf, 2, 1 << 20, |_| {});
        assert_eq!((count, used), (2, 4 + 4 + 4 + 1));
        for cut in 0..9 {
            let (count, _) = split_done_frames(&buf[..cut], 10, 1 << 20, |_| {});
            assert_eq!(count, usize::from(cut == 8), "cut at {cut}");
        }
        // Empty and oversized frames are left for the checked path.
        assert_eq!(
            split_done_frames(&[0, 0, 0, 0, 1], 10, 1 << 20, |_| {}),
            (0, 0)
        );
        let huge = [0xff, 0xff, 0xff, 0x7f, from_worker::DONE];
        assert_eq!(split_done_frames(&huge, 10, 16, |_| {}), (0, 0));
    }

    #[test]
    fn truncated_and_hostile_bodies_are_errors() {
        let frame = ToWorker::Run {
            key: 1,
            items: [[1u8, 2, 3]].into_iter().collect(),
        }
        .encode()
        .unwrap();
        let body = &frame[4..];
        for cut in 0..body.len() {
            assert!(ToWorker::decode(&body[..cut]).is_err());
        }
        // A run frame claiming a huge item count is refused without allocating.
        let mut hostile = vec![to_worker::RUN];
        hostile.extend_from_slice(&1u64.to_le_bytes());
        hostile.extend_from_slice(&u64::MAX.to_le_bytes());
        assert!(ToWorker::decode(&hostile).is_err());
        assert!(read_frame(&mut &[][..], 10).unwrap().is_none());
        assert!(read_frame(&mut &[1u8, 0][..], 10).is_err());
    }
}
