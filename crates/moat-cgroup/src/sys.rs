//! The `bpf(2)` commands moat uses, and bpffs. All `unsafe` of the crate is here.

use crate::insn::Insn;
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

// Commands (enum bpf_cmd).
const MAP_CREATE: libc::c_int = 0;
const MAP_LOOKUP_ELEM: libc::c_int = 1;
const MAP_UPDATE_ELEM: libc::c_int = 2;
const MAP_DELETE_ELEM: libc::c_int = 3;
const MAP_GET_NEXT_KEY: libc::c_int = 4;
const PROG_LOAD: libc::c_int = 5;
const OBJ_PIN: libc::c_int = 6;
const OBJ_GET: libc::c_int = 7;
const PROG_ATTACH: libc::c_int = 8;
const PROG_TEST_RUN: libc::c_int = 10;
const OBJ_GET_INFO_BY_FD: libc::c_int = 15;
const PROG_QUERY: libc::c_int = 16;

/// `BPF_F_ALLOW_MULTI`: other programs on the same cgroup (the engine's, a parent's) keep
/// running; for sock_addr hooks every program must allow.
const F_ALLOW_MULTI: u32 = 2;

/// `BPF_FS_MAGIC`.
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

/// Map types (enum bpf_map_type).
#[derive(Copy, Clone, Debug)]
#[repr(u32)]
pub enum MapType {
    /// `BPF_MAP_TYPE_HASH`.
    Hash = 1,
    /// `BPF_MAP_TYPE_ARRAY`.
    Array = 2,
    /// `BPF_MAP_TYPE_PERCPU_HASH`.
    PercpuHash = 5,
    /// `BPF_MAP_TYPE_PERCPU_ARRAY`.
    PercpuArray = 6,
}

/// Program types (enum bpf_prog_type).
#[derive(Copy, Clone, Debug)]
#[repr(u32)]
pub enum ProgType {
    /// `BPF_PROG_TYPE_CGROUP_SKB`.
    CgroupSkb = 8,
    /// `BPF_PROG_TYPE_CGROUP_SOCK_ADDR`.
    CgroupSockAddr = 18,
}

/// Attach points (enum bpf_attach_type).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum AttachType {
    /// `BPF_CGROUP_INET_INGRESS`.
    Ingress = 0,
    /// `BPF_CGROUP_INET_EGRESS`.
    Egress = 1,
    /// `BPF_CGROUP_INET4_BIND`.
    Bind4 = 8,
    /// `BPF_CGROUP_INET6_BIND`.
    Bind6 = 9,
    /// `BPF_CGROUP_INET4_CONNECT`.
    Connect4 = 10,
    /// `BPF_CGROUP_INET6_CONNECT`.
    Connect6 = 11,
    /// `BPF_CGROUP_UDP4_SENDMSG`.
    Sendmsg4 = 14,
    /// `BPF_CGROUP_UDP6_SENDMSG`.
    Sendmsg6 = 15,
}

/// `union bpf_attr`, as large as any command moat uses needs, zero-filled.
#[repr(C, align(8))]
struct Attr([u8; 128]);

impl Attr {
    fn new() -> Attr {
        Attr([0; 128])
    }
    fn u32(&mut self, at: usize, v: u32) -> &mut Self {
        self.0[at..at + 4].copy_from_slice(&v.to_ne_bytes());
        self
    }
    fn u64(&mut self, at: usize, v: u64) -> &mut Self {
        self.0[at..at + 8].copy_from_slice(&v.to_ne_bytes());
        self
    }
    fn bytes(&mut self, at: usize, v: &[u8]) -> &mut Self {
        self.0[at..at + v.len()].copy_from_slice(v);
        self
    }
}

fn bpf(cmd: libc::c_int, attr: &mut Attr) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a valid, zero-padded bpf_attr of 128 bytes for the duration of the
    // call; every pointer stored in it (keys, values, instructions, paths) points to memory
    // the caller keeps alive across this call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut Attr,
            std::mem::size_of::<Attr>(),
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn fd_from(r: libc::c_long) -> OwnedFd {
    // SAFETY: the kernel just returned this descriptor to us and nothing else owns it.
    unsafe { OwnedFd::from_raw_fd(r as RawFd) }
}

/// A short object name (at most 15 bytes, as the kernel keeps).
fn name16(name: &str) -> [u8; 16] {
    let mut n = [0u8; 16];
    let b = name.as_bytes();
    let len = b.len().min(15);
    n[..len].copy_from_slice(&b[..len]);
    n
}

/// `BPF_F_NO_PREALLOC`: a hash map takes memory for the entries it holds, not for
/// `max_entries` up front (a container that uses three ports costs three entries).
pub const F_NO_PREALLOC: u32 = 1;

/// Creates a map.
pub fn map_create(
    kind: MapType,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    flags: u32,
    name: &str,
) -> io::Result<OwnedFd> {
    let mut a = Attr::new();
    a.u32(0, kind as u32)
        .u32(4, key_size)
        .u32(8, value_size)
        .u32(12, max_entries)
        .u32(16, flags)
        .bytes(28, &name16(name));
    bpf(MAP_CREATE, &mut a).map(fd_from)
}

/// Loads a program; on a verifier refusal the error carries the verifier's log.
pub fn prog_load(
    kind: ProgType,
    attach: AttachType,
    insns: &[Insn],
    name: &str,
) -> Result<OwnedFd, (io::Error, String)> {
    let license = c"GPL";
    let mut log = vec![0u8; 64 * 1024];
    let mut a = Attr::new();
    a.u32(0, kind as u32)
        .u32(4, insns.len() as u32)
        .u64(8, insns.as_ptr() as u64)
        .u64(16, license.as_ptr() as u64)
        .bytes(48, &name16(name))
        .u32(68, attach as u32);
    if let Ok(fd) = bpf(PROG_LOAD, &mut a) {
        return Ok(fd_from(fd));
    }
    // Again with the verifier's log, only to explain the failure.
    a.u32(24, 1)
        .u32(28, log.len() as u32)
        .u64(32, log.as_mut_ptr() as u64);
    match bpf(PROG_LOAD, &mut a) {
        Ok(fd) => Ok(fd_from(fd)),
        Err(e) => {
            let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
            Err((e, String::from_utf8_lossy(&log[..end]).into_owned()))
        }
    }
}

/// Attaches `prog` to the cgroup open at `cgroup`, beside any programs already there.
pub fn prog_attach(cgroup: &OwnedFd, prog: &OwnedFd, attach: AttachType) -> io::Result<()> {
    let mut a = Attr::new();
    a.u32(0, cgroup.as_raw_fd() as u32)
        .u32(4, prog.as_raw_fd() as u32)
        .u32(8, attach as u32)
        .u32(12, F_ALLOW_MULTI);
    bpf(PROG_ATTACH, &mut a).map(drop)
}

/// The kernel ids of the programs attached to the cgroup open at `cgroup` at `attach` (its
/// own, not its ancestors'; the kernel allows at most 64 on one hook).
pub fn prog_ids(cgroup: &OwnedFd, attach: AttachType) -> io::Result<Vec<u32>> {
    let mut ids = [0u32; 64];
    let mut a = Attr::new();
    a.u32(0, cgroup.as_raw_fd() as u32)
        .u32(4, attach as u32)
        .u64(16, ids.as_mut_ptr() as u64)
        .u32(24, ids.len() as u32);
    bpf(PROG_QUERY, &mut a)?;
    let n = u32::from_ne_bytes([a.0[24], a.0[25], a.0[26], a.0[27]]) as usize;
    Ok(ids[..n.min(ids.len())].to_vec())
}

/// A loaded program's kernel id (`bpf_prog_info.id`).
pub fn prog_id(prog: &OwnedFd) -> io::Result<u32> {
    let mut info = [0u8; 8];
    let mut a = Attr::new();
    a.u32(0, prog.as_raw_fd() as u32)
        .u32(4, info.len() as u32)
        .u64(8, info.as_mut_ptr() as u64);
    bpf(OBJ_GET_INFO_BY_FD, &mut a)?;
    Ok(u32::from_ne_bytes([info[4], info[5], info[6], info[7]]))
}

fn cpath(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
}

/// Runs `prog` `repeat` times on the packet `data` in the kernel (`BPF_PROG_TEST_RUN`) and
/// returns its return value and the mean time per run in nanoseconds, as the kernel
/// measures it: the cost of a program without the noise of a real workload around it.
pub fn prog_test_run(prog: &OwnedFd, data: &[u8], repeat: u32) -> io::Result<(u32, u32)> {
    let mut out = vec![0u8; data.len() + 256];
    let mut a = Attr::new();
    a.u32(0, prog.as_raw_fd() as u32)
        .u32(8, data.len() as u32)
        .u32(12, out.len() as u32)
        .u64(16, data.as_ptr() as u64)
        .u64(24, out.as_mut_ptr() as u64)
        .u32(32, repeat);
    bpf(PROG_TEST_RUN, &mut a)?;
    let field = |at: usize| u32::from_ne_bytes([a.0[at], a.0[at + 1], a.0[at + 2], a.0[at + 3]]);
    Ok((field(4), field(36)))
}

/// Pins `fd` (a map or program) at `path` in bpffs.
pub fn obj_pin(fd: &OwnedFd, path: &Path) -> io::Result<()> {
    let p = cpath(path)?;
    let mut a = Attr::new();
    a.u64(0, p.as_ptr() as u64).u32(8, fd.as_raw_fd() as u32);
    bpf(OBJ_PIN, &mut a).map(drop)
}

/// Opens the object pinned at `path`.
pub fn obj_get(path: &Path) -> io::Result<OwnedFd> {
    let p = cpath(path)?;
    let mut a = Attr::new();
    a.u64(0, p.as_ptr() as u64);
    bpf(OBJ_GET, &mut a).map(fd_from)
}

/// A map's type, key size and value size (`struct bpf_map_info`).
pub fn map_shape(map: &OwnedFd) -> io::Result<(u32, u32, u32)> {
    let mut info = [0u8; 88];
    let mut a = Attr::new();
    a.u32(0, map.as_raw_fd() as u32)
        .u32(4, info.len() as u32)
        .u64(8, info.as_mut_ptr() as u64);
    bpf(OBJ_GET_INFO_BY_FD, &mut a)?;
    let field =
        |at: usize| u32::from_ne_bytes([info[at], info[at + 1], info[at + 2], info[at + 3]]);
    Ok((field(0), field(8), field(12)))
}

/// Reads the value under `key` into `value`; `Ok(false)` when there is none.
pub fn map_lookup(map: &OwnedFd, key: &[u8], value: &mut [u8]) -> io::Result<bool> {
    let mut a = Attr::new();
    a.u32(0, map.as_raw_fd() as u32)
        .u64(8, key.as_ptr() as u64)
        .u64(16, value.as_mut_ptr() as u64);
    match bpf(MAP_LOOKUP_ELEM, &mut a) {
        Ok(_) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Writes `value` under `key`.
pub fn map_update(map: &OwnedFd, key: &[u8], value: &[u8]) -> io::Result<()> {
    let mut a = Attr::new();
    a.u32(0, map.as_raw_fd() as u32)
        .u64(8, key.as_ptr() as u64)
        .u64(16, value.as_ptr() as u64);
    bpf(MAP_UPDATE_ELEM, &mut a).map(drop)
}

/// Removes `key`; `Ok(false)` when there was none.
pub fn map_delete(map: &OwnedFd, key: &[u8]) -> io::Result<bool> {
    let mut a = Attr::new();
    a.u32(0, map.as_raw_fd() as u32).u64(8, key.as_ptr() as u64);
    match bpf(MAP_DELETE_ELEM, &mut a) {
        Ok(_) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
        Err(e) => Err(e),
    }
}

/// The key after `key` (the first key when `key` is `None`); `Ok(false)` at the end.
pub fn map_next_key(map: &OwnedFd, key: Option<&[u8]>, next: &mut [u8]) -> io::Result<bool> {
    let mut a = Attr::new();
    a.u32(0, map.as_raw_fd() as u32)
        .u64(8, key.map_or(0, |k| k.as_ptr() as u64))
        .u64(16, next.as_mut_ptr() as u64);
    match bpf(MAP_GET_NEXT_KEY, &mut a) {
        Ok(_) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Whether `path` is a mounted bpffs.
pub fn is_bpffs(path: &Path) -> io::Result<bool> {
    Ok(fs_magic(path)? == BPF_FS_MAGIC)
}

/// `CGROUP2_SUPER_MAGIC`.
const CGROUP2_MAGIC: i64 = 0x6367_7270;

/// Whether `path` is a cgroup v2 mount (false when it is missing).
pub fn is_cgroup2(path: &Path) -> bool {
    fs_magic(path).is_ok_and(|m| m == CGROUP2_MAGIC)
}

/// The type of the file system `path` is on (`f_type` of statfs).
fn fs_magic(path: &Path) -> io::Result<i64> {
    let p = cpath(path)?;
    // SAFETY: statfs is plain data; zeroed is a valid value for the kernel to overwrite.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `p` is a NUL-terminated path and `st` a valid statfs for the call.
    if unsafe { libc::statfs(p.as_ptr(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(st.f_type as i64)
}

/// The whole of a small kernel-generated file (/proc, /sys): one read into a buffer of
/// `hint` bytes, more only if it is larger. `std::fs::read_to_string` sees such files as
/// empty (size 0), starts with 32-byte reads and doubles, and each read of a /proc file
/// regenerates its text: eight reads for this host's 2 KiB mountinfo, on the path of every
/// container start.
///
/// Plain `read`s rather than `File::read_to_end`, which asks for the file's size and
/// position first (two more system calls, for a size of 0).
pub fn read_small(path: &Path, hint: usize) -> io::Result<String> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut buf = vec![0u8; hint.max(64)];
    let mut len = 0;
    loop {
        if len == buf.len() {
            buf.resize(buf.len() * 2, 0);
        }
        match f.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(len);
    String::from_utf8(buf).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Mounts a bpffs at `path` (mode 0700: the pins are root's).
pub fn mount_bpffs(path: &Path) -> io::Result<()> {
    let p = cpath(path)?;
    // SAFETY: all strings are NUL-terminated and live across the call.
    let r = unsafe {
        libc::mount(
            c"bpf".as_ptr(),
            p.as_ptr(),
            c"bpf".as_ptr(),
            0,
            c"mode=0700".as_ptr().cast(),
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The number of possible CPUs: the kernel writes one value slot for each into the buffer
/// of a per-CPU map lookup, so a buffer sized from anything else is overrun. Only
/// [`PossibleCpus::get`] makes one.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct PossibleCpus(usize);

impl PossibleCpus {
    /// This machine's count, from /sys/devices/system/cpu/possible.
    pub fn get() -> io::Result<PossibleCpus> {
        possible_cpus().map(PossibleCpus)
    }
    /// The count.
    pub fn count(self) -> usize {
        self.0
    }
}

/// A number of CPUs no smaller than the possible ones: the bits of the kernel's CPU mask
/// (at least `nr_cpu_ids`, in whole words; 256 on this project's 2-vCPU VM), whose size
/// the `sched_getaffinity` system call returns. A per-CPU map *update* reads one value slot
/// per possible CPU from the buffer it is given, so a zeroed buffer of this many slots
/// serves it, for one system call where [`PossibleCpus::get`] (exact, which reading
/// per-CPU values needs) takes four on sysfs.
pub fn cpus_upper_bound() -> io::Result<usize> {
    // Room for 65,536 CPUs (8 KiB of mask); the kernel's mask is at most 1 KiB (8192).
    // The raw system call: glibc's wrapper returns 0, not the mask's size.
    let mut mask = vec![0u64; 1024];
    // SAFETY: the raw system call writes at most the length given into `mask`, which
    // lives for the call; pid 0 is this thread.
    let n = unsafe {
        libc::syscall(
            libc::SYS_sched_getaffinity,
            0,
            mask.len() * 8,
            mask.as_mut_ptr(),
        )
    };
    if n <= 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize * 8)
}

fn possible_cpus() -> io::Result<usize> {
    let text = read_small(Path::new("/sys/devices/system/cpu/possible"), 256)?;
    let bad = || {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("cpu list `{}`", text.trim()),
        )
    };
    let mut n = 0;
    for part in text.trim().split(',') {
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a, b),
            None => (part, part),
        };
        let a: usize = a.parse().map_err(|_| bad())?;
        let b: usize = b.parse().map_err(|_| bad())?;
        n = n.max(b + 1).max(a + 1);
    }
    Ok(n)
}
