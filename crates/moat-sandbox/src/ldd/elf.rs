//! Bounded reading of the few ELF facts the dynamic loader acts on.
//!
//! Only the pieces `ld.so` itself looks at are read, each with `pread` and a size cap:
//! the ELF header, the program headers, the `PT_INTERP` string, the `PT_DYNAMIC` array
//! and the individual strings it names in the dynamic string table. Section headers and
//! symbol tables are never touched, so a huge binary costs a few kilobytes of I/O and a
//! stripped or section-less one parses like any other. The structures are decoded with
//! `goblin`; nothing here panics or allocates in proportion to a size field read from
//! the file without first checking it against the file's length and a fixed cap.

use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use goblin::container::{Container, Ctx};
use goblin::elf::dynamic::{
    Dynamic, DF_1_NODEFLIB, DT_FLAGS_1, DT_NEEDED, DT_RPATH, DT_RUNPATH, DT_SONAME, DT_STRSZ,
    DT_STRTAB,
};
use goblin::elf::header::{EI_CLASS, EI_DATA, ELFCLASS32, ELFCLASS64};
use goblin::elf::program_header::{ProgramHeader, PT_DYNAMIC, PT_INTERP, PT_LOAD};
use goblin::elf::Elf;

/// How many bytes of a file are looked at to tell ELF from `#!` from anything else.
/// Linux reads 256 bytes (`BINPRM_BUF_SIZE`) for the `#!` line, so the same is done here.
pub(crate) const PROBE_LEN: usize = 256;
/// Longest `PT_INTERP` string accepted (Linux rejects anything over `PATH_MAX`).
const MAX_INTERP_LEN: u64 = 4096;
/// Cap on the bytes of the `PT_DYNAMIC` segment read (a real one is a few hundred bytes).
const MAX_DYNAMIC_LEN: u64 = 1 << 20;
/// Longest single string read from the dynamic string table.
const MAX_STRING_LEN: u64 = 4096;
/// Cap on the program header table (65535 entries of 64 bytes is the format's maximum).
const MAX_PHDRS_LEN: u64 = 65_535 * 64;

/// Why a file could not be read as ELF.
#[derive(Debug)]
pub(crate) enum ElfError {
    /// The file could not be opened or read.
    Io(io::Error),
    /// The file is ELF but inconsistent or truncated; the text says where.
    Malformed(String),
}

impl From<io::Error> for ElfError {
    fn from(e: io::Error) -> Self {
        ElfError::Io(e)
    }
}

impl From<goblin::error::Error> for ElfError {
    fn from(e: goblin::error::Error) -> Self {
        ElfError::Malformed(e.to_string())
    }
}

fn malformed(msg: impl Into<String>) -> ElfError {
    ElfError::Malformed(msg.into())
}

/// What a file is, as far as `execve` and `ld.so` care.
#[derive(Debug)]
pub(crate) enum FileKind {
    /// An ELF object.
    Elf(ElfInfo),
    /// A `#!` script; the value is the interpreter path from its first line.
    Script(OsString),
    /// A `#!` line the kernel would refuse (empty or truncated interpreter).
    BadScript(&'static str),
    /// Neither ELF nor `#!`.
    Other,
}

/// The identity and the dynamic-linking facts of one ELF object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ElfInfo {
    /// `ELFCLASS32` or `ELFCLASS64`.
    pub class: u8,
    /// `ELFDATA2LSB` or `ELFDATA2MSB`.
    pub data: u8,
    /// `e_machine`.
    pub machine: u16,
    /// `e_type` (`ET_EXEC`, `ET_DYN`, ...).
    pub e_type: u16,
    /// `e_flags` (carries the float ABI on ARM and RISC-V).
    pub e_flags: u32,
    /// The `PT_INTERP` path, without its terminating NUL.
    pub interp: Option<OsString>,
    /// `DT_NEEDED` names in file order.
    pub needed: Vec<OsString>,
    /// `DT_RPATH`, already dropped when `DT_RUNPATH` is present (as `ld.so` does).
    pub rpath: Option<OsString>,
    /// `DT_RUNPATH`.
    pub runpath: Option<OsString>,
    /// `DT_SONAME`.
    pub soname: Option<OsString>,
    /// `DF_1_NODEFLIB`: the cache and the default directories are not searched for this
    /// object's dependencies.
    pub nodeflib: bool,
}

/// Reads the start of `path` and classifies it; for ELF files, reads the dynamic facts.
/// Only regular files are read: a FIFO or a device named as a program is an error, and
/// is opened non-blocking so that asking cannot hang.
pub(crate) fn read_file(path: &Path) -> Result<FileKind, ElfError> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(ElfError::Io(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        )));
    }
    let len = meta.len();
    let probe = read_at(&file, 0, (PROBE_LEN as u64).min(len))?;
    if probe.starts_with(b"\x7fELF") {
        return Ok(FileKind::Elf(parse(&file, len, &probe)?));
    }
    if probe.starts_with(b"#!") {
        return Ok(match parse_shebang(&probe) {
            Ok(interp) => FileKind::Script(interp),
            Err(reason) => FileKind::BadScript(reason),
        });
    }
    Ok(FileKind::Other)
}

/// The interpreter `execve` would start for `path`: its `#!` line's, or its ELF
/// `PT_INTERP`. `None` for anything else, and for a file that cannot be read.
pub(crate) fn interpreter_of(path: &Path) -> Option<PathBuf> {
    match read_file(path).ok()? {
        FileKind::Elf(info) => info.interp.map(PathBuf::from),
        FileKind::Script(interp) => Some(PathBuf::from(interp)),
        FileKind::BadScript(_) | FileKind::Other => None,
    }
}

/// Extracts the interpreter from a `#!` line the way Linux's `binfmt_script` does: skip
/// blanks, then take everything up to a blank, newline or NUL. Arguments are ignored.
/// `buf` is the first [`PROBE_LEN`] bytes of the file, starting with `#!`.
pub(crate) fn parse_shebang(buf: &[u8]) -> Result<OsString, &'static str> {
    let rest = buf.get(2..).unwrap_or_default();
    let line_end = rest.iter().position(|&b| b == b'\n');
    let line = &rest[..line_end.unwrap_or(rest.len())];
    let start = line
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .unwrap_or(line.len());
    let line = &line[start..];
    let end = line
        .iter()
        .position(|&b| b == b' ' || b == b'\t' || b == 0)
        .unwrap_or(line.len());
    let interp = &line[..end];
    if interp.is_empty() {
        return Err("no interpreter on the #! line");
    }
    // Like Linux >= 5.1: an interpreter name running into the end of the buffer may have
    // been cut, so it is refused rather than guessed.
    if line_end.is_none() && end == line.len() && buf.len() >= PROBE_LEN {
        return Err("#! interpreter path is truncated (longer than the 256-byte buffer)");
    }
    Ok(OsString::from_vec(interp.to_vec()))
}

/// Reads exactly `len` bytes at `off`; the caller has checked the range against the file.
fn read_at(file: &File, off: u64, len: u64) -> Result<Vec<u8>, ElfError> {
    let len = usize::try_from(len).map_err(|_| malformed("read length overflows usize"))?;
    let mut buf = vec![0u8; len];
    file.read_exact_at(&mut buf, off)?;
    Ok(buf)
}

/// Checks that `[off, off + len)` lies inside a file of `file_len` bytes.
fn check_range(off: u64, len: u64, file_len: u64, what: &str) -> Result<(), ElfError> {
    match off.checked_add(len) {
        Some(end) if end <= file_len => Ok(()),
        _ => Err(malformed(format!(
            "{what} (offset {off:#x}, size {len:#x}) extends past the end of the file ({file_len:#x} bytes)"
        ))),
    }
}

/// Translates a virtual address to a file offset through the `PT_LOAD` segments' file
/// images (addresses only backed by zero-fill memory have no file offset).
fn vm_to_offset(phdrs: &[ProgramHeader], addr: u64) -> Option<u64> {
    phdrs
        .iter()
        .filter(|ph| ph.p_type == PT_LOAD)
        .find_map(|ph| {
            let delta = addr.checked_sub(ph.p_vaddr)?;
            (delta < ph.p_filesz).then(|| ph.p_offset.checked_add(delta))?
        })
}

/// Parses an ELF file whose first bytes are `probe`.
fn parse(file: &File, file_len: u64, probe: &[u8]) -> Result<ElfInfo, ElfError> {
    let header = Elf::parse_header(probe)?;
    let container = header.container()?;
    let endian = header.endianness()?;
    let ctx = Ctx::new(container, endian);
    let class = match container {
        Container::Little => ELFCLASS32,
        Container::Big => ELFCLASS64,
    };
    debug_assert_eq!(header.e_ident[EI_CLASS], class);

    let mut info = ElfInfo {
        class,
        data: header.e_ident[EI_DATA],
        machine: header.e_machine,
        e_type: header.e_type,
        e_flags: header.e_flags,
        interp: None,
        needed: Vec::new(),
        rpath: None,
        runpath: None,
        soname: None,
        nodeflib: false,
    };

    // Program headers.
    let phnum = u64::from(header.e_phnum);
    if phnum == 0 {
        return Ok(info);
    }
    let phent = ProgramHeader::size(ctx) as u64;
    if u64::from(header.e_phentsize) != phent {
        return Err(malformed(format!(
            "e_phentsize is {} where {phent} was expected",
            header.e_phentsize
        )));
    }
    let ph_len = phnum * phent;
    if ph_len > MAX_PHDRS_LEN {
        return Err(malformed("program header table too large"));
    }
    check_range(header.e_phoff, ph_len, file_len, "program header table")?;
    let ph_bytes = read_at(file, header.e_phoff, ph_len)?;
    let phdrs = ProgramHeader::parse(&ph_bytes, 0, header.e_phnum as usize, ctx)?;
    // A file cut short would fault when its mapping is touched; refuse it up front.
    for ph in phdrs.iter().filter(|ph| ph.p_type == PT_LOAD) {
        check_range(ph.p_offset, ph.p_filesz, file_len, "PT_LOAD segment")?;
    }

    // PT_INTERP.
    if let Some(ph) = phdrs.iter().find(|ph| ph.p_type == PT_INTERP) {
        if ph.p_filesz == 0 || ph.p_filesz > MAX_INTERP_LEN {
            return Err(malformed(format!("PT_INTERP size {:#x}", ph.p_filesz)));
        }
        check_range(ph.p_offset, ph.p_filesz, file_len, "PT_INTERP")?;
        let mut bytes = read_at(file, ph.p_offset, ph.p_filesz)?;
        if let Some(nul) = bytes.iter().position(|&b| b == 0) {
            bytes.truncate(nul);
        }
        if bytes.is_empty() {
            return Err(malformed("empty PT_INTERP"));
        }
        info.interp = Some(OsString::from_vec(bytes));
    }

    // PT_DYNAMIC.
    let Some(dyn_ph) = phdrs.iter().find(|ph| ph.p_type == PT_DYNAMIC) else {
        return Ok(info);
    };
    let dyn_len = dyn_ph.p_filesz.min(MAX_DYNAMIC_LEN);
    check_range(dyn_ph.p_offset, dyn_len, file_len, "PT_DYNAMIC")?;
    let dyn_bytes = read_at(file, dyn_ph.p_offset, dyn_len)?;
    // goblin indexes the segment by its header, so hand it one describing our buffer.
    let mut local_ph = dyn_ph.clone();
    local_ph.p_offset = 0;
    local_ph.p_filesz = dyn_len;
    let Some(dynamic) = Dynamic::parse(&dyn_bytes, &[local_ph], ctx)? else {
        return Ok(info);
    };

    let mut strtab_addr = None;
    let mut strsz = None;
    let (mut needed, mut rpath, mut runpath, mut soname) = (Vec::new(), None, None, None);
    for d in &dynamic.dyns {
        match d.d_tag {
            DT_NEEDED => needed.push(d.d_val),
            DT_RPATH => rpath = Some(d.d_val),
            DT_RUNPATH => runpath = Some(d.d_val),
            DT_SONAME => soname = Some(d.d_val),
            DT_STRTAB => strtab_addr = Some(d.d_val),
            DT_STRSZ => strsz = Some(d.d_val),
            DT_FLAGS_1 => info.nodeflib = d.d_val & DF_1_NODEFLIB != 0,
            _ => {}
        }
    }
    if needed.is_empty() && rpath.is_none() && runpath.is_none() && soname.is_none() {
        return Ok(info);
    }
    let strtab_addr = strtab_addr.ok_or_else(|| malformed("DT_NEEDED without DT_STRTAB"))?;
    let strtab = StrTab {
        file,
        file_len,
        off: vm_to_offset(&phdrs, strtab_addr).ok_or_else(|| {
            malformed(format!(
                "DT_STRTAB address {strtab_addr:#x} is not in any PT_LOAD segment"
            ))
        })?,
        size: strsz,
    };
    for idx in needed {
        info.needed.push(strtab.get(idx)?);
    }
    if runpath.is_none() {
        info.rpath = rpath.map(|i| strtab.get(i)).transpose()?;
    }
    info.runpath = runpath.map(|i| strtab.get(i)).transpose()?;
    info.soname = soname.map(|i| strtab.get(i)).transpose()?;
    Ok(info)
}

/// The dynamic string table, read one string at a time.
struct StrTab<'a> {
    file: &'a File,
    file_len: u64,
    off: u64,
    size: Option<u64>,
}

impl StrTab<'_> {
    /// The NUL-terminated string at index `idx`.
    fn get(&self, idx: u64) -> Result<OsString, ElfError> {
        let mut avail = MAX_STRING_LEN;
        if let Some(size) = self.size {
            if idx >= size {
                return Err(malformed(format!(
                    "string index {idx:#x} outside DT_STRSZ {size:#x}"
                )));
            }
            avail = avail.min(size - idx);
        }
        let start = self
            .off
            .checked_add(idx)
            .filter(|&s| s < self.file_len)
            .ok_or_else(|| malformed(format!("string index {idx:#x} past the end of the file")))?;
        avail = avail.min(self.file_len - start);
        let bytes = read_at(self.file, start, avail)?;
        let nul = bytes
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| malformed(format!("unterminated string at index {idx:#x}")))?;
        Ok(OsString::from_vec(bytes[..nul].to_vec()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn temp_file(name: &str, bytes: &[u8]) -> std::path::PathBuf {
        let path =
            std::env::temp_dir().join(format!("moat-ldd-elf-unit-{}-{name}", std::process::id()));
        let mut f = File::create(&path).expect("create temp file");
        f.write_all(bytes).expect("write temp file");
        path
    }

    #[test]
    fn finds_interpreters() {
        let interp = interpreter_of(Path::new("/bin/ls")).unwrap();
        assert!(
            interp.to_string_lossy().contains("ld-linux"),
            "{}",
            interp.display()
        );
    }

    #[test]
    fn finds_script_interpreters() {
        let dir = std::env::temp_dir().join(format!("moat-shebang-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let script = dir.join("s");
        std::fs::write(&script, b"#! /bin/sh -e\necho hi\n").unwrap();
        assert_eq!(interpreter_of(&script), Some(PathBuf::from("/bin/sh")));
        std::fs::write(&script, b"plain text\n").unwrap();
        assert_eq!(interpreter_of(&script), None);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(interpreter_of(&script), None);
    }

    #[test]
    fn shebang_basic_and_arguments() {
        assert_eq!(parse_shebang(b"#!/bin/sh\necho hi\n").unwrap(), "/bin/sh");
        assert_eq!(parse_shebang(b"#! /bin/sh -e\n").unwrap(), "/bin/sh");
        assert_eq!(
            parse_shebang(b"#!\t/usr/bin/env python3\n").unwrap(),
            "/usr/bin/env"
        );
        assert_eq!(parse_shebang(b"#!/bin/sh").unwrap(), "/bin/sh");
        assert_eq!(parse_shebang(b"#!/bin/sh\0junk\n").unwrap(), "/bin/sh");
    }

    #[test]
    fn shebang_empty_or_truncated_is_refused() {
        assert!(parse_shebang(b"#!\n").is_err());
        assert!(parse_shebang(b"#!   \n/bin/sh").is_err());
        assert!(parse_shebang(b"#!").is_err());
        let mut long = b"#!/".to_vec();
        long.extend(std::iter::repeat_n(b'a', PROBE_LEN));
        assert!(parse_shebang(&long[..PROBE_LEN]).is_err());
        // A long interpreter followed by arguments is fine: the name itself is whole.
        let mut with_arg = b"#!/bin/sh ".to_vec();
        with_arg.extend(std::iter::repeat_n(b'x', PROBE_LEN));
        assert_eq!(parse_shebang(&with_arg[..PROBE_LEN]).unwrap(), "/bin/sh");
    }

    #[test]
    fn reads_bin_ls() {
        let Ok(FileKind::Elf(info)) = read_file(Path::new("/bin/ls")) else {
            panic!("/bin/ls is not ELF here");
        };
        assert!(info.interp.is_some());
        assert!(info.needed.iter().any(|n| n == "libc.so.6"), "{info:?}");
    }

    #[test]
    fn reads_libc_soname() {
        let path = Path::new("/lib/x86_64-linux-gnu/libc.so.6");
        if !path.exists() {
            return;
        }
        let Ok(FileKind::Elf(info)) = read_file(path) else {
            panic!("libc is not ELF");
        };
        assert_eq!(info.soname.as_deref(), Some("libc.so.6".as_ref()));
    }

    #[test]
    fn garbage_and_truncation_are_errors_not_panics() {
        let ls = std::fs::read("/bin/ls").expect("read /bin/ls");
        // Every prefix length around the interesting boundaries, plus some coarse ones.
        let mut lens: Vec<usize> = (0..128).collect();
        lens.extend((128..ls.len()).step_by(997));
        for len in lens {
            let path = temp_file("trunc", &ls[..len]);
            match read_file(&path) {
                Ok(FileKind::Other) => assert!(len < 4, "len {len}"),
                Ok(FileKind::Elf(_)) => {
                    // Only possible once the headers and the dynamic strings are present.
                    assert!(len > 64, "len {len}");
                }
                Ok(other) => panic!("unexpected {other:?}"),
                Err(_) => {}
            }
            let _ = std::fs::remove_file(&path);
        }
    }

    #[test]
    fn corrupted_headers_are_errors_not_panics() {
        let ls = std::fs::read("/bin/ls").expect("read /bin/ls");
        // Flip each byte of the ELF header and of the first program headers in turn.
        for i in 4..(64 + 56 * 4) {
            for v in [0x00u8, 0xff, 0x7f] {
                let mut bytes = ls.clone();
                bytes[i] = v;
                let path = temp_file("corrupt", &bytes);
                let _ = read_file(&path);
                let _ = std::fs::remove_file(&path);
            }
        }
    }
}
