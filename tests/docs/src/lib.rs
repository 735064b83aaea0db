//! Test-only crate: every Rust code block of `README.md` and `docs/*.md` is a doc
//! test of this crate, so `cargo test -p dilly-docs --doc` compiles each of them and
//! runs those that need no live service (blocks that need Redis are `no_run`).
//! Blocks that are not Rust are marked `text` or `sh`.
//!
//! Each page is one module below; its text is the page itself.

#![forbid(unsafe_code)]

#[doc = include_str!("../../../README.md")]
pub mod readme {}

#[doc = include_str!("../../../docs/architecture.md")]
pub mod architecture {}

#[doc = include_str!("../../../docs/benchmarks.md")]
pub mod benchmarks {}

#[doc = include_str!("../../../docs/comparison.md")]
pub mod comparison {}

#[doc = include_str!("../../../docs/decisions.md")]
pub mod decisions {}

#[doc = include_str!("../../../docs/distributed.md")]
pub mod distributed {}

#[doc = include_str!("../../../docs/guide.md")]
pub mod guide {}

#[doc = include_str!("../../../docs/pool.md")]
pub mod pool {}

#[doc = include_str!("../../../docs/reliability.md")]
pub mod reliability {}

#[doc = include_str!("../../../docs/same-build.md")]
pub mod same_build {}

#[doc = include_str!("../../../docs/wire-format.md")]
pub mod wire_format {}
