//! A reader for glibc's `/etc/ld.so.cache`.
//!
//! Written by hand: no maintained crate parses this file (the few that exist are
//! unmaintained, run `ldconfig -p`, or only know one of the layouts), and the format is
//! small. The layout follows glibc's `sysdeps/generic/dl-cache.h`:
//!
//! * the old libc5 format: `"ld.so-1.7.0"`, a pad byte, `u32 nlibs`, then `nlibs`
//!   entries of `{i32 flags; u32 key; u32 value}`; string offsets count from the end of
//!   that entry array;
//! * the new format: `"glibc-ld.so.cache1.1"`, `u32 nlibs`, `u32 len_strings`, `u8
//!   flags` (byte order), 3 pad bytes, `u32 extension_offset`, 3 unused `u32`, then
//!   `nlibs` entries of `{i32 flags; u32 key; u32 value; u32 osversion; u64 hwcap}`;
//!   string offsets count from the start of the new header;
//! * the compatibility layout: the old format immediately followed, at the next 8-byte
//!   boundary, by the new one. The new part is used when present.
//!
//! Entries whose `hwcap` is non-zero (the `glibc-hwcaps/` subdirectory entries marked
//! with `DL_CACHE_HWCAP_EXTENSION`, and legacy hardware-capability entries) are kept in
//! [`LdCache::entries`] but never returned by [`LdCache::lookup`]: choosing among them
//! needs the CPU's ISA level. That is safe for a sandbox: when `ld.so` prefers such a
//! variant and cannot open it (Landlock answers `EACCES`), it goes on to the baseline
//! library, which is the one the lookup returns.
//!
//! Nothing here trusts a count or an offset from the file: every one is checked against
//! the buffer before use, so a corrupt cache gives an [`LdCacheError`], never a panic or
//! a huge allocation.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Largest cache file read (glibc's own caches are well under a megabyte).
pub(crate) const MAX_CACHE_LEN: u64 = 64 << 20;

const OLD_MAGIC: &[u8] = b"ld.so-1.7.0";
const NEW_MAGIC: &[u8] = b"glibc-ld.so.cache1.1";
/// Size of the old header: magic, one pad byte, `nlibs`.
const OLD_HEADER_LEN: usize = 16;
const OLD_ENTRY_LEN: usize = 12;
/// Size of the new header up to its first entry.
const NEW_HEADER_LEN: usize = 48;
const NEW_ENTRY_LEN: usize = 24;

/// Entry flag: any entry matches (for [`LdCache::lookup`]).
pub const FLAG_ANY: i32 = -1;
/// Entry flag: an ELF library of unspecified libc.
pub const FLAG_ELF: i32 = 0x0001;
/// Entry flag: an ELF library linked against glibc (libc6).
pub const FLAG_ELF_LIBC6: i32 = 0x0003;
/// Entry flag bits: 64-bit SPARC.
pub const FLAG_SPARC_LIB64: i32 = 0x0100;
/// Entry flag bits: x86-64.
pub const FLAG_X8664_LIB64: i32 = 0x0300;
/// Entry flag bits: 64-bit s390.
pub const FLAG_S390_LIB64: i32 = 0x0400;
/// Entry flag bits: 64-bit PowerPC.
pub const FLAG_POWERPC_LIB64: i32 = 0x0500;
/// Entry flag bits: x32 (x86-64 with 32-bit pointers).
pub const FLAG_X8664_LIBX32: i32 = 0x0800;
/// Entry flag bits: ARM hard-float.
pub const FLAG_ARM_LIBHF: i32 = 0x0900;
/// Entry flag bits: AArch64.
pub const FLAG_AARCH64_LIB64: i32 = 0x0a00;
/// Entry flag bits: ARM soft-float.
pub const FLAG_ARM_LIBSF: i32 = 0x0b00;
/// Entry flag bits: RISC-V soft-float ABI.
pub const FLAG_RISCV_FLOAT_ABI_SOFT: i32 = 0x0f00;
/// Entry flag bits: RISC-V double-float ABI.
pub const FLAG_RISCV_FLOAT_ABI_DOUBLE: i32 = 0x1000;
/// Entry flag bits: LoongArch double-float ABI.
pub const FLAG_LARCH_FLOAT_ABI_DOUBLE: i32 = 0x1200;

/// Why a cache file could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LdCacheError {
    /// The file starts with neither known magic string.
    #[error("not an ld.so cache (unknown magic)")]
    BadMagic,
    /// The file ends before a header or an entry table that it announces.
    #[error("ld.so cache truncated: {0}")]
    Truncated(&'static str),
    /// The new-format header names a byte order that is not valid.
    #[error("ld.so cache has an invalid byte-order flag {0}")]
    BadEndian(u8),
    /// An entry's key or value does not point at a NUL-terminated string in the file.
    #[error("ld.so cache entry {index} has an invalid string offset {offset:#x}")]
    BadString {
        /// Index of the entry in its table.
        index: usize,
        /// The offending offset, as stored.
        offset: u32,
    },
    /// The file is larger than [`MAX_CACHE_LEN`].
    #[error("ld.so cache is larger than {MAX_CACHE_LEN} bytes")]
    TooLarge,
}

/// One library entry of the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheEntry {
    /// Kind and architecture of the library (`FLAG_ELF_LIBC6 | FLAG_X8664_LIB64`, ...).
    pub flags: i32,
    /// The soname the entry is found by.
    pub soname: OsString,
    /// Where the library is.
    pub path: PathBuf,
    /// Hardware capabilities the entry needs; zero for a baseline library.
    pub hwcap: u64,
}

/// A parsed `ld.so.cache`: its library entries in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LdCache {
    entries: Vec<CacheEntry>,
}

/// Byte order of the numbers in a cache file.
#[derive(Clone, Copy)]
enum Endian {
    /// Little-endian.
    Little,
    /// Big-endian.
    Big,
}

/// Bounds-checked little/big-endian reads from a byte slice.
struct Reader<'a> {
    bytes: &'a [u8],
    endian: Endian,
}

impl Reader<'_> {
    /// The `u32` at `off`, if the slice holds it.
    fn u32(&self, off: usize) -> Option<u32> {
        let b: [u8; 4] = self.bytes.get(off..off.checked_add(4)?)?.try_into().ok()?;
        Some(match self.endian {
            Endian::Little => u32::from_le_bytes(b),
            Endian::Big => u32::from_be_bytes(b),
        })
    }

    /// The `u64` at `off`, if the slice holds it.
    fn u64(&self, off: usize) -> Option<u64> {
        let b: [u8; 8] = self.bytes.get(off..off.checked_add(8)?)?.try_into().ok()?;
        Some(match self.endian {
            Endian::Little => u64::from_le_bytes(b),
            Endian::Big => u64::from_be_bytes(b),
        })
    }

    /// The NUL-terminated string at `base + offset`.
    fn cstr(&self, base: usize, offset: u32, index: usize) -> Result<&[u8], LdCacheError> {
        let bad = LdCacheError::BadString { index, offset };
        let start = usize::try_from(offset)
            .ok()
            .and_then(|o| base.checked_add(o))
            .ok_or(bad.clone())?;
        let tail = self.bytes.get(start..).ok_or(bad.clone())?;
        let nul = tail.iter().position(|&b| b == 0).ok_or(bad)?;
        Ok(&tail[..nul])
    }
}

/// The byte order of this machine (the old format and an unset flag use it).
fn native_endian() -> Endian {
    if cfg!(target_endian = "big") {
        Endian::Big
    } else {
        Endian::Little
    }
}

impl LdCache {
    /// Reads and parses the cache at `path` (at most [`MAX_CACHE_LEN`] bytes).
    pub fn read(path: &Path) -> Result<Self, ReadError> {
        use std::io::Read;
        let file = std::fs::File::open(path).map_err(ReadError::Io)?;
        let mut bytes = Vec::new();
        file.take(MAX_CACHE_LEN + 1)
            .read_to_end(&mut bytes)
            .map_err(ReadError::Io)?;
        if bytes.len() as u64 > MAX_CACHE_LEN {
            return Err(ReadError::Parse(LdCacheError::TooLarge));
        }
        Self::parse(&bytes).map_err(ReadError::Parse)
    }

    /// Parses the bytes of a cache file in any of the three layouts (see the module doc).
    pub fn parse(bytes: &[u8]) -> Result<Self, LdCacheError> {
        if bytes.len() as u64 > MAX_CACHE_LEN {
            return Err(LdCacheError::TooLarge);
        }
        if bytes.starts_with(NEW_MAGIC) {
            return Self::parse_new(bytes, 0);
        }
        if !bytes.starts_with(OLD_MAGIC) {
            return Err(LdCacheError::BadMagic);
        }
        let old = Reader {
            bytes,
            endian: native_endian(),
        };
        let nlibs = old
            .u32(OLD_MAGIC.len() + 1)
            .ok_or(LdCacheError::Truncated("old header"))?;
        let old_end = usize::try_from(nlibs)
            .ok()
            .and_then(|n| n.checked_mul(OLD_ENTRY_LEN))
            .and_then(|n| n.checked_add(OLD_HEADER_LEN))
            .filter(|&end| end <= bytes.len())
            .ok_or(LdCacheError::Truncated("old entry table"))?;
        // The new format follows at the next 8-byte boundary, if it is there.
        let new_start = old_end.div_ceil(8) * 8;
        if bytes
            .get(new_start..)
            .is_some_and(|rest| rest.starts_with(NEW_MAGIC))
        {
            return Self::parse_new(bytes, new_start);
        }
        let mut entries = Vec::with_capacity(nlibs as usize);
        for index in 0..nlibs as usize {
            let at = OLD_HEADER_LEN + index * OLD_ENTRY_LEN;
            let (Some(flags), Some(key), Some(value)) =
                (old.u32(at), old.u32(at + 4), old.u32(at + 8))
            else {
                return Err(LdCacheError::Truncated("old entry table"));
            };
            entries.push(CacheEntry {
                flags: flags as i32,
                soname: os(old.cstr(old_end, key, index)?),
                path: PathBuf::from(os(old.cstr(old_end, value, index)?)),
                hwcap: 0,
            });
        }
        Ok(LdCache { entries })
    }

    /// Parses the new format whose header starts at `base`.
    fn parse_new(bytes: &[u8], base: usize) -> Result<Self, LdCacheError> {
        let endian = match bytes.get(base + 28) {
            None => return Err(LdCacheError::Truncated("new header")),
            Some(0) => native_endian(),
            Some(2) => Endian::Little,
            Some(3) => Endian::Big,
            Some(&other) => return Err(LdCacheError::BadEndian(other)),
        };
        let r = Reader { bytes, endian };
        let nlibs = r
            .u32(base + 20)
            .ok_or(LdCacheError::Truncated("new header"))?;
        let table = base + NEW_HEADER_LEN;
        usize::try_from(nlibs)
            .ok()
            .and_then(|n| n.checked_mul(NEW_ENTRY_LEN))
            .and_then(|n| n.checked_add(table))
            .filter(|&end| end <= bytes.len())
            .ok_or(LdCacheError::Truncated("new entry table"))?;
        let mut entries = Vec::with_capacity(nlibs as usize);
        for index in 0..nlibs as usize {
            let at = table + index * NEW_ENTRY_LEN;
            let (Some(flags), Some(key), Some(value), Some(hwcap)) =
                (r.u32(at), r.u32(at + 4), r.u32(at + 8), r.u64(at + 16))
            else {
                return Err(LdCacheError::Truncated("new entry table"));
            };
            entries.push(CacheEntry {
                flags: flags as i32,
                soname: os(r.cstr(base, key, index)?),
                path: PathBuf::from(os(r.cstr(base, value, index)?)),
                hwcap,
            });
        }
        Ok(LdCache { entries })
    }

    /// All entries, in file order (glibc writes them sorted by soname, newest first).
    #[cfg(test)]
    pub fn entries(&self) -> &[CacheEntry] {
        &self.entries
    }

    /// The path of the first baseline (`hwcap == 0`) entry for `soname` whose flags are
    /// exactly `flags`, or any flags when `flags` is [`FLAG_ANY`].
    pub fn lookup<S: AsRef<OsStr>>(&self, soname: S, flags: i32) -> Option<&Path> {
        let soname = soname.as_ref();
        self.entries
            .iter()
            .find(|e| e.hwcap == 0 && (flags == FLAG_ANY || e.flags == flags) && e.soname == soname)
            .map(|e| e.path.as_path())
    }

    /// The cache flags glibc's `ld.so` looks for (`_DL_CACHE_DEFAULT_ID`) for an ELF
    /// object of this class (`ELFCLASS32`/`ELFCLASS64`), machine and `e_flags`, or `None`
    /// for an architecture this table does not know.
    pub fn flags_for(class: u8, machine: u16, e_flags: u32) -> Option<i32> {
        use goblin::elf::header::{
            ELFCLASS32, ELFCLASS64, EM_386, EM_AARCH64, EM_ARM, EM_LOONGARCH, EM_PPC, EM_PPC64,
            EM_RISCV, EM_S390, EM_SPARCV9, EM_X86_64,
        };
        const EF_ARM_ABI_FLOAT_HARD: u32 = 0x400;
        const EF_RISCV_FLOAT_ABI: u32 = 0x6;
        const EF_RISCV_FLOAT_ABI_DOUBLE: u32 = 0x4;
        const EF_RISCV_FLOAT_ABI_SOFT: u32 = 0x0;
        let arch = match (class, machine) {
            (ELFCLASS64, EM_X86_64) => FLAG_X8664_LIB64,
            (ELFCLASS32, EM_X86_64) => FLAG_X8664_LIBX32,
            (ELFCLASS32, EM_386) | (ELFCLASS32, EM_PPC) => 0,
            (ELFCLASS64, EM_AARCH64) => FLAG_AARCH64_LIB64,
            (ELFCLASS32, EM_ARM) if e_flags & EF_ARM_ABI_FLOAT_HARD != 0 => FLAG_ARM_LIBHF,
            (ELFCLASS32, EM_ARM) => FLAG_ARM_LIBSF,
            (ELFCLASS64, EM_PPC64) => FLAG_POWERPC_LIB64,
            (ELFCLASS64, EM_S390) => FLAG_S390_LIB64,
            (ELFCLASS64, EM_SPARCV9) => FLAG_SPARC_LIB64,
            (ELFCLASS64, EM_RISCV) => match e_flags & EF_RISCV_FLOAT_ABI {
                EF_RISCV_FLOAT_ABI_DOUBLE => FLAG_RISCV_FLOAT_ABI_DOUBLE,
                EF_RISCV_FLOAT_ABI_SOFT => FLAG_RISCV_FLOAT_ABI_SOFT,
                _ => return None,
            },
            (ELFCLASS64, EM_LOONGARCH) => FLAG_LARCH_FLOAT_ABI_DOUBLE,
            _ => return None,
        };
        Some(arch | FLAG_ELF_LIBC6)
    }
}

/// Why [`LdCache::read`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// The file could not be opened or read.
    #[error("reading the ld.so cache: {0}")]
    Io(#[source] std::io::Error),
    /// The file is not a valid cache.
    #[error(transparent)]
    Parse(LdCacheError),
}

/// Bytes from the file as an `OsString` (paths need not be UTF-8).
fn os(bytes: &[u8]) -> OsString {
    OsStr::from_bytes(bytes).to_os_string()
}

/// Builds cache files for tests (kept public to the crate's own tests only).
#[cfg(test)]
pub(crate) mod build {
    use super::*;

    /// `(flags, soname, path, hwcap)`.
    pub type Spec<'a> = (i32, &'a str, &'a str, u64);

    /// Strings are appended after `header_and_entries` bytes; offsets relative to `base`.
    fn strings(specs: &[Spec<'_>], first: usize) -> (Vec<u8>, Vec<(u32, u32)>) {
        let mut table = Vec::new();
        let mut offs = Vec::new();
        for (_, soname, path, _) in specs {
            let k = first + table.len();
            table.extend_from_slice(soname.as_bytes());
            table.push(0);
            let v = first + table.len();
            table.extend_from_slice(path.as_bytes());
            table.push(0);
            offs.push((k as u32, v as u32));
        }
        (table, offs)
    }

    /// Caches the reader must refuse: empty, foreign, truncated headers, and this
    /// machine's own cache with a huge count, bogus string offsets or cut in half.
    pub fn corrupt() -> Vec<Vec<u8>> {
        let real = std::fs::read("/etc/ld.so.cache").unwrap_or_default();
        let mut cases: Vec<Vec<u8>> = vec![
            Vec::new(),
            b"garbage".to_vec(),
            b"glibc-ld.so.cache1.1".to_vec(),
            b"ld.so-1.7.0\0\xff\xff\xff\xff".to_vec(),
        ];
        if real.len() > 64 {
            let mut huge = real.clone();
            huge[20..24].copy_from_slice(&u32::MAX.to_le_bytes());
            cases.push(huge);
            let mut bogus = real.clone();
            for off in (48 + 4..real.len().min(48 + 24 * 50)).step_by(24) {
                bogus[off..off + 4].copy_from_slice(&0xfff0_0000u32.to_le_bytes());
            }
            cases.push(bogus);
            cases.push(real[..real.len() / 2].to_vec());
        }
        cases
    }

    /// A standalone new-format cache, little-endian.
    pub fn new_format(specs: &[Spec<'_>]) -> Vec<u8> {
        let entries_len = specs.len() * NEW_ENTRY_LEN;
        let (table, offs) = strings(specs, NEW_HEADER_LEN + entries_len);
        let mut out = Vec::new();
        out.extend_from_slice(NEW_MAGIC);
        out.extend_from_slice(&(specs.len() as u32).to_le_bytes());
        out.extend_from_slice(&(table.len() as u32).to_le_bytes());
        out.extend_from_slice(&[2, 0, 0, 0]);
        out.extend_from_slice(&[0; 16]);
        for ((flags, _, _, hwcap), (k, v)) in specs.iter().zip(&offs) {
            out.extend_from_slice(&flags.to_le_bytes());
            out.extend_from_slice(&k.to_le_bytes());
            out.extend_from_slice(&v.to_le_bytes());
            out.extend_from_slice(&0u32.to_le_bytes());
            out.extend_from_slice(&hwcap.to_le_bytes());
        }
        out.extend_from_slice(&table);
        out
    }

    /// An old-format cache (native endian), optionally followed by a new-format part.
    pub fn old_format(old: &[Spec<'_>], new: Option<&[Spec<'_>]>) -> Vec<u8> {
        let (table, offs) = strings(old, 0);
        let mut out = Vec::new();
        out.extend_from_slice(OLD_MAGIC);
        out.push(0);
        out.extend_from_slice(&(old.len() as u32).to_ne_bytes());
        for ((flags, _, _, _), (k, v)) in old.iter().zip(&offs) {
            out.extend_from_slice(&flags.to_ne_bytes());
            out.extend_from_slice(&k.to_ne_bytes());
            out.extend_from_slice(&v.to_ne_bytes());
        }
        match new {
            Some(new) => {
                // Old strings would follow the new part in glibc's layout; these tests
                // only need the new part to be found, so the old strings are dropped.
                while out.len() % 8 != 0 {
                    out.push(0);
                }
                out.extend_from_slice(&new_format(new));
            }
            None => out.extend_from_slice(&table),
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::build::*;
    use super::*;

    const X64: i32 = FLAG_ELF_LIBC6 | FLAG_X8664_LIB64;

    fn sample() -> Vec<Spec<'static>> {
        vec![
            (
                X64,
                "libfoo.so.1",
                "/usr/lib/x86_64-linux-gnu/glibc-hwcaps/x86-64-v3/libfoo.so.1",
                1 << 62,
            ),
            (X64, "libfoo.so.1", "/lib/x86_64-linux-gnu/libfoo.so.1", 0),
            (
                FLAG_ELF_LIBC6,
                "libfoo.so.1",
                "/lib/i386-linux-gnu/libfoo.so.1",
                0,
            ),
            (
                FLAG_ELF_LIBC6 | FLAG_AARCH64_LIB64,
                "libbar.so",
                "/lib/aarch64-linux-gnu/libbar.so",
                0,
            ),
        ]
    }

    fn check_sample(cache: &LdCache) {
        assert_eq!(cache.entries().len(), 4);
        assert_eq!(
            cache.lookup("libfoo.so.1", X64),
            Some(Path::new("/lib/x86_64-linux-gnu/libfoo.so.1"))
        );
        assert_eq!(
            cache.lookup("libfoo.so.1", 0x0003),
            Some(Path::new("/lib/i386-linux-gnu/libfoo.so.1"))
        );
        assert_eq!(cache.lookup("libbar.so", X64), None);
        assert_eq!(
            cache.lookup("libbar.so", 0x0a03),
            Some(Path::new("/lib/aarch64-linux-gnu/libbar.so"))
        );
        assert_eq!(
            cache.lookup(OsStr::new("libbar.so"), FLAG_ANY),
            Some(Path::new("/lib/aarch64-linux-gnu/libbar.so"))
        );
        assert_eq!(cache.lookup("libnope.so", FLAG_ANY), None);
        // The hwcaps entry is kept but never chosen.
        assert_eq!(cache.entries()[0].hwcap, 1 << 62);
    }

    #[test]
    fn new_format_standalone() {
        check_sample(&LdCache::parse(&new_format(&sample())).unwrap());
    }

    #[test]
    fn new_format_embedded_after_old() {
        let old = [(FLAG_ELF_LIBC6, "libold.so", "/old/libold.so", 0)];
        let bytes = old_format(&old, Some(&sample()));
        let cache = LdCache::parse(&bytes).unwrap();
        check_sample(&cache);
        assert_eq!(cache.lookup("libold.so", FLAG_ANY), None);
    }

    #[test]
    fn old_format_only() {
        let old = [
            (FLAG_ELF_LIBC6, "libold.so", "/old/libold.so", 0),
            (X64, "libold64.so", "/old64/libold64.so", 0),
        ];
        let cache = LdCache::parse(&old_format(&old, None)).unwrap();
        assert_eq!(
            cache.lookup("libold64.so", X64),
            Some(Path::new("/old64/libold64.so"))
        );
        assert_eq!(
            cache.lookup("libold.so", FLAG_ELF_LIBC6),
            Some(Path::new("/old/libold.so"))
        );
    }

    #[test]
    fn big_endian_new_format() {
        let mut bytes = new_format(&sample());
        bytes[28] = 3;
        // Swap every u32 of the header and the entries, and the u64 hwcap.
        for at in [20usize, 24, 32] {
            bytes[at..at + 4].reverse();
        }
        for i in 0..sample().len() {
            let e = NEW_HEADER_LEN + i * NEW_ENTRY_LEN;
            for at in [e, e + 4, e + 8, e + 12] {
                bytes[at..at + 4].reverse();
            }
            bytes[e + 16..e + 24].reverse();
        }
        check_sample(&LdCache::parse(&bytes).unwrap());
    }

    #[test]
    fn malformed_inputs_are_errors() {
        assert_eq!(LdCache::parse(b""), Err(LdCacheError::BadMagic));
        assert_eq!(
            LdCache::parse(b"garbage garbage"),
            Err(LdCacheError::BadMagic)
        );
        assert!(matches!(
            LdCache::parse(NEW_MAGIC),
            Err(LdCacheError::Truncated(_))
        ));
        assert!(matches!(
            LdCache::parse(OLD_MAGIC),
            Err(LdCacheError::Truncated(_))
        ));

        let good = new_format(&sample());
        // Every truncation of a valid file.
        for len in 0..good.len() {
            assert!(LdCache::parse(&good[..len]).is_err(), "len {len}");
        }
        // Huge entry count.
        let mut huge = good.clone();
        huge[20..24].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            LdCache::parse(&huge),
            Err(LdCacheError::Truncated(_))
        ));
        // Bogus string offsets.
        for off in [u32::MAX, good.len() as u32, 0x7fff_ffff] {
            let mut bogus = good.clone();
            bogus[NEW_HEADER_LEN + 4..NEW_HEADER_LEN + 8].copy_from_slice(&off.to_le_bytes());
            assert!(matches!(
                LdCache::parse(&bogus),
                Err(LdCacheError::BadString { index: 0, .. })
            ));
        }
        // Invalid byte-order flag.
        let mut endian = good.clone();
        endian[28] = 1;
        assert_eq!(LdCache::parse(&endian), Err(LdCacheError::BadEndian(1)));
        // Old format with a huge count.
        let mut old = old_format(&[(1, "a", "/a", 0)], None);
        old[12..16].copy_from_slice(&u32::MAX.to_ne_bytes());
        assert!(LdCache::parse(&old).is_err());
        // Every truncation of an old+new file.
        let compat = old_format(&[(1, "a", "/a", 0)], Some(&sample()));
        for len in 0..compat.len() {
            let _ = LdCache::parse(&compat[..len]);
        }
    }

    #[test]
    fn fuzzed_bytes_never_panic() {
        // A small deterministic xorshift fuzz over a valid file.
        let good = new_format(&sample());
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..20_000 {
            let mut bytes = good.clone();
            for _ in 0..4 {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let i = (state % bytes.len() as u64) as usize;
                bytes[i] = (state >> 32) as u8;
            }
            let _ = LdCache::parse(&bytes);
        }
    }

    #[test]
    fn flags_for_known_architectures() {
        use goblin::elf::header::{ELFCLASS32, ELFCLASS64, EM_386, EM_AARCH64, EM_X86_64};
        assert_eq!(LdCache::flags_for(ELFCLASS64, EM_X86_64, 0), Some(0x0303));
        assert_eq!(LdCache::flags_for(ELFCLASS32, EM_386, 0), Some(0x0003));
        assert_eq!(LdCache::flags_for(ELFCLASS64, EM_AARCH64, 0), Some(0x0a03));
        assert_eq!(LdCache::flags_for(ELFCLASS32, EM_X86_64, 0), Some(0x0803));
        assert_eq!(LdCache::flags_for(ELFCLASS64, 0x1234, 0), None);
    }

    #[test]
    fn real_system_cache() {
        let path = Path::new("/etc/ld.so.cache");
        if !path.exists() {
            return;
        }
        let cache = LdCache::read(path).expect("the system cache parses");
        assert!(!cache.entries().is_empty());
        if cfg!(all(target_arch = "x86_64", target_os = "linux")) {
            let libc = cache
                .lookup("libc.so.6", X64)
                .expect("libc.so.6 in the cache");
            assert!(libc.is_absolute());
            assert!(libc.exists(), "{}", libc.display());
        }
    }
}
