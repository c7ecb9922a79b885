//! The pass-through before libc: most runtime invocations go straight to the real runtime
//! without the C library ever starting.
//!
//! An engine runs moat-runtime three times per container life (`create`, `start`,
//! `delete`), and `start` only hands its arguments to runc (`delete` does too, after
//! removing the container's cgroup-bpf pins when it has any). On the VM moat is
//! measured on, a statically linked glibc program spends 0.13-0.2 ms starting up before
//! `main` (about 25 page faults at 3-6 us each and some 40 `CPUID` instructions that trap to
//! the hypervisor), against 0.06 ms for a program without libc: that start-up was most of
//! what a pass-through cost (docs/PERFORMANCE.md, moat-runtime). So the binary's ELF entry
//! point is [`pass_through`] (see the `moat-runtime` binary): it looks at the raw command
//! line and environment on the initial stack, and when the invocation is one moat-runtime
//! would pass through unchanged to a runtime found the default way, it executes that runtime
//! itself with raw system calls. Anything else, or any doubt, returns, and the ordinary
//! start-up runs (glibc, then `moat_runtime::main`), which decides everything as before.
//!
//! It takes the fast way only when the full path would certainly do the same:
//! - the subcommand is one moat-runtime never looks into ([`FAST_COMMANDS`]), found after
//!   global flags exactly as [`crate::cli::parse`] finds it (a flag taking a value swallows
//!   the next argument), or a `delete` of a container without a cgroup-bpf pin directory
//!   (one `faccessat2`: [`delete_id`]), and `--moat-runtime` is not among them;
//! - or a forced `delete` ([`delete_forced`]) of a container whose pin directory holds a
//!   registry pin (`moat_cgroup::REGISTRY_PIN`: the node's map of containers pinned again
//!   under a name that carries the container's cgroup id): its entry in that map is
//!   deleted, then every pin and the directory, as the full path does (`forget_early`),
//!   in eleven system calls instead of glibc's start-up and the full program, about
//!   0.4 ms of every counted container's life (docs/PERFORMANCE.md). An unforced delete
//!   must first know whether the container still runs, which the full path reads;
//! - the runtime is found the full path's way: a non-empty `MOAT_RUNTIME`, else the
//!   configuration file (`MOAT_RUNTIME_CONFIG`'s, else `/etc/moat/runtime.toml`) when it
//!   is absent or in the strict subset of TOML [`config_runtime`] reads with certainty
//!   (what the node installer writes: `runtime = "/usr/sbin/runc"`), else `runc`;
//! - a runtime named with a slash is executed as named; one without is found on `PATH` as
//!   [`crate::runtime_config::resolve_in_path`] finds it.
//!
//! Then the runtime is executed with its configured name as `argv[0]`, the same arguments
//! and environment, after the two things `std::process::Command::exec` does on the full
//! path: an empty signal mask and `SIGPIPE` at its default action. If `execve` fails, the
//! full path runs and reports.
//!
//! Nothing here may use the C library or thread-local storage, which do not exist yet: no
//! allocation, no panics (no slice indexing or unchecked arithmetic), and no call the
//! compiler could turn into `memcpy`, `memset` or `bcmp`, which glibc resolves at start-up
//! (byte loops read and write through `read_volatile`/`write_volatile` for that reason).
//! The logic is plain Rust over byte strings, tested like any other; only [`pass_through`]
//! touches raw memory.

use crate::cli::{GLOBAL_VALUE_FLAGS, RUNTIME_FLAG};
use crate::runtime_config::{CONFIG_ENV, CONFIG_FILE, DEFAULT_RUNTIME, RUNTIME_ENV};
use core::ptr::{read_volatile, write_volatile};

/// Subcommands moat-runtime only passes through (everything but `create`, `run`, `exec`,
/// `features`, `restore` and `delete` (which removes the container's cgroup-bpf pins), and
/// the help commands, whose output should stay whatever the full path prints).
pub const FAST_COMMANDS: &[&[u8]] = &[
    b"start",
    b"state",
    b"kill",
    b"list",
    b"ps",
    b"events",
    b"pause",
    b"resume",
    b"update",
    b"checkpoint",
    b"spec",
    b"mounts",
];

/// Longest candidate path tried (`PATH_MAX`).
pub const MAX_PATH: usize = 4096;

/// Largest configuration file the early path reads; a longer one is left to the full path.
pub const MAX_CONFIG: usize = 4096;

/// A list of byte strings read by index: the kernel's `argv`/`envp` arrays, or slices in
/// tests. Taken by reference and walked with an index, because in an unoptimised build
/// moving an iterator adapter is a `memcpy` call, which does not work yet.
pub trait Strings {
    /// The `i`th string, or `None` past the end.
    fn at(&self, i: usize) -> Option<&[u8]>;
}

impl Strings for [&[u8]] {
    fn at(&self, i: usize) -> Option<&[u8]> {
        self.get(i).copied()
    }
}

/// Byte-string equality without `bcmp`.
fn eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        // SAFETY: i < a.len() == b.len(); volatile keeps the loop a loop.
        if unsafe { read_volatile(a.as_ptr().add(i)) != read_volatile(b.as_ptr().add(i)) } {
            return false;
        }
        i += 1;
    }
    true
}

fn starts_with(a: &[u8], prefix: &[u8]) -> bool {
    a.len() >= prefix.len() && eq(a.get(..prefix.len()).unwrap_or(&[]), prefix)
}

fn contains(list: &[&[u8]], x: &[u8]) -> bool {
    list.iter().any(|y| eq(y, x))
}

/// Whether the arguments from index `first` on are a pass-through invocation, by the rules
/// of [`crate::cli::parse`]: flags before the subcommand, `--` skipped there.
pub fn is_pass_through<S: Strings + ?Sized>(args: &S, first: usize) -> bool {
    subcommand_at(args, first)
        .and_then(|at| args.at(at))
        .is_some_and(|c| contains(FAST_COMMANDS, c))
}

/// The container id of a `delete` from index `first` on, as the full path finds it (the
/// last argument after the subcommand that does not start with `-`), when it can name a
/// pin directory (`moat_cgroup::pin_dir`'s rule). A `delete` of a container without
/// cgroup-bpf pins is a plain pass-through on the full path too.
pub fn delete_id<S: Strings + ?Sized>(args: &S, first: usize) -> Option<&[u8]> {
    let at = subcommand_at(args, first)?;
    if !eq(args.at(at)?, b"delete") {
        return None;
    }
    let mut id = None;
    let mut i = at + 1;
    while let Some(a) = args.at(i) {
        if a.first() != Some(&b'-') {
            id = Some(a);
        }
        i += 1;
    }
    let id = id?;
    let mut k = 0;
    while let Some(&b) = id.get(k) {
        if !(b.is_ascii_alphanumeric() || b == b'_' || b == b'+' || b == b'-' || b == b'.') {
            return None;
        }
        k += 1;
    }
    (!id.is_empty() && !eq(id, b".") && !eq(id, b"..")).then_some(id)
}

/// Whether a `delete` from index `first` on is forced (`-f`, `--force`, `=true` forms), as
/// the full path reads it: any argument after the subcommand.
pub fn delete_forced<S: Strings + ?Sized>(args: &S, first: usize) -> bool {
    let Some(at) = subcommand_at(args, first) else {
        return false;
    };
    let mut i = at + 1;
    while let Some(a) = args.at(i) {
        let mut k = 0;
        while a.get(k) == Some(&b'-') {
            k += 1;
        }
        let flag = a.get(k..).unwrap_or(&[]);
        if eq(flag, b"f") || eq(flag, b"force") || eq(flag, b"f=true") || eq(flag, b"force=true") {
            return true;
        }
        i += 1;
    }
    false
}

/// The cgroup id in a registry pin's name (`moat_cgroup::REGISTRY_PIN` and the id in
/// decimal), or `None` for any other name.
pub fn registry_id(name: &[u8]) -> Option<u64> {
    let prefix = moat_cgroup::REGISTRY_PIN.as_bytes();
    if !starts_with(name, prefix) || name.len() == prefix.len() {
        return None;
    }
    let mut id: u64 = 0;
    let mut k = prefix.len();
    while let Some(&b) = name.get(k) {
        if !b.is_ascii_digit() {
            return None;
        }
        id = id.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
        k += 1;
    }
    Some(id)
}

/// The entry at byte `at` of a `getdents64` batch (`struct linux_dirent64`: inode, offset,
/// record length, type, then the NUL-terminated name): its name without the NUL, and where
/// the next entry starts. `None` past the end or at a malformed record.
pub fn dirent_at(batch: &[u8], at: usize) -> Option<(&[u8], usize)> {
    const NAME: usize = 19;
    let reclen = usize::from(u16::from_ne_bytes([
        *batch.get(at + 16)?,
        *batch.get(at + 17)?,
    ]));
    let end = at.checked_add(reclen)?;
    if reclen <= NAME || end > batch.len() {
        return None;
    }
    let record = batch.get(at + NAME..end)?;
    let mut len = 0;
    while record.get(len).is_some_and(|&b| b != 0) {
        len += 1;
    }
    if len == record.len() {
        return None;
    }
    Some((record.get(..len)?, end))
}

/// The index of the subcommand, found after global flags as [`crate::cli::parse`] finds it
/// (a flag taking a value swallows the next argument); `None` when there is none or
/// `--moat-runtime` comes first.
fn subcommand_at<S: Strings + ?Sized>(args: &S, first: usize) -> Option<usize> {
    let mut i = first;
    while let Some(arg) = args.at(i) {
        i += 1;
        if eq(arg, b"--") {
            continue;
        }
        if arg.len() < 2 || arg.first() != Some(&b'-') {
            return Some(i - 1);
        }
        let start = if starts_with(arg, b"--") { 2 } else { 1 };
        let mut end = start;
        let mut inline = false;
        while let Some(&b) = arg.get(end) {
            if b == b'=' {
                inline = true;
                break;
            }
            end += 1;
        }
        let name = arg.get(start..end).unwrap_or(&[]);
        if eq(name, RUNTIME_FLAG.as_bytes()) {
            return None;
        }
        let takes_value = GLOBAL_VALUE_FLAGS.iter().any(|f| eq(f.as_bytes(), name));
        if takes_value && !inline {
            args.at(i)?;
            i += 1;
        }
    }
    None
}

/// The value of the environment variable `name`, as `getenv` finds it (the first
/// occurrence wins). One pass per variable: passing a struct of several answers back
/// would be a `memcpy` in an unoptimised build.
pub fn getenv<'a, S: Strings + ?Sized>(env: &'a S, name: &str) -> Option<&'a [u8]> {
    let mut i = 0;
    while let Some(var) = env.at(i) {
        i += 1;
        if let Some(v) = value_of(var, name) {
            return Some(v);
        }
    }
    None
}

/// The value of `var` (`NAME=value`) when it sets `name`.
fn value_of<'a>(var: &'a [u8], name: &str) -> Option<&'a [u8]> {
    if starts_with(var, name.as_bytes()) && var.get(name.len()) == Some(&b'=') {
        var.get(name.len() + 1..)
    } else {
        None
    }
}

/// What the early reader makes of the configuration file's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileRuntime {
    /// The file names no runtime: the default one.
    Default,
    /// `runtime = "..."`: the value's bounds in the text.
    Named(usize, usize),
    /// Anything it does not read with certainty: the full path decides.
    Unsure,
}

/// Reads the runtime from the configuration file's text without a TOML library (none
/// works before the C library starts, or without allocating). It understands only a
/// strict subset of TOML, one that [`crate::runtime_config::FileConfig::parse`] reads
/// the same way: lines of ASCII text, blank or `#` comments or `key = value` with a bare
/// key among `runtime`, `launcher`, `ports_from_spec` and `without_policy`, each at most
/// once, a string without escapes (`"..."` or `'...'`) for the first two, `true`/`false`
/// for the third, `"ports"` or `"refuse"` for the fourth, and an optional trailing
/// comment. Anything else (a table header, another key, a
/// carriage return, a byte that is not printable ASCII) is [`FileRuntime::Unsure`]. This
/// is what the node installer writes.
pub fn config_runtime(text: &[u8]) -> FileRuntime {
    // A static, not a const: a local copy of the array would be a `memcpy`.
    static KEYS: [&[u8]; 4] = [
        b"runtime",
        b"launcher",
        b"ports_from_spec",
        b"without_policy",
    ];
    // A bit per key: an array of flags would be set up with `memset`.
    let mut seen = 0u8;
    let mut runtime = FileRuntime::Default;
    let mut at = 0;
    while at < text.len() {
        let mut end = at;
        while let Some(&b) = text.get(end) {
            if b == b'\n' {
                break;
            }
            if b != b'\t' && !(0x20..0x7f).contains(&b) {
                return FileRuntime::Unsure;
            }
            end += 1;
        }
        let line_end = end;
        let mut i = skip_blanks(text, at, line_end);
        at = line_end + 1;
        if i == line_end || text.get(i) == Some(&b'#') {
            continue;
        }
        let key_start = i;
        while let Some(&b) = text.get(i) {
            if i == line_end || !(b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
                break;
            }
            i += 1;
        }
        let key = text.get(key_start..i).unwrap_or(&[]);
        let mut k = 0;
        while KEYS.get(k).is_some_and(|known| !eq(known, key)) {
            k += 1;
        }
        if k >= KEYS.len() || seen & (1 << k) != 0 {
            return FileRuntime::Unsure;
        }
        seen |= 1 << k;
        i = skip_blanks(text, i, line_end);
        if i == line_end || text.get(i) != Some(&b'=') {
            return FileRuntime::Unsure;
        }
        i = skip_blanks(text, i + 1, line_end);
        let value_start = i;
        let (value, after) = if k == 2 {
            let word_end = {
                let mut j = i;
                while j < line_end && text.get(j).is_some_and(u8::is_ascii_lowercase) {
                    j += 1;
                }
                j
            };
            let word = text.get(i..word_end).unwrap_or(&[]);
            if !eq(word, b"true") && !eq(word, b"false") {
                return FileRuntime::Unsure;
            }
            ((value_start, word_end), word_end)
        } else {
            let Some(&quote) = text.get(i).filter(|q| **q == b'"' || **q == b'\'') else {
                return FileRuntime::Unsure;
            };
            let mut j = i + 1;
            while j < line_end && text.get(j) != Some(&quote) {
                if quote == b'"' && text.get(j) == Some(&b'\\') {
                    return FileRuntime::Unsure;
                }
                j += 1;
            }
            if j == line_end {
                return FileRuntime::Unsure;
            }
            ((i + 1, j), j + 1)
        };
        if k == 3 {
            let word = text.get(value.0..value.1).unwrap_or(&[]);
            if !eq(word, b"ports") && !eq(word, b"refuse") {
                return FileRuntime::Unsure;
            }
        }
        let rest = skip_blanks(text, after, line_end);
        if rest != line_end && text.get(rest) != Some(&b'#') {
            return FileRuntime::Unsure;
        }
        if k == 0 {
            if value.0 == value.1 {
                return FileRuntime::Unsure;
            }
            runtime = FileRuntime::Named(value.0, value.1);
        }
    }
    runtime
}

/// The first index from `i` that is not a space or tab, at most `end`.
fn skip_blanks(text: &[u8], mut i: usize, end: usize) -> usize {
    while i < end && matches!(text.get(i), Some(b' ' | b'\t')) {
        i += 1;
    }
    i
}

/// What a candidate path turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// A regular file this process may execute: the one.
    Executable,
    /// Passed over, as execvp passes it over.
    Skip,
    /// An error execvp would stop at: leave the search to the full path.
    Stop,
}

/// What the search does after a failed `stat` with `errno`: move on where execvp moves on
/// (ENOENT, ESTALE, ENOTDIR, ENODEV, ETIMEDOUT, and EACCES, which it remembers), stop
/// where it stops.
pub fn after_error(errno: i32) -> Probe {
    const MOVE_ON: [i32; 6] = [
        libc::ENOENT,
        libc::ESTALE,
        libc::ENOTDIR,
        libc::ENODEV,
        libc::ETIMEDOUT,
        libc::EACCES,
    ];
    let mut i = 0;
    while i < MOVE_ON.len() {
        if MOVE_ON[i] == errno {
            return Probe::Skip;
        }
        i += 1;
    }
    Probe::Stop
}

/// Searches `path` for `name` as execvp does (the one search behind both this early path
/// and [`crate::runtime_config::resolve_in_path`]), building each candidate
/// (NUL-terminated) in `buf` and asking `probe` about it. Returns the length
/// of the winner in `buf` (without the NUL), or `None` for "let the full path decide".
pub fn search(
    name: &[u8],
    path: &[u8],
    buf: &mut [u8],
    mut probe: impl FnMut(&[u8]) -> Probe,
) -> Option<usize> {
    let mut k = 0;
    while let Some(&b) = name.get(k) {
        if b == b'/' {
            return None;
        }
        k += 1;
    }
    if name.is_empty() {
        return None;
    }
    let mut dir_start = 0;
    while dir_start <= path.len() {
        let mut dir_end = dir_start;
        while let Some(&b) = path.get(dir_end) {
            if b == b':' {
                break;
            }
            dir_end += 1;
        }
        let dir: &[u8] = match path.get(dir_start..dir_end) {
            Some(d) if !d.is_empty() => d,
            _ => b".",
        };
        dir_start = dir_end + 1;
        let len = dir.len() + 1 + name.len();
        if len >= buf.len() {
            return None;
        }
        put(buf, 0, dir);
        put(buf, dir.len(), b"/");
        put(buf, dir.len() + 1, name);
        put(buf, len, b"\0");
        match probe(buf.get(..=len)?) {
            Probe::Executable => return Some(len),
            Probe::Skip => {}
            Probe::Stop => return None,
        }
    }
    None
}

/// Copies `bytes` into `buf` at `at`, as far as it fits, without `memcpy`.
fn put(buf: &mut [u8], at: usize, bytes: &[u8]) {
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if let Some(slot) = buf.get_mut(at + i) {
            // SAFETY: a valid element of buf; volatile keeps the loop a loop.
            unsafe { write_volatile(slot, b) };
        }
        i += 1;
    }
}

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
mod raw {
    //! The few system calls, without libc.

    use core::arch::asm;

    pub const READ: usize = 0;
    pub const CLOSE: usize = 3;
    pub const OPENAT: usize = 257;
    pub const EXECVE: usize = 59;
    pub const NEWFSTATAT: usize = 262;
    pub const FACCESSAT2: usize = 439;
    pub const RT_SIGPROCMASK: usize = 14;
    pub const RT_SIGACTION: usize = 13;
    pub const GETDENTS64: usize = 217;
    pub const UNLINKAT: usize = 263;
    pub const BPF: usize = 321;

    /// `AT_FDCWD`: a path relative to the working directory (or absolute).
    pub const AT_FDCWD: usize = -100isize as usize;
    /// `ENOENT`, as a system call returns it negated.
    pub const ENOENT: isize = 2;

    /// A `*at` system call on `path` (NUL-terminated) from the working directory, with two
    /// more arguments.
    ///
    /// # Safety
    /// `path` must end in a NUL, and `a`, `b` be valid for system call `nr`.
    pub unsafe fn at(nr: usize, path: &[u8], a: usize, b: usize) -> isize {
        // SAFETY: per the caller.
        unsafe { syscall4(nr, AT_FDCWD, path.as_ptr() as usize, a, b) }
    }

    /// A system call with up to four arguments; returns the raw result (negative errno).
    ///
    /// # Safety
    /// The arguments must be valid for system call `nr`.
    pub unsafe fn syscall4(nr: usize, a: usize, b: usize, c: usize, d: usize) -> isize {
        let ret: isize;
        // SAFETY: per the caller; the kernel clobbers rcx and r11 only.
        unsafe {
            asm!(
                "syscall",
                inlateout("rax") nr as isize => ret,
                in("rdi") a,
                in("rsi") b,
                in("rdx") c,
                in("r10") d,
                lateout("rcx") _,
                lateout("r11") _,
                options(nostack),
            );
        }
        ret
    }
}

/// Length of the NUL-terminated string at `p`.
///
/// # Safety
/// `p` must point to a NUL-terminated string.
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
unsafe fn c_str<'a>(p: *const u8) -> &'a [u8] {
    let mut n = 0;
    // SAFETY: per the caller, every byte up to the NUL is readable.
    while unsafe { read_volatile(p.add(n)) } != 0 {
        n += 1;
    }
    // SAFETY: the n bytes before the NUL.
    unsafe { core::slice::from_raw_parts(p, n) }
}

/// The kernel's NULL-terminated array of NUL-terminated strings (`argv`, `envp`).
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
struct RawStrs(*const *const u8);

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
impl Strings for RawStrs {
    fn at(&self, i: usize) -> Option<&[u8]> {
        let mut k = 0;
        while k < i {
            // SAFETY: entries up to the NULL are valid (RawStrs is made from the kernel's
            // arrays only); we stop at the NULL.
            if unsafe { read_volatile(self.0.add(k)) }.is_null() {
                return None;
            }
            k += 1;
        }
        // SAFETY: as above.
        let p = unsafe { read_volatile(self.0.add(i)) };
        if p.is_null() {
            return None;
        }
        // SAFETY: a NUL-terminated string of the kernel's.
        Some(unsafe { c_str(p) })
    }
}

/// `struct stat`'s `st_mode` offset on x86_64, and the struct's size.
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
const STAT_MODE_OFFSET: usize = 24;
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
const STAT_SIZE: usize = 144;

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
fn probe_candidate(c: &[u8]) -> Probe {
    const X_OK: usize = 1;
    const AT_EACCESS: usize = 0x200;
    let mut st = core::mem::MaybeUninit::<[u64; STAT_SIZE / 8]>::uninit();
    // SAFETY: c is NUL-terminated (search writes the NUL); st has room for struct stat.
    let r = unsafe { raw::at(raw::NEWFSTATAT, c, st.as_mut_ptr() as usize, 0) };
    if r < 0 {
        return after_error(-r as i32);
    }
    // SAFETY: the kernel filled st; st_mode is a u32 at its offset.
    let mode =
        unsafe { read_volatile(st.as_ptr().cast::<u8>().add(STAT_MODE_OFFSET).cast::<u32>()) };
    if mode & 0o170000 != 0o100000 {
        return Probe::Skip;
    }
    // SAFETY: c is NUL-terminated.
    let r = unsafe { raw::at(raw::FACCESSAT2, c, X_OK, AT_EACCESS) };
    match r {
        0 => Probe::Executable,
        // A kernel without faccessat2 (before 5.8): the full path knows better.
        r if r < 0 && -r == 38 => Probe::Stop,
        _ => Probe::Skip,
    }
}

/// Whether container `id` certainly has no cgroup-bpf pin directory
/// (`<moat_cgroup::DEFAULT_ROOT>/<id>` does not exist), building the path in `buf`. Any
/// answer but "no such file" leaves the `delete` to the full path.
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
fn pins_absent(id: &[u8], buf: &mut [u8]) -> bool {
    const F_OK: usize = 0;
    let Some(len) = pin_dir_path(id, buf) else {
        return false;
    };
    let path = buf.get(..=len).unwrap_or(&[]);
    // SAFETY: path is NUL-terminated (pin_dir_path wrote the NUL at len).
    let r = unsafe { raw::at(raw::FACCESSAT2, path, F_OK, 0) };
    r == -raw::ENOENT
}

/// `<moat_cgroup::DEFAULT_ROOT>/<id>` in `buf`, NUL-terminated; its length, or `None`
/// when it does not fit.
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
fn pin_dir_path(id: &[u8], buf: &mut [u8]) -> Option<usize> {
    let root = moat_cgroup::DEFAULT_ROOT.as_bytes();
    let len = root.len() + 1 + id.len();
    if len >= buf.len() {
        return None;
    }
    put(buf, 0, root);
    put(buf, root.len(), b"/");
    put(buf, root.len() + 1, id);
    put(buf, len, b"\0");
    Some(len)
}

/// What the full path's forced `delete` does to container `id`'s pins, without libc: the
/// container's entry in the node's map first (through the registry pin, which names the
/// cgroup id and is the node's map), then every pin, then the directory. `false` at
/// anything unexpected (no registry pin, as in pins an older moat-runtime made; a
/// directory with more than one batch of entries; any error): the full path then does the
/// rest, which it can since each step is one it repeats harmlessly. `buf` holds paths,
/// `dirents` the directory's entries, `attr` the `bpf(2)` attributes.
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
fn forget_early(id: &[u8], buf: &mut [u8], dirents: &mut [u8], attr: &mut [u64; 16]) -> bool {
    const O_DIRECTORY_CLOEXEC: usize = 0o200000 | 0o2000000;
    const AT_REMOVEDIR: usize = 0x200;
    const BPF_OBJ_GET: usize = 7;
    const BPF_MAP_DELETE_ELEM: usize = 3;
    use raw::ENOENT;
    let Some(dir_len) = pin_dir_path(id, buf) else {
        return false;
    };
    // SAFETY: buf holds a NUL-terminated path at its start (to dir_len).
    let fd = unsafe {
        raw::at(
            raw::OPENAT,
            buf.get(..=dir_len).unwrap_or(&[]),
            O_DIRECTORY_CLOEXEC,
            0,
        )
    };
    if fd < 0 {
        return false;
    }
    let done = forget_in(fd as usize, dir_len, buf, dirents, attr);
    // SAFETY: closes the descriptor opened above.
    unsafe { raw::syscall4(raw::CLOSE, fd as usize, 0, 0, 0) };
    if !done {
        return false;
    }
    // buf still holds the directory's path up to dir_len.
    put(buf, dir_len, b"\0");
    // SAFETY: as for the open above.
    let r = unsafe {
        raw::at(
            raw::UNLINKAT,
            buf.get(..=dir_len).unwrap_or(&[]),
            AT_REMOVEDIR,
            0,
        )
    };
    return r == 0 || r == -ENOENT;

    /// The steps inside the open directory `dir`.
    fn forget_in(
        dir: usize,
        dir_len: usize,
        buf: &mut [u8],
        dirents: &mut [u8],
        attr: &mut [u64; 16],
    ) -> bool {
        // Half for the directory, half to check that nothing more follows.
        let (first, rest) = dirents.split_at_mut(dirents.len() / 2);
        // SAFETY: first is a writable buffer of the length given.
        let n = unsafe {
            raw::syscall4(
                raw::GETDENTS64,
                dir,
                first.as_mut_ptr() as usize,
                first.len(),
                0,
            )
        };
        if n <= 0 {
            return false;
        }
        let batch = first.get(..n as usize).unwrap_or(&[]);
        let mut registry = None;
        let mut at = 0;
        while let Some((name, next)) = dirent_at(batch, at) {
            if let Some(cgroup_id) = registry_id(name) {
                registry = Some((at, cgroup_id));
            }
            at = next;
        }
        let Some((registry_at, cgroup_id)) = registry else {
            return false;
        };
        // One batch must hold the whole directory: entries are unlinked only once the
        // container's entry in the node's map is gone.
        // SAFETY: rest is a writable buffer of the length given.
        let more = unsafe {
            raw::syscall4(
                raw::GETDENTS64,
                dir,
                rest.as_mut_ptr() as usize,
                rest.len(),
                0,
            )
        };
        if more != 0 {
            return false;
        }
        let Some((name, _)) = dirent_at(batch, registry_at) else {
            return false;
        };
        if !unregister(name, cgroup_id, dir_len, buf, attr) {
            return false;
        }
        let mut at = 0;
        while let Some((name, next)) = dirent_at(batch, at) {
            if !eq(name, b".") && !eq(name, b"..") {
                // SAFETY: name is followed by its NUL in the kernel's record.
                let r = unsafe { raw::syscall4(raw::UNLINKAT, dir, name.as_ptr() as usize, 0, 0) };
                if r != 0 && r != -ENOENT {
                    return false;
                }
            }
            at = next;
        }
        true
    }

    /// Deletes `cgroup_id` from the map pinned as `name` in the directory at `buf`.
    fn unregister(
        name: &[u8],
        cgroup_id: u64,
        dir_len: usize,
        buf: &mut [u8],
        attr: &mut [u64; 16],
    ) -> bool {
        let end = dir_len + 1 + name.len();
        if end >= buf.len() {
            return false;
        }
        put(buf, dir_len, b"/");
        put(buf, dir_len + 1, name);
        put(buf, end, b"\0");
        clear(attr);
        if let Some(slot) = attr.get_mut(0) {
            // SAFETY: a valid element of attr (pathname).
            unsafe { write_volatile(slot, buf.as_ptr() as u64) };
        }
        // SAFETY: attr is a zeroed bpf_attr with the pathname of a NUL-terminated path.
        let map = unsafe {
            raw::syscall4(
                raw::BPF,
                BPF_OBJ_GET,
                attr.as_mut_ptr() as usize,
                core::mem::size_of::<[u64; 16]>(),
                0,
            )
        };
        if map < 0 {
            return false;
        }
        clear(attr);
        let key = cgroup_id;
        if let Some(fd) = attr.get_mut(0) {
            // SAFETY: a valid element of attr (map_fd, the low half on little-endian).
            unsafe { write_volatile(fd, map as u64) };
        }
        if let Some(slot) = attr.get_mut(1) {
            // SAFETY: a valid element of attr (key).
            unsafe { write_volatile(slot, &key as *const u64 as u64) };
        }
        // SAFETY: attr names an open map and a key of its 8-byte size.
        let r = unsafe {
            raw::syscall4(
                raw::BPF,
                BPF_MAP_DELETE_ELEM,
                attr.as_mut_ptr() as usize,
                core::mem::size_of::<[u64; 16]>(),
                0,
            )
        };
        // SAFETY: closes the descriptor bpf(2) returned.
        unsafe { raw::syscall4(raw::CLOSE, map as usize, 0, 0, 0) };
        r == 0 || r == -ENOENT
    }

    fn clear(attr: &mut [u64; 16]) {
        let mut i = 0;
        while let Some(slot) = attr.get_mut(i) {
            // SAFETY: a valid element of attr; volatile keeps the loop a loop.
            unsafe { write_volatile(slot, 0) };
            i += 1;
        }
    }
}

/// The ELF entry point's first step: executes the real runtime directly when the
/// invocation is a plain pass-through, else returns for the ordinary start-up.
///
/// # Safety
/// `sp` must be the initial stack pointer the kernel handed the program (argc, argv,
/// NULL, envp, NULL, auxv), before anything else has run.
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
pub unsafe extern "C" fn pass_through(sp: *mut usize) {
    // SAFETY: the initial stack layout, per the caller.
    let (argc, argv) = unsafe { (read_volatile(sp), sp.add(1).cast::<*const u8>()) };
    // SAFETY: envp follows argv's NULL.
    let envp = unsafe { argv.add(argc + 1) };
    // Static buffers: zero pages from the kernel, where a stack array would need a
    // `memset` to be a valid `[u8]`. Nothing else runs yet, so nothing else touches them.
    static mut CANDIDATE: [u8; MAX_PATH] = [0; MAX_PATH];
    static mut CONFIG: [u8; MAX_CONFIG] = [0; MAX_CONFIG];
    static mut ATTR: [u64; 16] = [0; 16];
    // SAFETY: the only references to the buffers, in the program's only thread.
    let (buf, text, attr) = unsafe {
        (
            &mut *core::ptr::addr_of_mut!(CANDIDATE),
            &mut *core::ptr::addr_of_mut!(CONFIG),
            &mut *core::ptr::addr_of_mut!(ATTR),
        )
    };
    let args = RawStrs(argv);
    // A forced delete removes the pins here (the config buffer holds the directory's
    // entries meanwhile); an unforced one must first know whether the container still
    // runs, which the full path reads.
    let fast = is_pass_through(&args, 1)
        || delete_id(&args, 1).is_some_and(|id| {
            pins_absent(id, buf) || (delete_forced(&args, 1) && forget_early(id, buf, text, attr))
        });
    if !fast {
        return;
    }
    let env = RawStrs(envp);
    // The runtime's name, NUL-terminated where it lies (the environment, the file's text
    // or the default), as the full path's flag-environment-file-default order finds it.
    // An empty MOAT_RUNTIME counts as unset on the full path too.
    let name: &[u8] = match getenv(&env, RUNTIME_ENV).filter(|r| !r.is_empty()) {
        Some(r) => r,
        None => match read_config(getenv(&env, CONFIG_ENV), buf, text) {
            FileRuntime::Default => DEFAULT_RUNTIME.to_bytes(),
            FileRuntime::Named(from, to) => {
                let Some(end) = text.get_mut(to) else { return };
                // SAFETY: a valid element of the buffer (the closing quote).
                unsafe { write_volatile(end, 0) };
                text.get(from..to).unwrap_or(&[])
            }
            FileRuntime::Unsure => return,
        },
    };
    let mut slash = false;
    let mut k = 0;
    while let Some(&b) = name.get(k) {
        slash |= b == b'/';
        k += 1;
    }
    // A name with a slash is executed as it is (execvp does not search for it); one
    // without is searched for on PATH.
    let program = if slash {
        name.as_ptr()
    } else {
        let Some(path) = getenv(&env, "PATH") else {
            return;
        };
        if search(name, path, buf, probe_candidate).is_none() {
            return;
        }
        buf.as_ptr()
    };
    // What Command::exec does on the full path: an empty signal mask, SIGPIPE at default.
    let empty: u64 = 0;
    let default_action = [0usize; 4];
    // SAFETY: valid pointers to a sigset and a kernel sigaction of the sizes given.
    unsafe {
        raw::syscall4(
            raw::RT_SIGPROCMASK,
            libc::SIG_SETMASK as usize,
            &empty as *const u64 as usize,
            0,
            8,
        );
        raw::syscall4(
            raw::RT_SIGACTION,
            libc::SIGPIPE as usize,
            default_action.as_ptr() as usize,
            0,
            8,
        );
    }
    // argv[0] becomes the runtime's name, as on the full path; put back if execve fails.
    // SAFETY: argv has argc >= 1 entries here (is_pass_through found a subcommand).
    unsafe {
        let argv0 = argv.cast_mut();
        let was = read_volatile(argv0);
        write_volatile(argv0, name.as_ptr());
        raw::syscall4(
            raw::EXECVE,
            program as usize,
            argv as usize,
            envp as usize,
            0,
        );
        write_volatile(argv0, was);
    }
}

/// Reads the configuration file (`MOAT_RUNTIME_CONFIG`'s, else [`CONFIG_FILE`]) into
/// `text` and what it says about the runtime: [`FileRuntime::Default`] when there is no
/// such file, [`FileRuntime::Unsure`] when it cannot be read whole or
/// [`config_runtime`] is not sure. `buf` holds the default name meanwhile.
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
fn read_config(named: Option<&[u8]>, buf: &mut [u8], text: &mut [u8]) -> FileRuntime {
    const O_RDONLY_CLOEXEC: usize = 0o2000000;
    // Both names end in a NUL: the environment's in place, the default one in buf.
    let path = match named {
        Some(p) => p.as_ptr(),
        None => {
            if CONFIG_FILE.len() >= buf.len() {
                return FileRuntime::Unsure;
            }
            put(buf, 0, CONFIG_FILE.as_bytes());
            put(buf, CONFIG_FILE.len(), b"\0");
            buf.as_ptr()
        }
    };
    // SAFETY: a NUL-terminated path; plain flags.
    let fd = unsafe {
        raw::syscall4(
            raw::OPENAT,
            -100isize as usize,
            path as usize,
            O_RDONLY_CLOEXEC,
            0,
        )
    };
    if fd == -(libc::ENOENT as isize) {
        return FileRuntime::Default;
    }
    if fd < 0 {
        return FileRuntime::Unsure;
    }
    let mut len = 0;
    let complete = loop {
        let Some(room) = text.get_mut(len..) else {
            break false;
        };
        if room.is_empty() {
            break false;
        }
        // SAFETY: room is writable for room.len() bytes; fd is ours.
        let n = unsafe {
            raw::syscall4(
                raw::READ,
                fd as usize,
                room.as_mut_ptr() as usize,
                room.len(),
                0,
            )
        };
        if n < 0 {
            break false;
        }
        if n == 0 {
            break true;
        }
        len += n as usize;
    };
    // SAFETY: closing the descriptor opened above.
    unsafe { raw::syscall4(raw::CLOSE, fd as usize, 0, 0, 0) };
    match text.get(..len) {
        Some(t) if complete => config_runtime(t),
        _ => FileRuntime::Unsure,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pass(args: &[&str]) -> bool {
        let v: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        is_pass_through(&v[..], 0)
    }

    #[test]
    fn finds_the_subcommand_as_the_full_parser_does() {
        assert!(pass(&["start", "id"]));
        assert!(pass(&[
            "--root",
            "/run/x",
            "--log",
            "/l",
            "--log-format",
            "json",
            "kill",
            "id",
            "KILL"
        ]));
        assert!(pass(&["-root", "/r", "--systemd-cgroup", "state", "id"]));
        assert!(pass(&["--root=/r", "--", "kill", "id", "KILL"]));
        // `--debug` takes no value: the next argument is the subcommand.
        assert!(pass(&["--debug", "ps", "id"]));
        for slow in [
            &["create", "--bundle", "b", "id"][..],
            &["run", "id"],
            &["exec", "id", "sh"],
            &["features"],
            &["restore", "id"],
            &["delete", "--force", "id"],
            &["help"],
            &[],
            &["--root"],
            &["--moat-runtime", "crun", "start", "id"],
            &["--moat-runtime=crun", "start", "id"],
            &["-moat-runtime", "crun", "start", "id"],
            // A value flag swallows "start": the subcommand is "x".
            &["--root", "start", "x"],
            &["bogus"],
        ] {
            assert!(!pass(slow), "{slow:?}");
        }
        // A delete is fast only when the container has no pins, which only the entry
        // point can look at: here, its id is found as the full path finds it.
        let args = |a: &[&'static str]| a.iter().map(|x| x.as_bytes()).collect::<Vec<_>>();
        let id = |a: &[&'static str]| {
            let v = args(a);
            delete_id(&v[..], 0).map(|x| String::from_utf8_lossy(x).into_owned())
        };
        assert_eq!(id(&["delete", "--force", "c1"]).as_deref(), Some("c1"));
        assert_eq!(
            id(&["--root", "/r", "delete", "c.2"]).as_deref(),
            Some("c.2")
        );
        assert_eq!(id(&["delete", "-f", "a", "b"]).as_deref(), Some("b"));
        for none in [
            &["delete"][..],
            &["delete", "--force"],
            &["delete", "../x"],
            &["delete", ".."],
            &["delete", "a/b"],
            &["state", "c1"],
            &["--root", "delete", "c1"],
            &["--moat-runtime", "runc", "delete", "c1"],
        ] {
            assert_eq!(id(none), None, "{none:?}");
        }
        // A forced delete (its pins removed before libc) is read as the full path reads it.
        for (line, forced) in [
            (&["delete", "--force", "c1"][..], true),
            (&["--root", "/r", "delete", "-f", "c1"], true),
            (&["delete", "c1", "---force=true"], true),
            (&["delete", "-f=true", "c1"], true),
            (&["delete", "--force=false", "c1"], false),
            (&["delete", "-force-x", "c1"], false),
            (&["delete", "c1"], false),
            (&["-f", "delete", "c1"], false),
        ] {
            let v = args(line);
            assert_eq!(delete_forced(&v[..], 0), forced, "{line:?}");
            let full = crate::cli::parse(line.iter().map(|a| a.into()).collect()).unwrap();
            assert_eq!(crate::cli::delete_forced(&full.rest), forced, "{line:?}");
        }
        // Each command moat-runtime looks into is left to it, and every fast one is a
        // command the full parser knows.
        for c in FAST_COMMANDS {
            let c = std::str::from_utf8(c).unwrap();
            assert!(!["create", "run", "exec", "features", "restore", "delete"].contains(&c));
            let line = crate::cli::parse(vec![c.into(), "id".into()]).unwrap();
            assert_eq!(line.command.as_deref(), Some(c));
            assert_eq!(line.to_args(), [c, "id"]);
        }
    }

    /// On random command lines: whenever the early path takes a line, the full parser reads
    /// it as a pass-through of the same arguments to the default runtime; and it takes
    /// every plain pass-through line the full parser reads that way.
    #[test]
    fn agrees_with_the_full_parser_on_random_lines() {
        const WORDS: &[&str] = &[
            "start",
            "delete",
            "state",
            "kill",
            "create",
            "run",
            "exec",
            "features",
            "restore",
            "help",
            "spec",
            "list",
            "bogus",
            "id",
            "KILL",
            "--",
            "-",
            "",
            "--root",
            "-root",
            "--root=/r",
            "/r",
            "--log",
            "--log=x",
            "--log-format",
            "json",
            "--debug",
            "--systemd-cgroup",
            "--moat-runtime",
            "-moat-runtime",
            "crun",
            "--moat-runtime=crun",
            "--criu",
            "-v",
            "--help",
            "--bundle",
            "b",
            "=",
            "--=x",
            "---root",
            "--rootless",
            "true",
            "-f",
            "--force=true",
        ];
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..200_000 {
            let n = (next() % 7) as usize;
            let line: Vec<&str> = (0..n)
                .map(|_| WORDS[(next() % WORDS.len() as u64) as usize])
                .collect();
            let early = pass(&line);
            let full = crate::cli::parse(line.iter().map(|a| a.into()).collect());
            let full_plain = full.as_ref().is_ok_and(|l| {
                l.globals.runtime.is_none()
                    && l.command
                        .as_deref()
                        .is_some_and(|c| contains(FAST_COMMANDS, c.as_bytes()))
            });
            assert_eq!(early, full_plain, "{line:?}: {full:?}");
            if let Ok(l) = &full {
                if l.command.as_deref() == Some("delete") && l.globals.runtime.is_none() {
                    let v: Vec<&[u8]> = line.iter().map(|a| a.as_bytes()).collect();
                    let forced = crate::cli::delete_forced(&l.rest);
                    assert_eq!(delete_forced(&v[..], 0), forced, "{line:?}");
                }
            }
            if early {
                let args: Vec<String> = full
                    .unwrap()
                    .to_args()
                    .into_iter()
                    .map(|a| a.into_string().unwrap())
                    .collect();
                assert_eq!(args, line, "{line:?}");
            }
        }
    }

    #[test]
    fn registry_pins_name_their_cgroup_id() {
        let name = |id: u64| format!("{}{id}", moat_cgroup::REGISTRY_PIN);
        assert_eq!(registry_id(name(7).as_bytes()), Some(7));
        assert_eq!(registry_id(name(u64::MAX).as_bytes()), Some(u64::MAX));
        for not in [
            "registry-",
            "registry-1x",
            "registry-18446744073709551616",
            "info",
            "registry",
        ] {
            assert_eq!(registry_id(not.as_bytes()), None, "{not}");
        }
    }

    #[test]
    fn directory_entries_are_read_as_the_kernel_writes_them() {
        // Records as getdents64 lays them out: inode, offset, length, type, name, NUL,
        // padding to 8 bytes.
        let mut batch = Vec::new();
        for name in [".", "..", "info", "registry-42"] {
            let len = (19 + name.len() + 1).div_ceil(8) * 8;
            let start = batch.len();
            batch.extend_from_slice(&1u64.to_ne_bytes());
            batch.extend_from_slice(&0i64.to_ne_bytes());
            batch.extend_from_slice(&(len as u16).to_ne_bytes());
            batch.push(8);
            batch.extend_from_slice(name.as_bytes());
            batch.resize(start + len, 0);
        }
        let mut names = Vec::new();
        let mut at = 0;
        while let Some((name, next)) = dirent_at(&batch, at) {
            names.push(String::from_utf8(name.to_vec()).unwrap());
            at = next;
        }
        assert_eq!(names, [".", "..", "info", "registry-42"]);
        assert_eq!(at, batch.len());
        // Truncated or malformed records end the walk.
        assert_eq!(dirent_at(&batch[..30], 24), None);
        let mut bad = batch.clone();
        bad[16..18].copy_from_slice(&4u16.to_ne_bytes());
        assert_eq!(dirent_at(&bad, 0), None);
        let mut unterminated = batch[..24].to_vec();
        unterminated[19..24].fill(b'x');
        unterminated[16..18].copy_from_slice(&24u16.to_ne_bytes());
        assert_eq!(dirent_at(&unterminated, 0), None);
    }

    #[test]
    fn the_environment_is_read_as_getenv_reads_it() {
        let env: Vec<&[u8]> = [
            "A=1",
            "PATH=",
            "PATH=/x",
            "MOAT_RUNTIMEX=1",
            "MOAT_RUNTIME=crun",
        ]
        .iter()
        .map(|a| a.as_bytes())
        .collect();
        assert_eq!(getenv(&env[..], "PATH"), Some(&b""[..]));
        assert_eq!(getenv(&env[..], "MOAT_RUNTIME"), Some(&b"crun"[..]));
        assert_eq!(getenv(&env[..], "A"), Some(&b"1"[..]));
        assert_eq!(getenv(&env[..], "MOAT_RUNTIME_CONFIG"), None);
    }

    fn file_runtime(text: &str) -> Option<Option<String>> {
        match config_runtime(text.as_bytes()) {
            FileRuntime::Default => Some(None),
            FileRuntime::Named(a, b) => Some(Some(text[a..b].to_string())),
            FileRuntime::Unsure => None,
        }
    }

    #[test]
    fn reads_what_the_installer_writes_and_nothing_it_is_unsure_of() {
        let some = |s: &str| Some(Some(s.to_string()));
        assert_eq!(file_runtime(""), Some(None));
        assert_eq!(
            file_runtime("# moat-runtime on this node\nruntime = \"/usr/sbin/runc\"\nlauncher = \"/opt/moat/bin/moat\"\n"),
            some("/usr/sbin/runc")
        );
        assert_eq!(
            file_runtime("launcher = '/x'\nports_from_spec = true # c\n"),
            Some(None)
        );
        assert_eq!(
            file_runtime("without_policy = \"refuse\"\nruntime = 'runc'\n"),
            some("runc")
        );
        assert_eq!(file_runtime("\truntime\t=\t'crun'\t#\n\n"), some("crun"));
        for unsure in [
            "runtime = \"\"",
            "runtime = \"a\\tb\"",
            "runtime = \"a\"\nruntime = \"b\"",
            "runtime = \"a\" x",
            "runtime = \"a",
            "runtime = a",
            "\"runtime\" = \"a\"",
            "runtime.x = \"a\"",
            "[table]\nruntime = \"a\"",
            "runtime = \"a\"\r\n",
            "runtime = \"é\"",
            "ports_from_spec = yes",
            "ports_from_spec = \"true\"",
            "without_policy = \"pass\"",
            "without_policy = refuse",
            "max_abi = 3",
            "other = 1",
            "runtime = \"\"\"a\"\"\"",
            "= \"a\"",
        ] {
            assert_eq!(file_runtime(unsure), None, "{unsure:?}");
        }
    }

    /// On random files: whatever the early reader is sure of, the full path's TOML parser
    /// reads the same way (same runtime, no error).
    #[test]
    fn agrees_with_the_full_parser_on_random_files() {
        const PIECES: &[&str] = &[
            "runtime",
            "launcher",
            "ports_from_spec",
            "without_policy",
            "ports",
            "refuse",
            "other",
            " ",
            "\t",
            "=",
            "\"",
            "'",
            "/usr/sbin/runc",
            "runc",
            "true",
            "false",
            "#",
            "# note",
            "\n",
            "\n",
            "\n",
            "[x]",
            "\\",
            "\r",
            ".",
            "\"\"",
            "1",
            "é",
            "-",
        ];
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut sure = 0;
        for round in 0..300_000 {
            let text: String = if round % 2 == 0 {
                // Mostly well-formed lines, to reach the interesting cases often.
                (0..(next() % 4))
                    .map(|_| {
                        let key = [
                            "runtime",
                            "launcher",
                            "ports_from_spec",
                            "runtime",
                            "without_policy",
                        ][(next() % 5) as usize];
                        let value = [
                            "\"/usr/sbin/runc\"",
                            "'crun'",
                            "true",
                            "false",
                            "\"\"",
                            "\"a b\"",
                            "\"refuse\"",
                            "'ports'",
                        ][(next() % 8) as usize];
                        let pad = [" ", "", "\t", "  "][(next() % 4) as usize];
                        let tail = ["", " # c", "#c", " x"][(next() % 4) as usize];
                        format!("{pad}{key}{pad}={pad}{value}{tail}\n")
                    })
                    .collect()
            } else {
                (0..(next() % 12))
                    .map(|_| PIECES[(next() % PIECES.len() as u64) as usize])
                    .collect()
            };
            let Some(early) = file_runtime(&text) else {
                continue;
            };
            sure += 1;
            let full = crate::runtime_config::FileConfig::parse(std::path::Path::new("f"), &text)
                .unwrap_or_else(|e| panic!("{text:?}: early read {early:?}, full: {e}"));
            assert_eq!(early, full.runtime, "{text:?}");
        }
        assert!(sure > 10_000, "{sure}");
    }

    #[test]
    fn searches_path_as_the_full_path_does() {
        let mut buf = [0u8; 64];
        let mut seen = Vec::new();
        let found = search(b"runc", b"/a::/b:/c", &mut buf, |c| {
            seen.push(String::from_utf8(c.to_vec()).unwrap());
            match c {
                b"/b/runc\0" => Probe::Executable,
                _ => Probe::Skip,
            }
        });
        assert_eq!(found, Some(7));
        assert_eq!(&buf[..8], b"/b/runc\0");
        assert_eq!(seen, ["/a/runc\0", "./runc\0", "/b/runc\0"]);
        assert_eq!(search(b"runc", b"/a", &mut buf, |_| Probe::Skip), None);
        assert_eq!(search(b"runc", b"/a:/b", &mut buf, |_| Probe::Stop), None);
        assert_eq!(
            search(b"x/runc", b"/a", &mut buf, |_| Probe::Executable),
            None
        );
        let long = "d".repeat(70);
        assert_eq!(
            search(b"runc", long.as_bytes(), &mut buf, |_| Probe::Executable),
            None
        );
    }

    #[test]
    fn probes_real_files() {
        let d = tempfile::tempdir().unwrap();
        let exe = d.path().join("runc");
        std::fs::write(&exe, "#!/bin/sh\n").unwrap();
        let cstr = |p: &std::path::Path| {
            let mut v = p.as_os_str().as_encoded_bytes().to_vec();
            v.push(0);
            v
        };
        assert_eq!(
            probe_candidate(&cstr(&exe)),
            Probe::Skip,
            "not executable yet"
        );
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(probe_candidate(&cstr(&exe)), Probe::Executable);
        assert_eq!(probe_candidate(&cstr(d.path())), Probe::Skip, "a directory");
        assert_eq!(probe_candidate(&cstr(&d.path().join("none"))), Probe::Skip);
    }
}
