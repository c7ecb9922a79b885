//! ELF dependency discovery for `moat run --ldd`.
//!
//! [`dependencies`] finds what a program needs to start — its ELF interpreter (`ld.so`),
//! the interpreter of a `#!` script, and every shared library the dynamic loader would
//! map — **without running anything**: no `ldd`, no `ldconfig`, no `ld.so --list`. Files
//! are only opened and read, with bounded sizes (see the `elf` module and
//! `ldcache::MAX_CACHE_LEN`).
//!
//! The search mirrors glibc's `ld.so` (`elf/dl-load.c`), for each `DT_NEEDED` name of
//! each object, breadth first from the program:
//!
//! 1. a name containing `/` is a path (relative to the working directory), with `$ORIGIN`,
//!    `$LIB` and `$PLATFORM` expanded;
//! 2. a name already loaded (as a requested name or a `DT_SONAME`) is reused;
//! 3. `DT_RPATH` of the requesting object, then of the object that loaded it, and so on
//!    up to the program — only when the requesting object has no `DT_RUNPATH`;
//! 4. `LD_LIBRARY_PATH` ([`LddOptions::library_path`]);
//! 5. `DT_RUNPATH` of the requesting object;
//! 6. `/etc/ld.so.cache` ([`LddOptions::cache_path`]), entries for the program's
//!    architecture only;
//! 7. the default directories: `/lib/<multiarch>`, `/usr/lib/<multiarch>`, then
//!    `/lib64`, `/usr/lib64` (64-bit only), `/lib`, `/usr/lib`.
//!
//! Steps 6 and 7 are skipped for an object marked `DF_1_NODEFLIB`. A candidate is only
//! accepted when it is an ELF shared object of the program's class, byte order and
//! machine; otherwise the search goes on, as `ld.so` does for a library of another
//! class or machine. (A candidate that is not ELF at all, or is truncated, is skipped
//! too, where `ld.so` would stop with "file too short" or "invalid ELF header".)
//!
//! Known, deliberate simplifications (each errs on the side of a working sandbox):
//! the `glibc-hwcaps/` and legacy hardware-capability subdirectories are not searched
//! and hwcap cache entries are not chosen — `ld.so` falls back to the baseline library
//! when it cannot open a variant; `$LIB` expands to each of `lib/<multiarch>`, `lib64`
//! (64-bit) and `lib`, since it is a build-time choice of the libc; `$PLATFORM` is
//! derived from the machine (`x86_64`, `i686`, `aarch64`, ...) rather than `AT_PLATFORM`;
//! secure-execution (setuid) restrictions are not applied; `binfmt_misc` handlers are
//! not known; for `#!/usr/bin/env NAME` only `env` is reported, as `NAME` is found on
//! `PATH` at run time.

mod ldcache;

mod elf;

use std::collections::{HashSet, VecDeque};
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Component, Path, PathBuf};

use goblin::elf::header::{
    ELFCLASS64, EM_386, EM_AARCH64, EM_ARM, EM_LOONGARCH, EM_PPC, EM_PPC64, EM_RISCV, EM_S390,
    EM_X86_64, ET_DYN, ET_EXEC,
};

pub(crate) use elf::interpreter_of;
use elf::{ElfError, ElfInfo, FileKind};
use ldcache::LdCache;

/// Most shared objects (program, interpreter and libraries) followed for one program.
pub(crate) const MAX_OBJECTS: usize = 4096;
/// Most `#!` interpreters followed in a chain (Linux allows a handful of levels).
pub(crate) const MAX_SCRIPT_DEPTH: usize = 4;
/// Most symbolic links followed while resolving one path inside [`LddOptions::root`].
const MAX_SYMLINKS: usize = 40;
/// Most variants one search-path element can expand to (through `$LIB`).
const MAX_EXPANSIONS: usize = 16;

/// What a program needs from the file system to start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dependencies {
    /// The program itself, canonicalised.
    pub program: PathBuf,
    /// Files the kernel executes on the program's behalf, in the order it does: the
    /// interpreters of a `#!` chain, then the `PT_INTERP` (`ld.so`) of the ELF file that
    /// is finally run. Canonical paths; they need execute access.
    pub interpreters: Vec<PathBuf>,
    /// Shared libraries `ld.so` maps, breadth first, canonical, each once. They need
    /// read access only.
    pub libraries: Vec<PathBuf>,
    /// `DT_NEEDED` names that could not be resolved (the program would fail to start
    /// unless they are provided some other way). Each listed once.
    pub unresolved: Vec<String>,
}

/// Inputs to the search besides the program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LddOptions {
    /// The `LD_LIBRARY_PATH` the program will run with, split on `:` (an empty element
    /// means the working directory, as for `ld.so`). Not read from the environment here:
    /// the caller decides what the sandboxed program will see.
    pub library_path: Vec<PathBuf>,
    /// The loader cache; `/etc/ld.so.cache` by default. Taken inside [`Self::root`] when
    /// that is set. A missing or corrupt cache is skipped, as `ld.so` does.
    pub cache_path: PathBuf,
    /// An optional system root: every absolute path (the program, interpreters,
    /// search directories, cache entries, symlink targets) is taken inside it, and
    /// relative ones are relative to it. `None` means the real `/`.
    pub root: Option<PathBuf>,
}

impl Default for LddOptions {
    /// No `LD_LIBRARY_PATH`, `/etc/ld.so.cache`, no root.
    fn default() -> Self {
        LddOptions {
            library_path: Vec::new(),
            cache_path: PathBuf::from("/etc/ld.so.cache"),
            root: None,
        }
    }
}

/// Why the dependencies of a program could not be determined.
///
/// Only problems with the program and its interpreters are errors; a library candidate
/// that is unreadable or malformed is skipped (as `ld.so` skips it) and, if nothing else
/// fits, its name ends up in [`Dependencies::unresolved`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LddError {
    /// A file could not be found, opened or read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A file is neither ELF nor a `#!` script, so it cannot be executed.
    #[error("{}: not an ELF executable or a #! script", path.display())]
    UnknownFormat {
        /// The file.
        path: PathBuf,
    },
    /// An ELF file is truncated or inconsistent.
    #[error("{}: malformed ELF: {reason}", path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// An ELF file is not an executable (it is relocatable, a core dump, ...).
    #[error("{}: ELF type {e_type} is not executable", path.display())]
    NotExecutable {
        /// The file.
        path: PathBuf,
        /// Its `e_type`.
        e_type: u16,
    },
    /// A `#!` line the kernel would refuse.
    #[error("{}: {reason}", path.display())]
    BadScript {
        /// The script.
        path: PathBuf,
        /// What is wrong with its first line.
        reason: &'static str,
    },
    /// A `#!` chain longer than `MAX_SCRIPT_DEPTH`.
    #[error("{}: more than {MAX_SCRIPT_DEPTH} nested #! interpreters", path.display())]
    ScriptTooDeep {
        /// The interpreter at which the limit was hit.
        path: PathBuf,
    },
    /// More than `MAX_OBJECTS` shared objects.
    #[error("more than {MAX_OBJECTS} shared objects")]
    TooManyObjects,
}

impl LddError {
    /// Attaches `path` to an error from the ELF reader.
    fn from_elf(path: &Path, e: ElfError) -> Self {
        match e {
            ElfError::Io(source) => LddError::Io {
                path: path.to_owned(),
                source,
            },
            ElfError::Malformed(reason) => LddError::Malformed {
                path: path.to_owned(),
                reason,
            },
        }
    }
}

/// Turns an I/O error about `path` into an [`LddError::Io`].
fn io_error(path: &Path) -> impl FnOnce(io::Error) -> LddError + '_ {
    move |source| LddError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Finds the interpreters and shared libraries `program` needs, without executing it.
///
/// `program` is a path (relative to the working directory, or to [`LddOptions::root`]);
/// it is not looked up on `PATH`. A `#!` script's interpreter chain is followed to the
/// ELF file that finally runs. A statically linked program has no interpreter and no
/// libraries.
pub fn dependencies(program: &Path, opts: &LddOptions) -> Result<Dependencies, LddError> {
    let fs = Fs {
        root: opts.root.as_deref(),
    };
    let (mut logical, mut host) = fs.canonicalize(program).map_err(io_error(program))?;
    let mut deps = Dependencies {
        program: host.clone(),
        ..Dependencies::default()
    };

    // Follow the #! chain to an ELF file.
    let mut depth = 0;
    let info = loop {
        match elf::read_file(&host).map_err(|e| LddError::from_elf(&host, e))? {
            FileKind::Elf(info) => break info,
            FileKind::Script(interp) => {
                depth += 1;
                if depth > MAX_SCRIPT_DEPTH {
                    return Err(LddError::ScriptTooDeep { path: host });
                }
                let interp = PathBuf::from(interp);
                (logical, host) = fs.canonicalize(&interp).map_err(io_error(&interp))?;
                push_unique(&mut deps.interpreters, host.clone());
            }
            FileKind::BadScript(reason) => return Err(LddError::BadScript { path: host, reason }),
            FileKind::Other => return Err(LddError::UnknownFormat { path: host }),
        }
    };
    if info.e_type != ET_EXEC && info.e_type != ET_DYN {
        return Err(LddError::NotExecutable {
            path: host,
            e_type: info.e_type,
        });
    }

    let mut walk = Walk {
        fs,
        opts,
        target: Target::of(&info),
        cache: None,
        nodes: Vec::new(),
        paths: HashSet::new(),
        names: HashSet::new(),
        deps,
    };
    walk.paths.insert(host.clone());

    // The kernel maps PT_INTERP; ld.so then answers to its own names.
    if let Some(interp) = &info.interp {
        let interp = PathBuf::from(interp);
        let (_, interp_host) = fs.canonicalize(&interp).map_err(io_error(&interp))?;
        match elf::read_file(&interp_host).map_err(|e| LddError::from_elf(&interp_host, e))? {
            FileKind::Elf(ld) => {
                if let Some(soname) = ld.soname {
                    walk.names.insert(soname);
                }
            }
            _ => return Err(LddError::UnknownFormat { path: interp_host }),
        }
        walk.names.insert(interp.into_os_string());
        walk.paths.insert(interp_host.clone());
        push_unique(&mut walk.deps.interpreters, interp_host);
    }

    walk.run(&logical, info)?;
    Ok(walk.deps)
}

/// Appends `item` unless it is already in `v` (the lists are short).
fn push_unique<T: PartialEq>(v: &mut Vec<T>, item: T) {
    if !v.contains(&item) {
        v.push(item);
    }
}

/// The ELF identity every library must share with the program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Target {
    class: u8,
    data: u8,
    machine: u16,
    e_flags: u32,
}

impl Target {
    /// The identity of `info`.
    fn of(info: &ElfInfo) -> Self {
        Target {
            class: info.class,
            data: info.data,
            machine: info.machine,
            e_flags: info.e_flags,
        }
    }

    /// Whether `info` is a shared object `ld.so` would accept for this program.
    fn accepts(&self, info: &ElfInfo) -> bool {
        info.class == self.class
            && info.data == self.data
            && info.machine == self.machine
            && info.e_type == ET_DYN
    }

    /// The Debian/Ubuntu multiarch tuple, when known.
    fn multiarch(&self) -> Option<&'static str> {
        let is64 = self.class == ELFCLASS64;
        Some(match (self.machine, is64) {
            (EM_X86_64, true) => "x86_64-linux-gnu",
            (EM_X86_64, false) => "x86_64-linux-gnux32",
            (EM_386, false) => "i386-linux-gnu",
            (EM_AARCH64, true) => "aarch64-linux-gnu",
            (EM_ARM, false) if self.e_flags & 0x400 != 0 => "arm-linux-gnueabihf",
            (EM_ARM, false) => "arm-linux-gnueabi",
            (EM_RISCV, true) => "riscv64-linux-gnu",
            (EM_PPC64, true) if self.data == goblin::elf::header::ELFDATA2LSB => {
                "powerpc64le-linux-gnu"
            }
            (EM_PPC64, true) => "powerpc64-linux-gnu",
            (EM_PPC, false) => "powerpc-linux-gnu",
            (EM_S390, true) => "s390x-linux-gnu",
            (EM_LOONGARCH, true) => "loongarch64-linux-gnu",
            _ => return None,
        })
    }

    /// The value of `$PLATFORM`, when known.
    fn platform(&self) -> Option<&'static str> {
        let is64 = self.class == ELFCLASS64;
        Some(match (self.machine, is64) {
            (EM_X86_64, _) => "x86_64",
            (EM_386, false) => "i686",
            (EM_AARCH64, true) => "aarch64",
            (EM_ARM, false) => "v7l",
            (EM_RISCV, true) => "riscv64",
            (EM_PPC64, true) => "powerpc64",
            (EM_PPC, false) => "powerpc",
            (EM_S390, true) => "s390x",
            (EM_LOONGARCH, true) => "loongarch64",
            _ => return None,
        })
    }

    /// The candidates for `$LIB`.
    fn lib_dirs(&self) -> Vec<String> {
        let mut v = Vec::new();
        if let Some(m) = self.multiarch() {
            v.push(format!("lib/{m}"));
        }
        if self.class == ELFCLASS64 {
            v.push("lib64".to_owned());
        }
        v.push("lib".to_owned());
        v
    }

    /// The default search directories, in order.
    fn default_dirs(&self) -> Vec<PathBuf> {
        let mut v = Vec::new();
        if let Some(m) = self.multiarch() {
            v.push(PathBuf::from(format!("/lib/{m}")));
            v.push(PathBuf::from(format!("/usr/lib/{m}")));
        }
        if self.class == ELFCLASS64 {
            v.push(PathBuf::from("/lib64"));
            v.push(PathBuf::from("/usr/lib64"));
        }
        v.push(PathBuf::from("/lib"));
        v.push(PathBuf::from("/usr/lib"));
        v
    }
}

/// Path handling relative to an optional root.
///
/// A *logical* path is what the program sees; a *host* path is where that file is here.
#[derive(Debug, Clone, Copy)]
struct Fs<'a> {
    root: Option<&'a Path>,
}

impl Fs<'_> {
    /// The host path of a logical path (no symlink resolution).
    fn to_host(self, logical: &Path) -> PathBuf {
        match self.root {
            None => logical.to_owned(),
            Some(root) => root.join(logical.strip_prefix("/").unwrap_or(logical)),
        }
    }

    /// Resolves every symlink, `.` and `..` of `logical`; returns the canonical logical
    /// path and its host path. Fails when the file does not exist.
    fn canonicalize(self, logical: &Path) -> io::Result<(PathBuf, PathBuf)> {
        match self.root {
            None => {
                let c = std::fs::canonicalize(logical)?;
                Ok((c.clone(), c))
            }
            Some(root) => {
                let l = resolve_in_root(root, logical)?;
                Ok((l.clone(), self.to_host(&l)))
            }
        }
    }
}

/// `realpath` inside `root`: absolute symlink targets and `..` stay within it.
fn resolve_in_root(root: &Path, path: &Path) -> io::Result<PathBuf> {
    let mut pending: Vec<OsString> = components_rev(path);
    let mut out = PathBuf::from("/");
    let mut links = 0;
    while let Some(name) = pending.pop() {
        if name == ".." {
            out.pop();
            continue;
        }
        let candidate = out.join(&name);
        let host = root.join(candidate.strip_prefix("/").unwrap_or(&candidate));
        let meta = std::fs::symlink_metadata(&host)?;
        if meta.file_type().is_symlink() {
            links += 1;
            if links > MAX_SYMLINKS {
                return Err(io::Error::other("too many levels of symbolic links"));
            }
            let target = std::fs::read_link(&host)?;
            if target.is_absolute() {
                out = PathBuf::from("/");
            }
            pending.extend(components_rev(&target));
        } else {
            out = candidate;
        }
    }
    // The root itself, or a path ending in "..": make sure it exists.
    std::fs::metadata(root.join(out.strip_prefix("/").unwrap_or(&out)))?;
    Ok(out)
}

/// The normal and `..` components of `path`, last first (a stack).
fn components_rev(path: &Path) -> Vec<OsString> {
    let mut v: Vec<OsString> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            _ => None,
        })
        .collect();
    v.reverse();
    v
}

/// Expands `$ORIGIN`, `$LIB` and `$PLATFORM` (also written `${NAME}`) in `s`, as
/// `ld.so`'s `_dl_dst_substitute` does. Returns every variant (`$LIB` has several); an
/// empty list when a token has no value (the element is then dropped, as in `ld.so`).
/// Other `$` sequences are kept literally.
fn expand_dst(s: &[u8], origin: Option<&Path>, target: &Target) -> Vec<PathBuf> {
    let mut outs: Vec<Vec<u8>> = vec![Vec::new()];
    let mut i = 0;
    while i < s.len() {
        if s[i] != b'$' {
            let next = s[i..]
                .iter()
                .position(|&b| b == b'$')
                .map_or(s.len(), |p| i + p);
            for o in &mut outs {
                o.extend_from_slice(&s[i..next]);
            }
            i = next;
            continue;
        }
        let (name, len) = dst_name(&s[i + 1..]);
        let values: Vec<Vec<u8>> = match name {
            b"ORIGIN" => match origin {
                Some(o) => vec![o.as_os_str().as_bytes().to_vec()],
                None => return Vec::new(),
            },
            b"PLATFORM" => match target.platform() {
                Some(p) => vec![p.as_bytes().to_vec()],
                None => return Vec::new(),
            },
            b"LIB" => target
                .lib_dirs()
                .into_iter()
                .map(String::into_bytes)
                .collect(),
            _ => {
                for o in &mut outs {
                    o.push(b'$');
                }
                i += 1;
                continue;
            }
        };
        let mut next = Vec::new();
        for o in &outs {
            for v in &values {
                if next.len() < MAX_EXPANSIONS {
                    let mut n = o.clone();
                    n.extend_from_slice(v);
                    next.push(n);
                }
            }
        }
        outs = next;
        i += 1 + len;
    }
    outs.into_iter()
        .map(|o| PathBuf::from(OsString::from_vec(o)))
        .collect()
}

/// The token name after a `$` and how many bytes it spans: `NAME` or `{NAME}`.
fn dst_name(s: &[u8]) -> (&[u8], usize) {
    let word = |t: &[u8]| {
        t.iter()
            .position(|b| !(b.is_ascii_alphanumeric() || *b == b'_'))
            .unwrap_or(t.len())
    };
    if s.first() == Some(&b'{') {
        let rest = &s[1..];
        let n = word(rest);
        if rest.get(n) == Some(&b'}') {
            return (&rest[..n], n + 2);
        }
        return (&[], 0);
    }
    let n = word(s);
    (&s[..n], n)
}

/// Splits a `DT_RPATH`/`DT_RUNPATH` string on `:` and expands it for an object whose
/// directory is `origin`. Empty elements mean the working directory, as in `ld.so`.
fn search_dirs(list: &OsStr, origin: Option<&Path>, target: &Target) -> Vec<PathBuf> {
    list.as_bytes()
        .split(|&b| b == b':')
        .flat_map(|elem| {
            if elem.is_empty() {
                vec![PathBuf::from(".")]
            } else {
                expand_dst(elem, origin, target)
            }
        })
        .collect()
}

/// One loaded object in the breadth-first walk.
struct Node {
    /// `$ORIGIN`: the directory of the object as `ld.so` names it.
    origin: Option<PathBuf>,
    /// Effective `DT_RPATH` directories (empty when the object has `DT_RUNPATH`).
    rpath: Vec<PathBuf>,
    /// `DT_RUNPATH` directories, if the object has the tag.
    runpath: Option<Vec<PathBuf>>,
    /// `DF_1_NODEFLIB`.
    nodeflib: bool,
    /// Index of the object whose `DT_NEEDED` loaded this one.
    loader: Option<usize>,
    /// `DT_NEEDED` names.
    needed: Vec<OsString>,
}

/// A library that passed the checks.
struct Found {
    logical: PathBuf,
    host: PathBuf,
    info: ElfInfo,
}

/// State of one [`dependencies`] walk.
struct Walk<'a> {
    fs: Fs<'a>,
    opts: &'a LddOptions,
    target: Target,
    /// `None` until first needed; `Some(None)` when missing or unreadable.
    cache: Option<Option<LdCache>>,
    nodes: Vec<Node>,
    /// Canonical host paths of everything loaded (program, interpreter, libraries).
    paths: HashSet<PathBuf>,
    /// Names `ld.so` would match a `DT_NEEDED` against: requested names and sonames.
    names: HashSet<OsString>,
    deps: Dependencies,
}

impl Walk<'_> {
    /// A walk node for an object found at `logical`, loaded by node `loader`.
    fn node(&self, logical: &Path, info: &ElfInfo, loader: Option<usize>) -> Node {
        let origin = logical.parent().map(Path::to_path_buf);
        let o = origin.as_deref();
        Node {
            rpath: info
                .rpath
                .as_deref()
                .map(|r| search_dirs(r, o, &self.target))
                .unwrap_or_default(),
            runpath: info
                .runpath
                .as_deref()
                .map(|r| search_dirs(r, o, &self.target)),
            nodeflib: info.nodeflib,
            loader,
            needed: info.needed.clone(),
            origin,
        }
    }

    /// Breadth-first over `DT_NEEDED`, starting at the program.
    fn run(&mut self, program_logical: &Path, info: ElfInfo) -> Result<(), LddError> {
        let root = self.node(program_logical, &info, None);
        // LD_LIBRARY_PATH tokens expand relative to the program.
        let library_path: Vec<PathBuf> = self
            .opts
            .library_path
            .iter()
            .flat_map(|p| {
                if p.as_os_str().is_empty() {
                    vec![PathBuf::from(".")]
                } else {
                    expand_dst(
                        p.as_os_str().as_bytes(),
                        root.origin.as_deref(),
                        &self.target,
                    )
                }
            })
            .collect();
        self.nodes.push(root);
        let mut queue = VecDeque::from([0usize]);
        while let Some(idx) = queue.pop_front() {
            let needed = std::mem::take(&mut self.nodes[idx].needed);
            for name in needed {
                if self.names.contains(&name) {
                    continue;
                }
                let Some(found) = self.resolve(&name, idx, &library_path) else {
                    let name = name.to_string_lossy().into_owned();
                    push_unique(&mut self.deps.unresolved, name);
                    continue;
                };
                self.names.insert(name);
                if !self.paths.insert(found.host.clone()) {
                    continue; // the same file under another name
                }
                if self.nodes.len() >= MAX_OBJECTS {
                    return Err(LddError::TooManyObjects);
                }
                if let Some(soname) = &found.info.soname {
                    self.names.insert(soname.clone());
                }
                let node = self.node(&found.logical, &found.info, Some(idx));
                self.nodes.push(node);
                self.deps.libraries.push(found.host);
                queue.push_back(self.nodes.len() - 1);
            }
        }
        Ok(())
    }

    /// Finds the file `ld.so` would load for `name` requested by node `idx`.
    fn resolve(&mut self, name: &OsStr, idx: usize, library_path: &[PathBuf]) -> Option<Found> {
        let bytes = name.as_bytes();
        if bytes.is_empty() {
            return None;
        }
        if bytes.contains(&b'/') {
            let origin = self.nodes[idx].origin.clone();
            return expand_dst(bytes, origin.as_deref(), &self.target)
                .into_iter()
                .find_map(|p| self.candidate(&p));
        }

        let node = &self.nodes[idx];
        let mut dirs: Vec<PathBuf> = Vec::new();
        if node.runpath.is_none() {
            let mut at = Some(idx);
            while let Some(i) = at {
                dirs.extend(self.nodes[i].rpath.iter().cloned());
                at = self.nodes[i].loader;
            }
        }
        dirs.extend(library_path.iter().cloned());
        if let Some(runpath) = &node.runpath {
            dirs.extend(runpath.iter().cloned());
        }
        let nodeflib = node.nodeflib;

        let mut tried = HashSet::new();
        for dir in dirs {
            if tried.insert(dir.clone()) {
                if let Some(found) = self.candidate(&dir.join(name)) {
                    return Some(found);
                }
            }
        }
        if nodeflib {
            return None;
        }
        if let Some(path) = self.cache_lookup(name) {
            if let Some(found) = self.candidate(&path) {
                return Some(found);
            }
        }
        for dir in self.target.default_dirs() {
            if tried.insert(dir.clone()) {
                if let Some(found) = self.candidate(&dir.join(name)) {
                    return Some(found);
                }
            }
        }
        None
    }

    /// The cache's answer for `name`, loading the cache on first use.
    fn cache_lookup(&mut self, name: &OsStr) -> Option<PathBuf> {
        let cache = self.cache.get_or_insert_with(|| {
            let host = self.fs.to_host(&self.opts.cache_path);
            LdCache::read(&host).ok()
        });
        let cache = cache.as_ref()?;
        let t = &self.target;
        let flags = LdCache::flags_for(t.class, t.machine, t.e_flags).unwrap_or(ldcache::FLAG_ANY);
        cache
            .lookup(name, flags)
            .or_else(|| cache.lookup(name, ldcache::FLAG_ELF))
            .map(Path::to_path_buf)
    }

    /// `logical` if it is a readable ELF shared object matching the program.
    fn candidate(&self, logical: &Path) -> Option<Found> {
        let (_, host) = self.fs.canonicalize(logical).ok()?;
        if !std::fs::metadata(&host).ok()?.is_file() {
            return None;
        }
        match elf::read_file(&host) {
            Ok(FileKind::Elf(info)) if self.target.accepts(&info) => Some(Found {
                logical: logical.to_owned(),
                host,
                info,
            }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const X64: Target = Target {
        class: ELFCLASS64,
        data: goblin::elf::header::ELFDATA2LSB,
        machine: EM_X86_64,
        e_flags: 0,
    };

    /// A corrupt cache is an error of the cache reader, and the search goes on without it:
    /// the default directories still find everything.
    #[test]
    fn corrupt_cache_is_an_error_and_is_skipped() {
        let dir = std::env::temp_dir().join(format!("moat-ldd-cache-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        let names = |d: &Dependencies| -> std::collections::BTreeSet<String> {
            d.libraries
                .iter()
                .filter_map(|p| p.file_name())
                .map(|n| n.to_string_lossy().into_owned())
                .collect()
        };
        let ls = Path::new("/bin/ls");
        let want = names(&dependencies(ls, &LddOptions::default()).expect("ls"));
        for (i, bytes) in ldcache::build::corrupt().iter().enumerate() {
            let r = LdCache::parse(bytes);
            assert!(r.is_err(), "case {i}: {r:?}");
            let path = dir.join(format!("cache{i}"));
            std::fs::write(&path, bytes).expect("write cache");
            let opts = LddOptions {
                cache_path: path,
                ..LddOptions::default()
            };
            let d = dependencies(ls, &opts).expect("ls without a cache");
            assert_eq!(names(&d), want);
        }
        assert_eq!(LdCache::parse(b""), Err(ldcache::LdCacheError::BadMagic));
        // A missing cache is fine too.
        let opts = LddOptions {
            cache_path: dir.join("no-such-cache"),
            ..LddOptions::default()
        };
        assert!(dependencies(ls, &opts).is_ok());
        std::fs::remove_dir_all(&dir).expect("remove temp dir");
    }

    fn strs(v: Vec<PathBuf>) -> Vec<String> {
        v.into_iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn dst_origin_forms() {
        let o = Some(Path::new("/opt/app/bin"));
        assert_eq!(
            strs(expand_dst(b"$ORIGIN/../lib", o, &X64)),
            ["/opt/app/bin/../lib"]
        );
        assert_eq!(
            strs(expand_dst(b"${ORIGIN}/x", o, &X64)),
            ["/opt/app/bin/x"]
        );
        assert_eq!(strs(expand_dst(b"/plain", o, &X64)), ["/plain"]);
        // No origin known: the element is dropped.
        assert!(expand_dst(b"$ORIGIN/x", None, &X64).is_empty());
        // Unknown tokens and a token that is a prefix of a longer word stay literal.
        assert_eq!(strs(expand_dst(b"/a/$FOO/b", o, &X64)), ["/a/$FOO/b"]);
        assert_eq!(strs(expand_dst(b"/a/$ORIGINAL", o, &X64)), ["/a/$ORIGINAL"]);
        assert_eq!(strs(expand_dst(b"/a/${ORIGIN", o, &X64)), ["/a/${ORIGIN"]);
        assert_eq!(strs(expand_dst(b"$", o, &X64)), ["$"]);
    }

    #[test]
    fn dst_lib_and_platform() {
        assert_eq!(
            strs(expand_dst(b"/usr/$LIB/$PLATFORM", None, &X64)),
            [
                "/usr/lib/x86_64-linux-gnu/x86_64",
                "/usr/lib64/x86_64",
                "/usr/lib/x86_64"
            ]
        );
        // Variants are capped.
        let many = b"$LIB/$LIB/$LIB/$LIB/$LIB".to_vec();
        assert!(expand_dst(&many, None, &X64).len() <= MAX_EXPANSIONS);
    }

    #[test]
    fn search_dirs_split_and_empty_elements() {
        let o = Some(Path::new("/o"));
        assert_eq!(
            strs(search_dirs(OsStr::new("/a::$ORIGIN/b:"), o, &X64)),
            ["/a", ".", "/o/b", "."]
        );
    }

    #[test]
    fn default_dirs_x86_64() {
        assert_eq!(
            strs(X64.default_dirs()),
            [
                "/lib/x86_64-linux-gnu",
                "/usr/lib/x86_64-linux-gnu",
                "/lib64",
                "/usr/lib64",
                "/lib",
                "/usr/lib"
            ]
        );
    }

    #[test]
    fn resolve_in_root_stays_inside() {
        let root = std::env::temp_dir().join(format!("moat-ldd-root-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("usr/lib")).unwrap();
        std::fs::write(root.join("usr/lib/libx.so"), b"x").unwrap();
        std::os::unix::fs::symlink("/usr/lib", root.join("lib")).unwrap();
        std::os::unix::fs::symlink("../../../../../usr/lib/libx.so", root.join("usr/lib/up"))
            .unwrap();
        std::os::unix::fs::symlink("loop", root.join("loop")).unwrap();
        assert_eq!(
            resolve_in_root(&root, Path::new("/lib/libx.so")).unwrap(),
            Path::new("/usr/lib/libx.so")
        );
        assert_eq!(
            resolve_in_root(&root, Path::new("/usr/lib/up")).unwrap(),
            Path::new("/usr/lib/libx.so")
        );
        assert_eq!(
            resolve_in_root(&root, Path::new("/../../lib/./libx.so")).unwrap(),
            Path::new("/usr/lib/libx.so")
        );
        assert!(resolve_in_root(&root, Path::new("/loop")).is_err());
        assert!(resolve_in_root(&root, Path::new("/nope")).is_err());
        let fs = Fs { root: Some(&root) };
        let (l, h) = fs.canonicalize(Path::new("/lib/libx.so")).unwrap();
        assert_eq!(l, Path::new("/usr/lib/libx.so"));
        assert_eq!(h, root.join("usr/lib/libx.so"));
        let _ = std::fs::remove_dir_all(&root);
    }
}
