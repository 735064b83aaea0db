//! [`CallFrame`]: one call's layout on the wire, written and read.

use super::{Limits, VERSION, check_version};
use crate::error::{Error, Result};
use crate::symbol::{Fingerprint, SymbolId};

/// One call as it travels to a worker: which function, its captured state, and the
/// encoded arguments.
///
/// Layout (all integers little endian, fixed width):
///
/// | bytes | field |
/// |---|---|
/// | 1 | [`VERSION`] |
/// | 8 | [`SymbolId`] |
/// | 8 | [`Fingerprint`] of the signature |
/// | 8 | shape hash ([`Entry::shape`](crate::registry::Entry::shape)) |
/// | 4 | state length *s* |
/// | *s* | captured state (codec-encoded) |
/// | 4 | arguments length *a* |
/// | *a* | arguments tuple (codec-encoded) |
///
/// Decoding borrows from the input and checks every length against [`Limits`] before
/// looking at the bytes it covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallFrame<'a> {
    /// The function to call.
    pub id: SymbolId,
    /// The sender's signature fingerprint of that function.
    pub fingerprint: Fingerprint,
    /// The sender's data shape hash of that function.
    pub shape: Fingerprint,
    /// The function's captured state.
    pub state: &'a [u8],
    /// The encoded argument tuple.
    pub args: &'a [u8],
}

impl<'a> CallFrame<'a> {
    /// The frame's bytes.
    pub fn encode(&self) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(33 + self.state.len() + self.args.len());
        out.push(VERSION);
        out.extend_from_slice(&self.id.to_raw().to_le_bytes());
        out.extend_from_slice(&self.fingerprint.to_raw().to_le_bytes());
        out.extend_from_slice(&self.shape.to_raw().to_le_bytes());
        for (what, part) in [("state", self.state), ("arguments", self.args)] {
            let len = u32::try_from(part.len()).map_err(|_| Error::Encode {
                what: what.into(),
                detail: format!("{} bytes do not fit a frame's 32-bit length", part.len()),
            })?;
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(part);
        }
        Ok(out)
    }

    /// Reads a frame, borrowing state and arguments from `bytes`.
    pub fn decode(bytes: &'a [u8], limits: Limits) -> Result<CallFrame<'a>> {
        limits.check("frame", bytes.len() as u64)?;
        let mut reader = Reader {
            rest: check_version(bytes)?,
        };
        let id = SymbolId::from_raw(u64::from_le_bytes(reader.array("symbol id")?));
        let fingerprint = Fingerprint::from_raw(u64::from_le_bytes(reader.array("fingerprint")?));
        let shape = Fingerprint::from_raw(u64::from_le_bytes(reader.array("shape")?));
        let state = reader.sized("state", limits)?;
        let args = reader.sized("arguments", limits)?;
        if !reader.rest.is_empty() {
            return Err(Error::Malformed {
                what: "call frame".into(),
                detail: format!("{} unexpected bytes after the arguments", reader.rest.len()),
            });
        }
        Ok(CallFrame {
            id,
            fingerprint,
            shape,
            state,
            args,
        })
    }
}

struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, what: &'static str, n: usize) -> Result<&'a [u8]> {
        if self.rest.len() < n {
            return Err(Error::Truncated {
                what: what.into(),
                needed: n,
                available: self.rest.len(),
            });
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N]> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(what, N)?);
        Ok(out)
    }

    fn sized(&mut self, what: &'static str, limits: Limits) -> Result<&'a [u8]> {
        let len = u32::from_le_bytes(self.array(what)?);
        let len = limits.check(what, u64::from(len))?;
        self.take(what, len)
    }
}
