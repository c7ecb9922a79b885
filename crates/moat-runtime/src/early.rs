//! The pass-through before libc: most runtime invocations go straight to the real runtime
//! without the C library ever starting.
//!
//! An engine runs moat-runtime three times per container life (`create`, `start`,
//! `delete`), and two of those only hand their arguments to runc. On the VM moat is
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
//!   the next argument), and `--moat-runtime` is not among them;
//! - neither `MOAT_RUNTIME` nor `MOAT_RUNTIME_CONFIG` is set, and `/etc/moat/runtime.toml`
//!   does not exist, so the runtime is `runc`;
//! - `PATH` is set and `runc` is found on it as [`crate::runtime_config::resolve_in_path`]
//!   finds it.
//!
//! Then `runc` is executed with the same `argv[0]`, arguments and environment, after the
//! two things `std::process::Command::exec` does on the full path: an empty signal mask
//! and `SIGPIPE` at its default action. If `execve` fails, the full path runs and reports.
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
/// `features` and `restore`, and the help commands, whose output should stay whatever the
/// full path prints).
pub const FAST_COMMANDS: &[&[u8]] = &[
    b"start",
    b"delete",
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
    let mut i = first;
    while let Some(arg) = args.at(i) {
        i += 1;
        if eq(arg, b"--") {
            continue;
        }
        if arg.len() < 2 || arg.first() != Some(&b'-') {
            return contains(FAST_COMMANDS, arg);
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
            return false;
        }
        let takes_value = GLOBAL_VALUE_FLAGS.iter().any(|f| eq(f.as_bytes(), name));
        if takes_value && !inline {
            if args.at(i).is_none() {
                return false;
            }
            i += 1;
        }
    }
    false
}

/// Whether the environment leaves the runtime to the configuration file and the default
/// (no `MOAT_RUNTIME`, no `MOAT_RUNTIME_CONFIG`), and its `PATH`.
pub fn default_runtime_env<S: Strings + ?Sized>(env: &S) -> Option<&[u8]> {
    let mut path = None;
    let mut i = 0;
    while let Some(var) = env.at(i) {
        i += 1;
        if is_variable(var, RUNTIME_ENV) || is_variable(var, CONFIG_ENV) {
            return None;
        }
        if path.is_none() && starts_with(var, b"PATH=") {
            path = var.get(5..);
        }
    }
    path
}

/// Whether `var` (`NAME=value`) sets `name`.
fn is_variable(var: &[u8], name: &str) -> bool {
    starts_with(var, name.as_bytes()) && var.get(name.len()) == Some(&b'=')
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

    pub const EXECVE: usize = 59;
    pub const NEWFSTATAT: usize = 262;
    pub const FACCESSAT2: usize = 439;
    pub const RT_SIGPROCMASK: usize = 14;
    pub const RT_SIGACTION: usize = 13;

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
    const AT_FDCWD: isize = -100;
    let mut st = core::mem::MaybeUninit::<[u64; STAT_SIZE / 8]>::uninit();
    // SAFETY: c is NUL-terminated (search writes the NUL); st has room for struct stat.
    let r = unsafe {
        raw::syscall4(
            raw::NEWFSTATAT,
            AT_FDCWD as usize,
            c.as_ptr() as usize,
            st.as_mut_ptr() as usize,
            0,
        )
    };
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
    let r = unsafe {
        raw::syscall4(
            raw::FACCESSAT2,
            AT_FDCWD as usize,
            c.as_ptr() as usize,
            X_OK,
            AT_EACCESS,
        )
    };
    match r {
        0 => Probe::Executable,
        // A kernel without faccessat2 (before 5.8): the full path knows better.
        r if r < 0 && -r == 38 => Probe::Stop,
        _ => Probe::Skip,
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
    if !is_pass_through(&RawStrs(argv), 1) {
        return;
    }
    let env = RawStrs(envp);
    let Some(path) = default_runtime_env(&env) else {
        return;
    };
    // A static buffer: zero pages from the kernel, where a stack array would need a
    // `memset` to be a valid `[u8]`. Nothing else runs yet, so nothing else touches it.
    static mut CANDIDATE: [u8; MAX_PATH] = [0; MAX_PATH];
    // SAFETY: the only reference to CANDIDATE, in the program's only thread.
    let buf = unsafe { &mut *core::ptr::addr_of_mut!(CANDIDATE) };
    if config_file_may_exist(buf) {
        return;
    }
    if search(DEFAULT_RUNTIME.to_bytes(), path, buf, probe_candidate).is_none() {
        return;
    }
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
        write_volatile(argv0, DEFAULT_RUNTIME.as_ptr().cast::<u8>());
        raw::syscall4(
            raw::EXECVE,
            buf.as_ptr() as usize,
            argv as usize,
            envp as usize,
            0,
        );
        write_volatile(argv0, was);
    }
}

/// Whether the configuration file ([`CONFIG_FILE`]) may exist (anything but "no such
/// file"); `buf` holds its NUL-terminated name meanwhile.
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
fn config_file_may_exist(buf: &mut [u8]) -> bool {
    if CONFIG_FILE.len() >= buf.len() {
        return true;
    }
    put(buf, 0, CONFIG_FILE.as_bytes());
    put(buf, CONFIG_FILE.len(), b"\0");
    let mut st = core::mem::MaybeUninit::<[u64; STAT_SIZE / 8]>::uninit();
    // SAFETY: a NUL-terminated path and room for struct stat.
    let r = unsafe {
        raw::syscall4(
            raw::NEWFSTATAT,
            -100isize as usize,
            buf.as_ptr() as usize,
            st.as_mut_ptr() as usize,
            0,
        )
    };
    r != -(libc::ENOENT as isize)
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
            "delete",
            "--force",
            "id"
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
        // Each command moat-runtime looks into is left to it, and every fast one is a
        // command the full parser knows.
        for c in FAST_COMMANDS {
            let c = std::str::from_utf8(c).unwrap();
            assert!(!["create", "run", "exec", "features", "restore"].contains(&c));
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
    fn the_environment_must_leave_the_runtime_to_the_default() {
        let env = |v: &[&'static str]| {
            let v: Vec<&'static [u8]> = v.iter().map(|a| a.as_bytes()).collect();
            default_runtime_env(&v[..]).map(<[u8]>::to_vec)
        };
        assert_eq!(
            env(&["A=1", "PATH=/usr/bin:/bin"]),
            Some(b"/usr/bin:/bin".to_vec())
        );
        assert_eq!(env(&["PATH=", "PATH=/x"]), Some(Vec::new()));
        assert_eq!(env(&["A=1"]), None);
        assert_eq!(env(&["PATH=/bin", "MOAT_RUNTIME=crun"]), None);
        assert_eq!(env(&["MOAT_RUNTIME=", "PATH=/bin"]), None);
        assert_eq!(env(&["MOAT_RUNTIME_CONFIG=/c", "PATH=/bin"]), None);
        assert_eq!(
            env(&["MOAT_RUNTIMEX=1", "PATH=/bin"]),
            Some(b"/bin".to_vec())
        );
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
