//! Stable names for registered items: [`SymbolId`] and [`Fingerprint`]; and the
//! [`BuildId`] that names one executable file (same-build values carry it).
//!
//! Both are FNV-1a 64-bit hashes of UTF-8 text, computed in `const` context so the
//! macros can bake them into the registry's static entries. FNV-1a is fixed by its
//! specification (offset basis `0xcbf29ce484222325`, prime `0x100000001b3`), so the
//! same name gives the same ID on every build, compiler version and machine. It is not
//! a cryptographic hash: the registry detects the (astronomically unlikely) collision
//! of two names instead of trusting the hash to avoid it.

use std::fmt;

pub(crate) const FNV_OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a over `bytes`, continuing from `state`.
pub(crate) const fn fnv1a(mut state: u64, bytes: &[u8]) -> u64 {
    let mut i = 0;
    while i < bytes.len() {
        state ^= bytes[i] as u64;
        state = state.wrapping_mul(FNV_PRIME);
        i += 1;
    }
    state
}

/// The stable 64-bit identity of a registered item: the FNV-1a hash of its canonical
/// name, such as `my_app::Transformer::process_data`.
///
/// ```
/// use dilly::SymbolId;
/// // The hash is part of the wire format: it never changes between releases.
/// assert_eq!(SymbolId::of("my_app::double").to_raw(), 0x677f_015f_7699_726a);
/// assert_eq!(SymbolId::of("my_app::double"), SymbolId::of("my_app::double"));
/// ```
#[derive(
    Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct SymbolId(u64);

impl SymbolId {
    /// The ID of the item whose canonical name is `name`.
    pub const fn of(name: &str) -> Self {
        SymbolId(fnv1a(FNV_OFFSET_BASIS, name.as_bytes()))
    }

    /// Wraps a raw 64-bit value read from the wire.
    pub const fn from_raw(raw: u64) -> Self {
        SymbolId(raw)
    }

    /// The raw 64-bit value, as written on the wire.
    pub const fn to_raw(self) -> u64 {
        self.0
    }
}

impl fmt::Display for SymbolId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl fmt::Debug for SymbolId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SymbolId({:016x})", self.0)
    }
}

/// A hash of a registered item's signature: its argument, return and captured-state
/// types as written in the source.
///
/// Sender and receiver compare fingerprints so that a function whose signature changed
/// between two builds (version skew) is refused with [`Error::SignatureMismatch`]
/// instead of being fed bytes of the wrong shape.
///
/// [`Error::SignatureMismatch`]: crate::Error::SignatureMismatch
#[derive(
    Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct Fingerprint(u64);

impl Fingerprint {
    /// The fingerprint of a signature text such as `fn(u64) -> u64`.
    pub const fn of(signature: &str) -> Self {
        Fingerprint(fnv1a(FNV_OFFSET_BASIS, signature.as_bytes()))
    }

    /// Wraps a raw 64-bit value read from the wire.
    pub const fn from_raw(raw: u64) -> Self {
        Fingerprint(raw)
    }

    /// The raw 64-bit value, as written on the wire.
    pub const fn to_raw(self) -> u64 {
        self.0
    }

    /// Folds `more` into this fingerprint (used to fingerprint a whole registry).
    pub(crate) const fn extend(self, more: &[u8]) -> Self {
        Fingerprint(fnv1a(self.0, more))
    }

    /// The fingerprint of nothing: the starting point for [`Fingerprint::extend`].
    pub(crate) const EMPTY: Fingerprint = Fingerprint(FNV_OFFSET_BASIS);
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({:016x})", self.0)
    }
}

/// The identity of an executable file: 16 bytes of its GNU build-id note, or of a
/// hash of its contents where it has no such note.
#[derive(
    Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct BuildId(pub [u8; 16]);

impl fmt::Display for BuildId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for BuildId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BuildId({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_published_fnv1a_vectors() {
        // Test vectors from the FNV reference (draft-eastlake-fnv).
        assert_eq!(SymbolId::of("").to_raw(), 0xcbf2_9ce4_8422_2325);
        assert_eq!(SymbolId::of("a").to_raw(), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(SymbolId::of("foobar").to_raw(), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn is_usable_in_const_context() {
        const ID: SymbolId = SymbolId::of("x::y");
        assert_eq!(ID, SymbolId::of("x::y"));
        assert_ne!(ID, SymbolId::of("x::z"));
    }

    #[test]
    fn extend_equals_hash_of_concatenation() {
        let joined = Fingerprint::of("abcdef");
        assert_eq!(Fingerprint::of("abc").extend(b"def"), joined);
        assert_eq!(Fingerprint::EMPTY.extend(b"abcdef"), joined);
    }

    #[test]
    fn display_is_fixed_width_hex() {
        assert_eq!(SymbolId::from_raw(0xab).to_string(), "00000000000000ab");
    }
}
