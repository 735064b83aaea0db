//! Same-build function values: any closure, addressed by its code's offset inside
//! this very executable. The only module of dilly with `unsafe` code.
//!
//! A by-name function needs its types written so that a `static` can name them. A
//! closure in a generic function, or one whose captures have inferred types, cannot
//! be registered that way — but a worker started from the identical executable has
//! the same code at the same offsets. So the sender writes, instead of a symbol ID:
//!
//! * the [`BuildId`] of its executable (the ELF GNU build-id note, else a hash of the
//!   file), and
//! * the offset of a monomorphized *preparer* function from an anchor function in
//!   this module.
//!
//! The receiver refuses a different build ([`Error::BuildMismatch`]) before it looks
//! at the offset, refuses an address outside its executable's code
//! ([`Error::BadAddress`]), and only then turns the address back into a function
//! pointer. See `docs/same-build.md` for exactly what is and is not guaranteed.
//!
//! [`Error::BuildMismatch`]: crate::Error::BuildMismatch
//! [`Error::BadAddress`]: crate::Error::BadAddress

use std::io::Read;
use std::marker::PhantomData;
use std::sync::{Arc, LazyLock};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::codec;
use crate::entry::{ErasedFunc, Output, PrepareFn};
use crate::error::{Error, Result};
use crate::prepared::Shared;
pub use crate::symbol::BuildId;
use crate::symbol::{FNV_OFFSET_BASIS, fnv1a};

/// Where this process's build ID came from, for diagnostics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildIdSource {
    /// The ELF `NT_GNU_BUILD_ID` note the linker wrote.
    GnuNote,
    /// A hash of the executable file's bytes.
    FileHash,
}

struct ThisBuild {
    id: std::result::Result<(BuildId, BuildIdSource), String>,
    /// Executable address ranges of this program's own file, from /proc/self/maps.
    code: Vec<(usize, usize)>,
}

fn identify(path: &std::path::Path) -> std::result::Result<(BuildId, BuildIdSource), String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    Ok(match gnu_build_id(&bytes) {
        Some(note) => (BuildId(first_16(note)), BuildIdSource::GnuNote),
        None => (file_hash(&bytes), BuildIdSource::FileHash),
    })
}

/// The build ID of the executable at `path`, computed as for this process: an
/// executor that starts workers from another program compares it with
/// [`this_build`] to refuse same-build values before it sends them.
pub fn build_id_of(path: &std::path::Path) -> Result<BuildId> {
    identify(path)
        .map(|(id, _)| id)
        .map_err(|detail| Error::SameBuildUnavailable { detail })
}

static THIS_BUILD: LazyLock<ThisBuild> = LazyLock::new(|| {
    // `/proc/self/exe` is this very file even after a rebuild replaced it on disk.
    let id = identify(std::path::Path::new("/proc/self/exe")).or_else(|_| {
        let path =
            std::env::current_exe().map_err(|e| format!("cannot locate the executable: {e}"))?;
        identify(&path)
    });
    ThisBuild {
        id,
        code: own_code_ranges().unwrap_or_default(),
    }
});

fn first_16(note: &[u8]) -> [u8; 16] {
    let mut out = [0; 16];
    let n = note.len().min(16);
    out[..n].copy_from_slice(&note[..n]);
    if note.len() < 16 {
        // Short notes (e.g. 8-byte "fast" IDs) are stretched with a hash of themselves.
        let h = fnv1a(FNV_OFFSET_BASIS, note).to_le_bytes();
        out[n..].copy_from_slice(&h[..16 - n]);
    }
    out
}

fn file_hash(bytes: &[u8]) -> BuildId {
    let a = fnv1a(FNV_OFFSET_BASIS, bytes).to_le_bytes();
    let b = fnv1a(0x6c62_272e_07bb_0142, bytes).to_le_bytes();
    let mut out = [0; 16];
    out[..8].copy_from_slice(&a);
    out[8..].copy_from_slice(&b);
    BuildId(out)
}

/// The `NT_GNU_BUILD_ID` note of a little-endian ELF file, if it has one.
pub(crate) fn gnu_build_id(elf: &[u8]) -> Option<&[u8]> {
    let read = |at: usize, n: usize| elf.get(at..at.checked_add(n)?);
    let u16_at = |at| read(at, 2).map(|b| u16::from_le_bytes([b[0], b[1]]) as usize);
    let u32_at = |at| read(at, 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize);
    let u64_at =
        |at| read(at, 8).and_then(|b| usize::try_from(u64::from_le_bytes(b.try_into().ok()?)).ok());
    if read(0, 4)? != b"\x7fELF" || *elf.get(5)? != 1 {
        return None; // not ELF, or big endian
    }
    let is_64 = match elf.get(4)? {
        1 => false,
        2 => true,
        _ => return None,
    };
    let (phoff, phentsize, phnum) = if is_64 {
        (u64_at(0x20)?, u16_at(0x36)?, u16_at(0x38)?)
    } else {
        (u32_at(0x1c)?, u16_at(0x2a)?, u16_at(0x2c)?)
    };
    const PT_NOTE: usize = 4;
    const NT_GNU_BUILD_ID: usize = 3;
    for i in 0..phnum {
        let header = phoff.checked_add(i.checked_mul(phentsize)?)?;
        if u32_at(header)? != PT_NOTE {
            continue;
        }
        let (offset, size) = if is_64 {
            (u64_at(header + 8)?, u64_at(header + 32)?)
        } else {
            (u32_at(header + 4)?, u32_at(header + 16)?)
        };
        let notes = read(offset, size)?;
        let mut at = 0;
        while at + 12 <= notes.len() {
            let field = |k: usize| {
                u32::from_le_bytes(notes[at + k..at + k + 4].try_into().unwrap_or([0; 4])) as usize
            };
            let (namesz, descsz, kind) = (field(0), field(4), field(8));
            let name_start = at + 12;
            let desc_start = name_start.checked_add(namesz.checked_add(3)? & !3)?;
            let desc_end = desc_start.checked_add(descsz)?;
            if desc_end > notes.len() {
                break;
            }
            if kind == NT_GNU_BUILD_ID && notes.get(name_start..name_start + namesz)? == b"GNU\0" {
                return Some(&notes[desc_start..desc_end]);
            }
            at = desc_end.checked_add(3)? & !3;
        }
    }
    None
}

/// Executable mappings of this program's own file.
fn own_code_ranges() -> Option<Vec<(usize, usize)>> {
    let exe = std::fs::read_link("/proc/self/exe").ok()?;
    let mut maps = String::new();
    std::fs::File::open("/proc/self/maps")
        .ok()?
        .read_to_string(&mut maps)
        .ok()?;
    let exe = exe.to_string_lossy();
    let ranges = maps
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let range = fields.next()?;
            let perms = fields.next()?;
            let path = fields.nth(3)?;
            if !perms.contains('x') || path != exe {
                return None;
            }
            let (start, end) = range.split_once('-')?;
            Some((
                usize::from_str_radix(start, 16).ok()?,
                usize::from_str_radix(end, 16).ok()?,
            ))
        })
        .collect::<Vec<_>>();
    (!ranges.is_empty()).then_some(ranges)
}

/// This executable's build ID, computed once.
pub fn this_build() -> Result<BuildId> {
    match &THIS_BUILD.id {
        Ok((id, _)) => Ok(*id),
        Err(detail) => Err(Error::SameBuildUnavailable {
            detail: detail.clone(),
        }),
    }
}

/// Where [`this_build`] came from.
pub fn this_build_source() -> Option<BuildIdSource> {
    THIS_BUILD.id.as_ref().ok().map(|(_, source)| *source)
}

/// Offsets are measured from this function.
#[inline(never)]
fn anchor() {}

fn anchor_address() -> usize {
    anchor as fn() as usize
}

/// The offset of `prepare` from the anchor.
pub(crate) fn offset_of(prepare: PrepareFn) -> i64 {
    (prepare as usize).wrapping_sub(anchor_address()) as i64
}

/// Turns a received (build, offset) back into the preparer it names, after checking
/// that it comes from this very executable and points into its code.
pub(crate) fn resolve(build: BuildId, offset: i64) -> Result<PrepareFn> {
    let this = this_build()?;
    if build != this {
        return Err(Error::BuildMismatch {
            expected: this,
            found: build,
        });
    }
    let address = anchor_address().wrapping_add(offset as usize);
    let inside = THIS_BUILD
        .code
        .iter()
        .any(|&(start, end)| (start..end).contains(&address));
    if !inside {
        return Err(Error::BadAddress { offset });
    }
    Ok(address_to_preparer(address))
}

#[allow(unsafe_code)]
fn address_to_preparer(address: usize) -> PrepareFn {
    // SAFETY: `address` is `anchor + offset`, where `offset` was computed by
    // `offset_of` from a `PrepareFn` in an executable with the same build ID as this
    // one (checked by `resolve` above), so the same bytes of the same function lie at
    // that offset here; ASLR moves the whole image, not one function relative to
    // another. `resolve` also checked that the address lies in this executable's own
    // code mappings. What this cannot check is a *forged* offset with a correct build
    // ID; that is why same-build values must come from a trusted or authenticated
    // channel (docs/same-build.md). `usize` and `fn` pointers have the same size on
    // every platform Rust supports.
    unsafe { std::mem::transmute::<usize, PrepareFn>(address) }
}

/// Prepares a same-build closure: decodes the captures `C` and pairs them with the
/// lifted body `L`, a zero-sized closure type.
fn prepare_closure<C, A, R, L>(encoded: &[u8]) -> Result<Arc<dyn ErasedFunc>>
where
    C: Serialize + DeserializeOwned + Send + Sync + 'static,
    A: DeserializeOwned + 'static,
    R: Output,
    L: Fn(&C, A) -> R + Copy + Send + Sync + 'static,
{
    let state: C = codec::decode(encoded, "state")?;
    Ok(Arc::new(Shared {
        state,
        encoded: std::sync::OnceLock::new(),
        call: conjure::<L>(),
        types: PhantomData,
    }))
}

/// A value of a zero-sized closure or function item type.
///
/// Only instantiated by `prepare_closure`, whose only instantiations come from
/// [`preparer_for`], which is handed a value of `L`: so `L` is inhabited.
#[allow(unsafe_code)]
fn conjure<L: Copy>() -> L {
    const {
        assert!(
            std::mem::size_of::<L>() == 0,
            "same-build bodies capture nothing"
        )
    };
    // SAFETY: `L` is zero-sized (asserted at compile time) and is a closure or fn item
    // type that captures nothing (it implements `Fn` and is zero-sized; on stable Rust
    // only closures and fn items implement `Fn`). Such a type has exactly one value,
    // with no bytes and no invariants, and a value of it has existed (`preparer_for`
    // was given one), so producing it from no bytes is producing that value.
    // Reading a zero-sized value through a dangling, aligned pointer reads no memory.
    unsafe { std::ptr::NonNull::<L>::dangling().as_ptr().read() }
}

/// The preparer of a same-build closure whose lifted body is `lifted`.
pub(crate) fn preparer_for<C, A, R, L>(_lifted: &L) -> PrepareFn
where
    C: Serialize + DeserializeOwned + Send + Sync + 'static,
    A: DeserializeOwned + 'static,
    R: Output,
    L: Fn(&C, A) -> R + Copy + Send + Sync + 'static,
{
    prepare_closure::<C, A, R, L>
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_executable_has_a_stable_build_id() {
        let a = this_build().unwrap();
        assert_eq!(a, this_build().unwrap());
        assert_ne!(a, BuildId([0; 16]));
        assert_eq!(build_id_of(&std::env::current_exe().unwrap()).unwrap(), a);
    }

    #[test]
    fn other_files_have_other_build_ids() {
        let shell = build_id_of(std::path::Path::new("/bin/sh"));
        if let Ok(other) = shell {
            assert_ne!(other, this_build().unwrap());
        }
        assert!(matches!(
            build_id_of(std::path::Path::new("/nonexistent/dilly")),
            Err(Error::SameBuildUnavailable { .. })
        ));
    }

    #[test]
    fn reads_the_gnu_note_of_this_test_binary() {
        let bytes = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let note = gnu_build_id(&bytes).expect("the linker writes a build-id note on Linux");
        assert!(note.len() >= 16, "{} bytes", note.len());
        assert_eq!(this_build_source(), Some(BuildIdSource::GnuNote));
        assert_eq!(this_build().unwrap().0, note[..16]);
    }

    #[test]
    fn malformed_elf_is_not_a_panic() {
        let bytes = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        for cut in [0, 3, 4, 16, 64, 100, 4096] {
            let _ = gnu_build_id(&bytes[..cut.min(bytes.len())]);
        }
        let mut garbage = bytes[..4096.min(bytes.len())].to_vec();
        for (i, b) in garbage.iter_mut().enumerate().skip(16) {
            *b = (i * 31) as u8;
        }
        let _ = gnu_build_id(&garbage);
        assert_eq!(gnu_build_id(b"not an elf file"), None);
    }

    #[test]
    fn another_build_is_refused_before_the_address_is_touched() {
        let mut other = this_build().unwrap();
        other.0[0] ^= 1;
        let err = resolve(other, 0).unwrap_err();
        assert!(matches!(err, Error::BuildMismatch { .. }), "{err}");
    }

    #[test]
    fn addresses_outside_the_code_are_refused() {
        let build = this_build().unwrap();
        for offset in [i64::MIN, -(1 << 40), 1 << 40, i64::MAX] {
            let err = resolve(build, offset).unwrap_err();
            assert!(matches!(err, Error::BadAddress { .. }), "{offset}: {err}");
        }
    }

    #[test]
    fn a_real_preparer_round_trips_through_its_offset() {
        let lifted = |c: &u64, (x,): (u64,)| x * c;
        let prepare = preparer_for::<u64, (u64,), u64, _>(&lifted);
        let back = resolve(this_build().unwrap(), offset_of(prepare)).unwrap();
        let f = back(&codec::encode_typed(&6u64, "state").unwrap()).unwrap();
        let out = f
            .call_bytes(&codec::encode_typed(&(7u64,), "args").unwrap())
            .unwrap();
        assert_eq!(codec::decode::<u64>(&out, "result").unwrap(), 42);
    }
}
