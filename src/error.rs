//! The one error type of the `dilly` crate.

use std::borrow::Cow;

use crate::symbol::{BuildId, Fingerprint, SymbolId};

/// Everything that can go wrong while registering, encoding, decoding or calling a
/// dilly value. Bad input never panics: it comes back as one of these.
///
/// Errors are serde values, so a worker can send one back to the process that asked
/// (`dilly-pool` and its backends do, through [`to_bytes`](crate::to_bytes)). Text
/// fields are `Cow<'static, str>`: borrowed where this build wrote the text, owned
/// where it was decoded. The serde form numbers variants in declaration order, so
/// new variants go last.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum Error {
    /// The receiver has no registry entry for the ID. Usually the sender runs a
    /// different program or a newer build.
    #[error(
        "unknown symbol {id}{}: this program has no function or type registered under that ID; \
         run the same build on both sides, and check that the crate defining it is linked \
         (reference it from the binary, e.g. `use that_crate as _;`)",
        name.as_ref().map(|n| format!(" (`{n}`)")).unwrap_or_default()
    )]
    UnknownSymbol {
        /// The ID that was received.
        id: SymbolId,
        /// The canonical name, when the sender wrote one (readable formats do).
        name: Option<String>,
    },

    /// Two registered items hash to the same ID.
    #[error(
        "duplicate symbol {id}: `{first}` (registered at {first_at}) and `{second}` (registered at {second_at}) \
         are both registered under it; give one of them its own name with `#[dilly::func(name = \"...\")]`, \
         or `#[dilly(name = \"...\")]` on a method"
    )]
    DuplicateSymbol {
        /// The contested ID.
        id: SymbolId,
        /// One of the two names.
        first: Cow<'static, str>,
        /// The other name.
        second: Cow<'static, str>,
        /// Where the first was registered (`file:line:column`).
        first_at: Cow<'static, str>,
        /// Where the second was registered (`file:line:column`).
        second_at: Cow<'static, str>,
    },

    /// The receiver's registered item has a different signature than the sender's:
    /// the two sides run different versions of the code.
    #[error(
        "signature mismatch for `{name}`: this build has `{expected}` (fingerprint {expected_fingerprint}) \
         but the sender's fingerprint is {found}; the two processes run different versions — rebuild and deploy one build"
    )]
    SignatureMismatch {
        /// The item's canonical name.
        name: Cow<'static, str>,
        /// The receiver's signature text.
        expected: Cow<'static, str>,
        /// The receiver's fingerprint.
        expected_fingerprint: Fingerprint,
        /// The fingerprint the sender wrote.
        found: Fingerprint,
    },

    /// The receiver's registered item has the same signature as the sender's, but
    /// the data behind it — its state, receiver, arguments or result — has another
    /// shape: a field was added, removed, reordered or retyped, or an enum gained a
    /// variant. The value is refused before any of it is decoded.
    #[error(
        "data shape mismatch for `{name}`: the sender's data types differ from this build's \
         (sender's shape hash {found}, this build's {expected_shape}: {expected}); \
         compact formats need identical data types on both sides — deploy one build, or roll \
         the change out on a new queue and drain the old one (docs/wire-format.md)"
    )]
    ShapeMismatch {
        /// The item's canonical name.
        name: Cow<'static, str>,
        /// This build's shapes of the state, arguments and result.
        expected: String,
        /// This build's shape hash.
        expected_shape: Fingerprint,
        /// The shape hash the sender wrote.
        found: Fingerprint,
    },
    /// The bytes were made by an older dilly, whose wire format this build no longer
    /// reads: it would have to trust data shapes the bytes do not record.
    #[error(
        "these bytes were made by an older dilly (wire format version {found}); this build reads \
         version {supported} only: re-encode them with this build's dilly, or drain them with the \
         old build (docs/wire-format.md)"
    )]
    OlderFormat {
        /// The version the bytes were written in.
        found: u8,
        /// The version this build reads.
        supported: u8,
    },
    /// A value was decoded as `Func<Args, R>` with type parameters that do not match
    /// the registered function.
    #[error(
        "type mismatch for `{name}`: it is registered as `{registered}` but was used as `{requested}`; \
         change the `Func<..>` type parameters to match the function"
    )]
    TypeMismatch {
        /// The item's canonical name.
        name: String,
        /// The registered argument and return types.
        registered: String,
        /// The argument and return types asked for.
        requested: String,
    },

    /// The ID names a registered item of another kind (a type where a function was
    /// expected, or the reverse).
    #[error("`{name}` is a registered {found}, not a {expected}")]
    WrongKind {
        /// The item's canonical name.
        name: Cow<'static, str>,
        /// What the caller needed.
        expected: Cow<'static, str>,
        /// What the registry holds.
        found: Cow<'static, str>,
    },

    /// A same-build value came from a different executable: its code address means
    /// nothing here.
    #[error(
        "build mismatch: this same-build function value was made by executable build {found}, \
         but this process runs build {expected}; run the identical binary on both sides, \
         or make the value portable by listing its captures' types in `closure!([name: Type] ...)`"
    )]
    BuildMismatch {
        /// This process's build ID.
        expected: BuildId,
        /// The sender's build ID.
        found: BuildId,
    },

    /// A same-build value's code offset does not point into this executable's code.
    #[error(
        "bad same-build address: offset {offset} points outside this executable's code; the value was corrupted or forged"
    )]
    BadAddress {
        /// The offset that was received.
        offset: i64,
    },

    /// This process cannot identify its own executable, so it neither makes nor
    /// accepts same-build values.
    #[error(
        "same-build values are unavailable here: {detail}; use a portable value (list the captures' types in `closure!`)"
    )]
    SameBuildUnavailable {
        /// Why.
        detail: String,
    },

    /// A same-build value arrived where a portable `Func<A, R>` was expected.
    #[error(
        "this function value is same-build only (its code is named by address, not by a registered name); \
         receive it as `Func<A, R, dilly::SameBuild>`, or make it portable by listing its captures' types in `closure!([name: Type] ...)`"
    )]
    NotPortable,

    /// The input ended before the value did: the bytes were cut short, or their
    /// writer wrote less than the reader's type reads (a `Serialize` that writes
    /// fewer fields than its `Deserialize` reads, which dilly's own encoders send
    /// self-described, or another type altogether).
    #[error(
        "truncated input: {what} needs {needed} bytes but only {available} are left: the bytes \
         were cut short, or their writer's type writes less than the reader's reads"
    )]
    Truncated {
        /// What was being read.
        what: Cow<'static, str>,
        /// Bytes needed.
        needed: usize,
        /// Bytes available.
        available: usize,
    },

    /// A length in the input exceeds the configured limit; nothing was allocated.
    #[error(
        "{what} of {len} bytes exceeds the limit of {limit} bytes; raise it with `{setting}` if the input is trusted"
    )]
    TooLarge {
        /// What the length described.
        what: Cow<'static, str>,
        /// The claimed length.
        len: u64,
        /// The limit in force.
        limit: usize,
        /// The setting that raises the limit where it was met: `Limits::max_len`
        /// for dilly's own decoders, a builder's `max_len` for a pool or a queue.
        setting: Cow<'static, str>,
    },

    /// The input nests compound values (sequences, maps, structs, enums, options)
    /// deeper than the configured limit; the decode stopped there instead of
    /// overflowing the stack.
    #[error(
        "{what} nests deeper than the limit of {limit} levels; the input was corrupted or forged, or, if it is trusted, raise the limit with `Limits::with_max_depth`"
    )]
    TooDeep {
        /// What was being decoded.
        what: Cow<'static, str>,
        /// The limit in force.
        limit: usize,
    },

    /// The input is from an unknown wire-format version.
    #[error(
        "unsupported wire format version {found} (this build reads version {supported}); the bytes \
         come from a newer dilly or are corrupt: upgrade the receiver"
    )]
    UnsupportedVersion {
        /// Version byte found.
        found: u8,
        /// Version this build reads.
        supported: u8,
    },

    /// The bytes do not decode as the expected value.
    #[error("malformed {what}: {detail}")]
    Malformed {
        /// What was being decoded.
        what: Cow<'static, str>,
        /// The decoder's explanation.
        detail: String,
    },

    /// A value could not be encoded (for example a map with non-string keys in JSON,
    /// or a `Serialize` impl that returned an error).
    #[error("cannot encode {what}: {detail}")]
    Encode {
        /// What was being encoded.
        what: Cow<'static, str>,
        /// The encoder's explanation.
        detail: String,
    },
}

impl Error {
    /// True when the error means the two sides run different builds (unknown symbol,
    /// signature or data shape mismatch, bytes from an older dilly): redeploying one
    /// build fixes it, retrying does not.
    pub fn is_version_skew(&self) -> bool {
        matches!(
            self,
            Error::UnknownSymbol { .. }
                | Error::SignatureMismatch { .. }
                | Error::ShapeMismatch { .. }
                | Error::OlderFormat { .. }
        )
    }

    /// True when the input bytes were bad (truncated, oversized, too deeply nested,
    /// malformed, unknown version): the sender or the channel is at fault.
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            Error::Truncated { .. }
                | Error::TooLarge { .. }
                | Error::TooDeep { .. }
                | Error::UnsupportedVersion { .. }
                | Error::Malformed { .. }
                | Error::BadAddress { .. }
        )
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
