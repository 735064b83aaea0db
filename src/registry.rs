//! The link-time registry: every `#[dilly::func]`, `#[dilly::methods]`, `closure!` and
//! `#[derive(Dilly)]` item is a static [`Entry`], collected at link time (by `linkme`,
//! or by `inventory` with the `inventory` feature) and indexed by [`SymbolId`] on first
//! use.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::panic::Location;
use std::sync::{LazyLock, Mutex};

pub use crate::entry::{Entry, Kind};
use crate::error::{Error, Result};
use crate::symbol::{Fingerprint, SymbolId};

/// Naming is the registry's: a nested item's name depends on the other registered
/// items, so it is resolved here, for all of them at once, on first use.
impl Entry {
    /// The canonical name, e.g. `my_app::Transformer::process_data`.
    ///
    /// An item nested in a function body is named by its enclosing function as
    /// well, as `std::any::type_name` writes it: `my_app::first::helper`,
    /// `my_app::first::Local::go`. When one function holds same-named items in
    /// different blocks, each name ends in `#` and 16 hex digits of a hash of the
    /// item's own tokens: `my_app::main::plus#5c2a…`. A closure keeps its module's
    /// name (`my_app::{closure#…}`) unless a token-identical closure in another
    /// function has it too; then each is named by its function. Names of nested
    /// items are resolved on first use, for the whole registry at once.
    pub fn name(&self) -> &'static str {
        self.resolved().0
    }

    /// The stable ID: [`SymbolId::of`] the name.
    #[inline]
    pub fn id(&self) -> SymbolId {
        self.resolved().1
    }

    #[inline]
    fn resolved(&self) -> (&'static str, SymbolId) {
        if self.scope.is_none() {
            return (self.name, self.id);
        }
        match self.resolved.get() {
            Some(resolved) => *resolved,
            None => self.resolve(),
        }
    }

    #[cold]
    fn resolve(&self) -> (&'static str, SymbolId) {
        if let Some(scope) = &self.scope
            && scope.enclosing().is_some()
        {
            // A nested item's name depends on its siblings: building the index
            // names every registered entry.
            LazyLock::force(&INDEX);
        }
        // Not registered: named as if it were alone.
        let alone = match self.kind {
            Kind::Closure => None,
            _ => self.base_name(),
        };
        *self.resolved.get_or_init(|| named(alone, self.name))
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
    /// Where the first was registered.
    pub first_at: &'static Location<'static>,
    /// Where the second was registered.
    pub second_at: &'static Location<'static>,
}

impl Duplicate {
    fn to_error(self) -> Error {
        Error::DuplicateSymbol {
            id: self.id,
            first: self.first.into(),
            second: self.second.into(),
            first_at: self.first_at.to_string().into(),
            second_at: self.second_at.to_string().into(),
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

static INDEX: LazyLock<Index> = LazyLock::new(|| {
    let all: Vec<&'static Entry> = collect::all().collect();
    let names = resolve_names(&all);
    for (entry, resolved) in all.iter().zip(&names) {
        if entry.scope.is_some() {
            // `Entry::resolve` sets the same value: for a nested entry only after
            // waiting for this index, and for any other the one name it can have.
            let _ = entry.resolved.set(*resolved);
        }
    }
    build_index(all.into_iter().zip(names))
});

/// Every resolved name made at run time. Entries are statics that hand out
/// `&'static str`, so a resolved name lives as long as the process: each distinct
/// one is allocated once and kept here, where it stays reachable, and resolving
/// again (each test builds registries of its own) reuses it.
static RESOLVED_NAMES: Mutex<BTreeSet<&'static str>> = Mutex::new(BTreeSet::new());

/// `fixed`, or the resolved name `base` made `'static`, with its ID.
fn named(base: Option<String>, fixed: &'static str) -> (&'static str, SymbolId) {
    let name = match base {
        None => fixed,
        Some(base) => {
            let mut names = RESOLVED_NAMES
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            match names.get(base.as_str()) {
                Some(&kept) => kept,
                None => {
                    let kept: &'static str = base.leak();
                    names.insert(kept);
                    kept
                }
            }
        }
    };
    (name, SymbolId::of(name))
}

/// The name and ID of each entry. A nested item is named by its enclosing function
/// (`my_app::first::helper`); when items of one function share that name from
/// different blocks, each is told apart by a hash of its own tokens
/// (`my_app::main::plus#<16 hex digits>`). Token-identical items keep one name and
/// are reported as duplicates. A closure, named by its tokens already, keeps its
/// module's name (`my_app::{closure#…}`) unless a token-identical closure of another
/// function has it too: then each is named by its function
/// (`my_app::first::{closure#…}`).
fn resolve_names(all: &[&'static Entry]) -> Vec<(&'static str, SymbolId)> {
    let bases: Vec<Option<String>> = all.iter().map(|entry| entry.base_name()).collect();
    // Distinct token hashes per nested name; distinct scopes per closure name.
    let mut siblings: HashMap<&str, Vec<u64>> = HashMap::new();
    let mut closure_scopes: HashMap<&str, Vec<Option<&str>>> = HashMap::new();
    for (entry, base) in all.iter().zip(&bases) {
        let Some(scope) = &entry.scope else { continue };
        if entry.kind == Kind::Closure {
            let scopes = closure_scopes.entry(entry.name).or_default();
            if !scopes.contains(&scope.enclosing()) {
                scopes.push(scope.enclosing());
            }
        } else if let Some(base) = base {
            let tokens = siblings.entry(base.as_str()).or_default();
            if !tokens.contains(&scope.tokens) {
                tokens.push(scope.tokens);
            }
        }
    }
    all.iter()
        .zip(&bases)
        .map(|(entry, base)| match (&entry.scope, base) {
            (None, _) => (entry.name, entry.id),
            (Some(_), base) if entry.kind == Kind::Closure => {
                let shared = closure_scopes[entry.name].len() > 1;
                named(base.clone().filter(|_| shared), entry.name)
            }
            (Some(scope), Some(base)) if siblings[base.as_str()].len() > 1 => {
                named(Some(format!("{base}#{:016x}", scope.tokens)), entry.name)
            }
            (Some(_), base) => named(base.clone(), entry.name),
        })
        .collect()
}

fn build_index(all: impl Iterator<Item = (&'static Entry, (&'static str, SymbolId))>) -> Index {
    let mut by_id: IdMap<(&'static Entry, &'static str)> = IdMap::default();
    let mut duplicates = Vec::new();
    for (entry, (name, id)) in all {
        match by_id.get(&id) {
            None => {
                by_id.insert(id, (entry, name));
            }
            Some((existing, _)) if std::ptr::eq(*existing, entry) => {}
            // Two token-identical closures in one scope hash to one name and do the
            // same thing: keeping either is correct.
            Some((existing, existing_name))
                if existing.kind == Kind::Closure
                    && entry.kind == Kind::Closure
                    && *existing_name == name
                    && existing.fingerprint == entry.fingerprint => {}
            Some((existing, existing_name)) => duplicates.push(Duplicate {
                id,
                first: existing_name,
                second: name,
                first_at: existing.location,
                second_at: entry.location,
            }),
        }
    }
    Index {
        by_id: by_id
            .into_iter()
            .map(|(id, (entry, _))| (id, entry))
            .collect(),
        duplicates,
    }
}

/// The fingerprint of the entries of `index`: traces every entry's shapes.
fn registry_fingerprint(index: &Index) -> RegistryFingerprint {
    let mut ids: Vec<_> = index
        .by_id
        .iter()
        .map(|(id, e)| (*id, e.fingerprint, e.shape()))
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
    if !entry.kind().is_callable() {
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
    use std::sync::Arc;

    use super::*;
    use crate::entry::{ErasedFunc, Ops, Scope};
    use crate::shape::Shapes;

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

    fn index_of(all: &[&'static Entry]) -> Index {
        build_index(all.iter().copied().zip(resolve_names(all)))
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

    /// `test_entry` named by where it stands in module `t`, beside `marker`.
    const fn scoped_entry(
        suffix: &'static str,
        marker: fn() -> &'static str,
        tokens: u64,
    ) -> Entry {
        test_entry("t::top", "fn()", Kind::Function).scoped(Scope::new("t", suffix, marker, tokens))
    }

    static TOP: Entry = scoped_entry("top", || "t::top", 1);
    static IN_F: Entry = scoped_entry("helper", || "t::f::helper", 2);
    static IN_G: Entry = scoped_entry("helper", || "t::g::helper", 3);
    static BLOCK_1: Entry = scoped_entry("plus", || "t::main::plus", 4);
    static BLOCK_2: Entry = scoped_entry("plus", || "t::main::plus", 5);
    static BLOCK_2_AGAIN: Entry = scoped_entry("plus", || "t::main::plus", 5);

    #[test]
    fn scoped_names_include_the_enclosing_function_only_when_nested() {
        let all = [&TOP, &IN_F, &IN_G];
        let names: Vec<_> = resolve_names(&all).into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["t::top", "t::f::helper", "t::g::helper"]);
        assert_eq!(resolve_names(&all)[1].1, SymbolId::of("t::f::helper"));
        assert!(index_of(&all).duplicates.is_empty());
    }

    #[test]
    fn same_named_items_of_one_function_are_told_apart_by_their_tokens() {
        let names: Vec<_> = resolve_names(&[&BLOCK_1, &BLOCK_2, &IN_F])
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(
            names,
            [
                "t::main::plus#0000000000000004",
                "t::main::plus#0000000000000005",
                "t::f::helper"
            ]
        );
        // Alone, an item needs no hash: its name does not depend on other code.
        assert_eq!(resolve_names(&[&BLOCK_1])[0].0, "t::main::plus");
    }

    #[test]
    fn token_identical_items_of_one_function_are_reported() {
        let index = index_of(&[&BLOCK_1, &BLOCK_2, &BLOCK_2_AGAIN]);
        assert_eq!(index.duplicates.len(), 1);
        assert_eq!(index.duplicates[0].first, "t::main::plus#0000000000000005");
        assert_eq!(index.duplicates[0].second, index.duplicates[0].first);
    }

    /// A closure entry of module `t` whose captures struct has type name `marker()`.
    const fn closure_entry(marker: fn() -> &'static str) -> Entry {
        test_entry("t::{closure#1}", "fn()", Kind::Closure).scoped(Scope::new(
            "t",
            "{closure#1}",
            marker,
            1,
        ))
    }

    static CLOSURE_IN_F: Entry = closure_entry(|| "t::f::__DillyCaptures");
    static CLOSURE_IN_F_AGAIN: Entry = closure_entry(|| "t::f::__DillyCaptures");
    static CLOSURE_IN_G: Entry = closure_entry(|| "t::g::__DillyCaptures");

    #[test]
    fn identical_closures_are_named_by_their_function_only_when_two_functions_have_one() {
        let names = |all: &[&'static Entry]| -> Vec<&str> {
            resolve_names(all).into_iter().map(|(n, _)| n).collect()
        };
        assert_eq!(names(&[&CLOSURE_IN_F]), ["t::{closure#1}"]);
        let one_function = [&CLOSURE_IN_F, &CLOSURE_IN_F_AGAIN];
        assert_eq!(names(&one_function), ["t::{closure#1}", "t::{closure#1}"]);
        assert!(index_of(&one_function).duplicates.is_empty());
        let two_functions = [&CLOSURE_IN_F, &CLOSURE_IN_G, &CLOSURE_IN_F_AGAIN];
        assert_eq!(
            names(&two_functions),
            [
                "t::f::{closure#1}",
                "t::g::{closure#1}",
                "t::f::{closure#1}"
            ]
        );
        let index = index_of(&two_functions);
        assert!(index.duplicates.is_empty());
        assert_eq!(index.by_id.len(), 2);
    }

    #[test]
    fn duplicate_names_are_reported_with_both() {
        let index = index_of(&[&A, &B, &A_AGAIN]);
        assert_eq!(
            index.duplicates,
            vec![Duplicate {
                id: A.id(),
                first: "t::a",
                second: "t::a",
                first_at: A.location(),
                second_at: A_AGAIN.location(),
            }]
        );
        assert_eq!(registry_fingerprint(&index).count, 2);
    }

    #[test]
    fn identical_closures_are_not_duplicates() {
        let index = index_of(&[&C1, &C2]);
        assert!(index.duplicates.is_empty());
        assert_eq!(registry_fingerprint(&index).count, 1);
    }

    #[test]
    fn fingerprint_ignores_order_and_sees_signatures() {
        let ab = registry_fingerprint(&index_of(&[&A, &B]));
        let ba = registry_fingerprint(&index_of(&[&B, &A]));
        let a2b = registry_fingerprint(&index_of(&[&A_AGAIN, &B]));
        assert_eq!(ab, ba);
        assert_ne!(ab, a2b);
        assert_eq!(ab.count, a2b.count);
    }

    #[test]
    fn fingerprint_sees_data_shapes() {
        let a = registry_fingerprint(&index_of(&[&A, &B]));
        let other = registry_fingerprint(&index_of(&[&A_OTHER_DATA, &B]));
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
