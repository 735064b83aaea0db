//! Writing and reading the fields of a frame body: little-endian integers and
//! length-prefixed byte strings, every read checked against what is left.

use std::io;

use dilly::registry::RegistryFingerprint;
use dilly::{Fingerprint, RawFunc};

use super::violation;
use crate::error::TaskError;

pub(super) struct BodyWriter(pub(super) Vec<u8>);

impl BodyWriter {
    pub(super) fn new(tag: u8) -> BodyWriter {
        let mut v = Vec::with_capacity(64);
        v.extend_from_slice(&[0, 0, 0, 0, tag]);
        BodyWriter(v)
    }
    pub(super) fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    pub(super) fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub(super) fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub(super) fn i32(&mut self, v: i32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub(super) fn bytes(&mut self, v: &[u8]) {
        self.u64(v.len() as u64);
        self.0.extend_from_slice(v);
    }
    /// In nanoseconds (saturating).
    pub(super) fn duration(&mut self, v: std::time::Duration) {
        self.u64(u64::try_from(v.as_nanos()).unwrap_or(u64::MAX));
    }
    pub(super) fn opt_u64(&mut self, v: Option<u64>) {
        match v {
            None => self.u8(0),
            Some(v) => {
                self.u8(1);
                self.u64(v);
            }
        }
    }
    pub(super) fn registry(&mut self, r: RegistryFingerprint) {
        self.u64(r.count as u64);
        self.u64(r.hash.to_raw());
    }
    /// A function in the core crate's own encoding of [`RawFunc`].
    pub(super) fn func(&mut self, f: &RawFunc) -> io::Result<()> {
        let bytes = dilly::to_bytes(f).map_err(|e| violation(e.to_string()))?;
        self.bytes(&bytes);
        Ok(())
    }
    /// A task's failure in the core codec.
    pub(super) fn error(&mut self, e: &TaskError) -> io::Result<()> {
        let bytes = dilly::to_bytes(e).map_err(|e| violation(e.to_string()))?;
        self.bytes(&bytes);
        Ok(())
    }
    /// Fills in the length prefix.
    pub(super) fn finish(mut self) -> io::Result<Vec<u8>> {
        let len = u32::try_from(self.0.len() - 4)
            .map_err(|_| violation("a frame does not fit a 32-bit length"))?;
        self.0[..4].copy_from_slice(&len.to_le_bytes());
        Ok(self.0)
    }
}

pub(super) struct BodyReader<'a> {
    pub(super) rest: &'a [u8],
}

impl<'a> BodyReader<'a> {
    pub(super) fn take(&mut self, n: usize) -> io::Result<&'a [u8]> {
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
    pub(super) fn u8(&mut self) -> io::Result<u8> {
        Ok(self.take(1)?[0])
    }
    pub(super) fn u32(&mut self) -> io::Result<u32> {
        let mut b = [0; 4];
        b.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(b))
    }
    pub(super) fn u64(&mut self) -> io::Result<u64> {
        let mut b = [0; 8];
        b.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(b))
    }
    pub(super) fn i32(&mut self) -> io::Result<i32> {
        Ok(self.u32()? as i32)
    }
    pub(super) fn bytes(&mut self) -> io::Result<&'a [u8]> {
        let len = self.u64()?;
        let len = usize::try_from(len).map_err(|_| violation("length overflows usize"))?;
        self.take(len)
    }
    pub(super) fn opt_u64(&mut self) -> io::Result<Option<u64>> {
        match self.u8()? {
            0 => Ok(None),
            1 => Ok(Some(self.u64()?)),
            t => Err(violation(format!("bad option tag {t}"))),
        }
    }
    pub(super) fn registry(&mut self) -> io::Result<RegistryFingerprint> {
        let count = self.u64()? as usize;
        let hash = Fingerprint::from_raw(self.u64()?);
        Ok(RegistryFingerprint { count, hash })
    }
    pub(super) fn func(&mut self) -> io::Result<RawFunc> {
        dilly::from_bytes(self.bytes()?).map_err(|e| violation(format!("bad function: {e}")))
    }
    pub(super) fn error(&mut self) -> io::Result<TaskError> {
        dilly::from_bytes(self.bytes()?).map_err(|e| violation(format!("bad task error: {e}")))
    }
    pub(super) fn token(&mut self) -> io::Result<[u8; 16]> {
        let mut t = [0; 16];
        t.copy_from_slice(self.take(16)?);
        Ok(t)
    }
    pub(super) fn end(&self) -> io::Result<()> {
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
