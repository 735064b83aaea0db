//! The link-time registry: every `#[dilly::func]`, `#[dilly::methods]`, `closure!` and
//! `#[derive(Dilly)]` item is a static [`Entry`], collected at link time (by `linkme`,
//! or by `inventory` with the `inventory` feature) and indexed by [`SymbolId`] on first
//! use.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, LazyLock, OnceLock};

use crate::error::{Error, Result};
use crate::func::ErasedFunc;
use crate::object::Object;
use crate::shape::Shapes;
use crate::symbol::{Fingerprint, SymbolId};

/// What kind of item a registry entry describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Kind {
    /// A free or nested function (`#[dilly::func]`), or an associated function.
    Function,
    /// A method with a receiver (`#[dilly::methods]`), called through `bind!`.
    Method,
    /// The body of a `closure!`.
    Closure,
    /// A user type (`#[derive(Dilly)]`) whose values travel as `Box<dyn Object>`.
    Type,
    /// The call of a task object (`#[derive(Dilly)] #[dilly(task)]`).
    Task,
}

impl Kind {
    /// A lowercase noun for messages.
    pub fn describe(self) -> &'static str {
        match self {
            Kind::Function => "function",
            Kind::Method => "method",
            Kind::Closure => "closure",
            Kind::Type => "type",
            Kind::Task => "task",
        }
    }

    fn is_callable(self) -> bool {
        !matches!(self, Kind::Type)
    }
}

/// Builds a callable from a function entry's encoded state, keeping the bytes.
pub(crate) type PrepareFn = fn(&[u8]) -> Result<Arc<dyn ErasedFunc>>;
/// Decodes encoded state into something that serializes it readably.
pub(crate) type StateToReadableFn = fn(&[u8]) -> Result<Box<dyn erased_serde::Serialize>>;
/// Reads state from a readable format and encodes it.
pub(crate) type StateFromReadableFn =
    fn(&mut dyn erased_serde::Deserializer<'_>) -> Result<Vec<u8>, erased_serde::Error>;
/// Traces an entry's data shapes.
pub(crate) type ShapesFn = fn() -> Shapes;
/// Reads a type-erased object from any format.
pub(crate) type ObjectFromFn =
    fn(&mut dyn erased_serde::Deserializer<'_>) -> Result<Box<dyn Object>, erased_serde::Error>;

#[derive(Clone, Copy)]
pub(crate) enum Ops {
    Func {
        prepare: PrepareFn,
        state_to_readable: StateToReadableFn,
        state_from_readable: StateFromReadableFn,
    },
    Object {
        deserialize: ObjectFromFn,
    },
}

/// One registered item. Entries are `static`s emitted by the macros; user code reads
/// them through [`lookup`], [`entries`] and the accessors below.
pub struct Entry {
    name: &'static str,
    signature: &'static str,
    kind: Kind,
    id: SymbolId,
    fingerprint: Fingerprint,
    ops: Ops,
    trace_shapes: ShapesFn,
    /// The traced data shapes: traced on first use, as few entries are ever checked.
    shapes: OnceLock<Shapes>,
    /// The prepared function for an empty state (free functions, closures without
    /// captures): immutable, so every receipt can share it instead of allocating.
    stateless: OnceLock<Arc<dyn ErasedFunc>>,
}

impl Entry {
    pub(crate) const fn new(
        name: &'static str,
        signature: &'static str,
        kind: Kind,
        ops: Ops,
        trace_shapes: ShapesFn,
    ) -> Entry {
        Entry {
            name,
            signature,
            kind,
            id: SymbolId::of(name),
            fingerprint: Fingerprint::of(signature),
            ops,
            trace_shapes,
            shapes: OnceLock::new(),
            stateless: OnceLock::new(),
        }
    }

    /// The canonical name, e.g. `my_app::Transformer::process_data`.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The stable ID: [`SymbolId::of`] the name.
    pub fn id(&self) -> SymbolId {
        self.id
    }

    /// The signature as written, e.g. `fn(&Transformer, u64, u64) -> u64`.
    pub fn signature(&self) -> &'static str {
        self.signature
    }

    /// [`Fingerprint::of`] the signature.
    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    /// The data shapes of the state, arguments and result, as serde sees them
    /// (see [`crate::shape`]). Traced on the first call, then kept.
    #[inline]
    pub fn shapes(&self) -> &Shapes {
        self.shapes.get_or_init(self.trace_shapes)
    }

    /// [`Shapes::hash`] of [`shapes`](Entry::shapes): what compact frames carry.
    #[inline]
    pub fn shape(&self) -> Fingerprint {
        self.shapes().hash()
    }

    /// Checks that the sender's data `shape` matches this build's.
    #[inline]
    pub fn check_shape(&self, shape: Fingerprint) -> Result<()> {
        if shape == self.shape() {
            Ok(())
        } else {
            Err(self.shape_mismatch(shape))
        }
    }

    #[cold]
    fn shape_mismatch(&self, found: Fingerprint) -> Error {
        let shapes = self.shapes();
        Error::ShapeMismatch {
            name: self.name.into(),
            expected: shapes.to_string(),
            expected_shape: shapes.hash(),
            found,
        }
    }

    /// What kind of item this is.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    pub(crate) fn ops(&self) -> Ops {
        self.ops
    }

    /// Checks that the sender's `fingerprint` matches this build's signature.
    pub fn check_fingerprint(&self, fingerprint: Fingerprint) -> Result<()> {
        if fingerprint == self.fingerprint {
            Ok(())
        } else {
            Err(Error::SignatureMismatch {
                name: self.name.into(),
                expected: self.signature.into(),
                expected_fingerprint: self.fingerprint,
                found: fingerprint,
            })
        }
    }

    /// Decodes `state` and returns the function ready to be called with encoded
    /// arguments. This is what a worker does once per function it is sent.
    pub fn prepare(&self, state: &[u8]) -> Result<Arc<dyn ErasedFunc>> {
        let Ops::Func { prepare, .. } = self.ops else {
            return Err(self.wrong_kind("function"));
        };
        if !state.is_empty() {
            return prepare(state);
        }
        if let Some(shared) = self.stateless.get() {
            return Ok(Arc::clone(shared));
        }
        let prepared = prepare(state)?;
        Ok(Arc::clone(self.stateless.get_or_init(|| prepared)))
    }

    pub(crate) fn wrong_kind(&self, expected: &'static str) -> Error {
        Error::WrongKind {
            name: self.name.into(),
            expected: expected.into(),
            found: self.kind.describe().into(),
        }
    }
}

impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Entry")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("signature", &self.signature)
            .field("id", &self.id)
            .finish()
    }
}

#[cfg(not(feature = "inventory"))]
mod collect {
    use super::Entry;

    /// Every registered entry, gathered by the linker.
    #[linkme::distributed_slice]
    pub static REGISTRY: [&'static Entry];

    pub(super) fn all() -> impl Iterator<Item = &'static Entry> {
        REGISTRY.iter().copied()
    }
}

#[cfg(feature = "inventory")]
mod collect {
    use super::Entry;

    /// A registered entry, submitted to `inventory`.
    pub struct Registration(pub &'static Entry);

    inventory::collect!(Registration);

    pub(super) fn all() -> impl Iterator<Item = &'static Entry> {
        inventory::iter::<Registration>.into_iter().map(|r| r.0)
    }
}

#[cfg(not(feature = "inventory"))]
#[doc(hidden)]
pub use collect::REGISTRY;
#[cfg(feature = "inventory")]
#[doc(hidden)]
pub use collect::Registration;

/// Two entries whose names hash to the same [`SymbolId`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Duplicate {
    /// The contested ID.
    pub id: SymbolId,
    /// The name indexed first.
    pub first: &'static str,
    /// The name that collided with it.
    pub second: &'static str,
}

impl Duplicate {
    fn to_error(self) -> Error {
        Error::DuplicateSymbol {
            id: self.id,
            first: self.first.into(),
            second: self.second.into(),
        }
    }
}

/// A summary of a whole registry, cheap to compare in a handshake: two processes
/// with equal fingerprints registered the same items with the same signatures and
/// the same data shapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RegistryFingerprint {
    /// Number of distinct entries.
    pub count: usize,
    /// Hash over every entry's ID, signature fingerprint and shape hash, in ID order.
    pub hash: Fingerprint,
}

impl fmt::Display for RegistryFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} entries, hash {}", self.count, self.hash)
    }
}

/// `SymbolId`s are already uniform hashes: the index uses them as they are.
#[derive(Default)]
struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used by `SymbolId`; fold anything else in regardless.
        for &b in bytes {
            self.0 = (self.0.rotate_left(8)) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }
}

type IdMap<V> = HashMap<SymbolId, V, std::hash::BuildHasherDefault<IdHasher>>;

struct Index {
    by_id: IdMap<&'static Entry>,
    duplicates: Vec<Duplicate>,
}

static INDEX: LazyLock<Index> = LazyLock::new(|| build_index(collect::all()));

fn build_index(all: impl Iterator<Item = &'static Entry>) -> Index {
    let mut by_id: IdMap<&'static Entry> = IdMap::default();
    let mut duplicates = Vec::new();
    for entry in all {
        match by_id.get(&entry.id) {
            None => {
                by_id.insert(entry.id, entry);
            }
            Some(existing) if std::ptr::eq(*existing, entry) => {}
            // Two token-identical closures in one module hash to one name and do the
            // same thing: keeping either is correct.
            Some(existing)
                if existing.kind == Kind::Closure
                    && entry.kind == Kind::Closure
                    && existing.name == entry.name
                    && existing.fingerprint == entry.fingerprint => {}
            Some(existing) => duplicates.push(Duplicate {
                id: entry.id,
                first: existing.name,
                second: entry.name,
            }),
        }
    }
    Index { by_id, duplicates }
}

/// The fingerprint of the entries of `index`: traces every entry's shapes.
fn registry_fingerprint(index: &Index) -> RegistryFingerprint {
    let mut ids: Vec<_> = index
        .by_id
        .values()
        .map(|e| (e.id, e.fingerprint, e.shape()))
        .collect();
    ids.sort();
    let hash = ids.iter().fold(Fingerprint::EMPTY, |h, (id, fp, shape)| {
        h.extend(&id.to_raw().to_le_bytes())
            .extend(&fp.to_raw().to_le_bytes())
            .extend(&shape.to_raw().to_le_bytes())
    });
    RegistryFingerprint {
        count: index.by_id.len(),
        hash,
    }
}

static FINGERPRINT: LazyLock<RegistryFingerprint> = LazyLock::new(|| registry_fingerprint(&INDEX));

/// The entry registered under `id`.
///
/// Fails with [`Error::UnknownSymbol`] when nothing is, and with
/// [`Error::DuplicateSymbol`] when two items claim the ID.
pub fn lookup(id: SymbolId) -> Result<&'static Entry> {
    let index = &*INDEX;
    if let Some(dup) = index.duplicates.iter().find(|d| d.id == id) {
        return Err(dup.to_error());
    }
    index
        .by_id
        .get(&id)
        .copied()
        .ok_or(Error::UnknownSymbol { id, name: None })
}

/// The entry registered under the canonical `name`.
pub fn lookup_name(name: &str) -> Result<&'static Entry> {
    lookup(SymbolId::of(name)).map_err(|e| match e {
        Error::UnknownSymbol { id, .. } => Error::UnknownSymbol {
            id,
            name: Some(name.to_owned()),
        },
        other => other,
    })
}

/// The entry for `id`, checked against the sender's signature `fingerprint` and
/// data `shape` and required to be callable: the usual first step on a receiving
/// side.
pub fn lookup_callable(
    id: SymbolId,
    fingerprint: Fingerprint,
    shape: Fingerprint,
) -> Result<&'static Entry> {
    let entry = lookup(id)?;
    if !entry.kind.is_callable() {
        return Err(entry.wrong_kind("function"));
    }
    entry.check_fingerprint(fingerprint)?;
    entry.check_shape(shape)?;
    Ok(entry)
}

/// Every distinct registered entry, in no particular order.
pub fn entries() -> impl Iterator<Item = &'static Entry> {
    INDEX.by_id.values().copied()
}

/// Pairs of entries that claim the same ID. Empty in a healthy program; a test can
/// assert that with `assert!(dilly::registry::duplicates().is_empty())`.
pub fn duplicates() -> &'static [Duplicate] {
    &INDEX.duplicates
}

/// The fingerprint of this program's whole registry — every entry's ID, signature
/// and data shapes — for handshakes between processes. The first call traces the
/// shapes of every entry.
pub fn fingerprint() -> RegistryFingerprint {
    *FINGERPRINT
}

/// Fails with the first [`Error::DuplicateSymbol`], if any: call it at start-up to
/// catch name collisions before any value is sent.
pub fn check() -> Result<()> {
    match INDEX.duplicates.first() {
        Some(dup) => Err(dup.to_error()),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn never_prepare(_: &[u8]) -> Result<Arc<dyn ErasedFunc>> {
        Err(Error::Malformed {
            what: "state".into(),
            detail: "test entry".into(),
        })
    }
    fn never_readable(_: &[u8]) -> Result<Box<dyn erased_serde::Serialize>> {
        Ok(Box::new(()))
    }
    fn never_from_readable(
        _: &mut dyn erased_serde::Deserializer<'_>,
    ) -> Result<Vec<u8>, erased_serde::Error> {
        Ok(Vec::new())
    }

    const fn test_entry(name: &'static str, signature: &'static str, kind: Kind) -> Entry {
        Entry::new(
            name,
            signature,
            kind,
            Ops::Func {
                prepare: never_prepare,
                state_to_readable: never_readable,
                state_from_readable: never_from_readable,
            },
            Shapes::of::<(), (), ()>,
        )
    }

    static A: Entry = test_entry("t::a", "fn()", Kind::Function);
    /// `A` in a build whose data differ: same name and signature, another shape.
    static A_OTHER_DATA: Entry = Entry::new(
        "t::a",
        "fn()",
        Kind::Function,
        Ops::Func {
            prepare: never_prepare,
            state_to_readable: never_readable,
            state_from_readable: never_from_readable,
        },
        Shapes::of::<(), (), u64>,
    );
    static A_AGAIN: Entry = test_entry("t::a", "fn(u8)", Kind::Function);
    static B: Entry = test_entry("t::b", "fn()", Kind::Function);
    static C1: Entry = test_entry("t::{closure:1}", "fn()", Kind::Closure);
    static C2: Entry = test_entry("t::{closure:1}", "fn()", Kind::Closure);

    #[test]
    fn duplicate_names_are_reported_with_both() {
        let index = build_index([&A, &B, &A_AGAIN].into_iter());
        assert_eq!(
            index.duplicates,
            vec![Duplicate {
                id: A.id,
                first: "t::a",
                second: "t::a"
            }]
        );
        assert_eq!(registry_fingerprint(&index).count, 2);
    }

    #[test]
    fn identical_closures_are_not_duplicates() {
        let index = build_index([&C1, &C2].into_iter());
        assert!(index.duplicates.is_empty());
        assert_eq!(registry_fingerprint(&index).count, 1);
    }

    #[test]
    fn fingerprint_ignores_order_and_sees_signatures() {
        let ab = registry_fingerprint(&build_index([&A, &B].into_iter()));
        let ba = registry_fingerprint(&build_index([&B, &A].into_iter()));
        let a2b = registry_fingerprint(&build_index([&A_AGAIN, &B].into_iter()));
        assert_eq!(ab, ba);
        assert_ne!(ab, a2b);
        assert_eq!(ab.count, a2b.count);
    }

    #[test]
    fn fingerprint_sees_data_shapes() {
        let a = registry_fingerprint(&build_index([&A, &B].into_iter()));
        let other = registry_fingerprint(&build_index([&A_OTHER_DATA, &B].into_iter()));
        assert_eq!(A.fingerprint(), A_OTHER_DATA.fingerprint());
        assert_ne!(a, other);
        let err = A.check_shape(A_OTHER_DATA.shape()).unwrap_err();
        assert!(
            matches!(&err, Error::ShapeMismatch { name, .. } if name == "t::a"),
            "{err}"
        );
        assert!(err.is_version_skew());
        assert!(err.to_string().contains("result ()"), "{err}");
        assert_eq!(A.check_shape(A.shape()), Ok(()));
    }

    #[test]
    fn fingerprint_mismatch_names_both_sides() {
        let err = A.check_fingerprint(Fingerprint::of("fn(u8)")).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("t::a") && text.contains("fn()"), "{text}");
        assert!(err.is_version_skew());
    }
}
