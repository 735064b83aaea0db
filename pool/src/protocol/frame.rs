//! Frames on a byte stream: a 4-byte little-endian length, then the body, whose
//! first byte is the message tag. Lengths are checked before anything is allocated,
//! and a body's buffer grows with the bytes that arrive rather than with what the
//! length claims: at most [`EAGER`] bytes up front, then doubling.

use std::io::{self, Read};

use super::{OVERHEAD, from_worker, violation};

/// The most a body's buffer is given before its bytes arrive: a frame whose length
/// claims more costs only what its sender actually sends (at most twice that, as
/// the buffer doubles), so a peer cannot make this side allocate by lying.
const EAGER: usize = 64 << 10;

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
    out.reserve(len.min(EAGER));
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
    let len = body_len(prefix, limit)?;
    let mut body = Vec::new();
    read_body_into(r, len, &mut body)?;
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

/// Whether `buf` starts with a whole frame (so reading it will not block).
pub(crate) fn holds_frame(buf: &[u8]) -> bool {
    buf.len() >= 4
        && (buf.len() - 4) as u64 >= u64::from(u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]))
}
