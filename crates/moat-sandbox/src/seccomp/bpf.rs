//! The seccomp program of each [`Seal`], assembled from [`TABLE`] when moat is compiled.
//!
//! # Why the program is assembled here rather than by seccompiler
//!
//! The filter is attached on every sandboxed launch, and attaching is not free: the kernel
//! checks the program, converts it to eBPF and JIT-compiles it (`CONFIG_BPF_JIT_ALWAYS_ON`
//! on the development machine), at a cost that grows with its length; then, with interrupts
//! off, it runs it once for every system call number of the native and compat ABIs to find
//! the numbers it always allows (the action cache), at a cost that grows with the path most
//! numbers take through it. Measured on the development machine (6.18 kernel, release
//! build, medians of 2000 fresh children per program, interleaved; the measurement
//! `attach_cost_assembled_vs_seccompiler`, compiled with `--cfg moat_bench`), a program
//! of seccompiler's rule compiler for moat's socket rules alone had 102 instructions and
//! took 83-92 us to attach, against 43-48 us for a hand-laid program of 23 and 21-25 us for
//! a lone `ret ALLOW`; building seccompiler's rule objects in the launching process took
//! another 49-67 us. Its generic layout (a `jeq` and a `ret` per call, two jumps and a `ret`
//! per rule, a reload per condition, no ranges) cannot get near that size.
//!
//! So the program is laid out here, from the table, by a `const` assembler, in a `static`
//! per seal: a launch does no work to get it, and a mistake (a jump out of reach, a program
//! that runs off its end, two rows giving one number two meanings) is a build error.
//!
//! The layout: the architecture check (another ABI kills: the numbers differ per ABI), the
//! x32 bit (kills), then a binary search over the system call numbers the table names in
//! force (each number refused outright, or sent to the `ioctl` or `socket` argument checks),
//! so that nearly every number, which the table does not name, is allowed after a handful of
//! comparisons: that is the path the kernel's action-cache pass takes for each number. The
//! socket checks load each argument once and compare the family, the type and the protocol
//! against the rows in force; every other call is allowed.

use super::table::{Action, Entry, Seal, Target, TABLE};
use super::{NATIVE_AUDIT_ARCH, REFUSAL_ERRNO};
use std::mem::offset_of;

/// One classic-BPF instruction (`struct sock_filter`).
pub type Insn = libc::sock_filter;

/// What the program returns (`linux/seccomp.h`).
pub(super) const RET_ALLOW: u32 = libc::SECCOMP_RET_ALLOW;
pub(super) const RET_REFUSE: u32 =
    libc::SECCOMP_RET_ERRNO | (REFUSAL_ERRNO as u32 & libc::SECCOMP_RET_DATA);
pub(super) const RET_KILL: u32 = libc::SECCOMP_RET_KILL_PROCESS;
pub(super) const RET_NOTIFY: u32 = crate::notify::SECCOMP_RET_USER_NOTIF;

// Where the program reads `struct seccomp_data`.
const NR: u32 = offset_of!(libc::seccomp_data, nr) as u32;
const ARCH: u32 = offset_of!(libc::seccomp_data, arch) as u32;

/// Offset of the low 32 bits of argument `index` (what the kernel reads of an `int`; the
/// upper half of the register is ignored, so it must be here too).
const fn arg_low(index: u32) -> u32 {
    let arg = offset_of!(libc::seccomp_data, args) as u32 + 8 * index;
    if cfg!(target_endian = "little") {
        arg
    } else {
        arg + 4
    }
}

/// `SOCK_TYPE_MASK`: the socket type is the low four bits of `socket`'s second argument.
const SOCK_TYPE_MASK: u32 = 0xf;

/// `domain & INET_FAMILY_MASK == AF_INET` holds for `AF_INET` and `AF_INET6` only.
const INET_FAMILY_MASK: u32 = !((libc::AF_INET ^ libc::AF_INET6) as u32);
const _: () = assert!(
    (libc::AF_INET ^ libc::AF_INET6).count_ones() == 1 && libc::AF_INET6 & !libc::AF_INET != 0
);

/// The most instructions a program holds (the largest seal needs about 70).
const CAPACITY: usize = 128;
/// The most labels a program uses.
const LABELS: usize = 64;
/// The most distinct number ranges the table names.
const RANGES: usize = 48;

/// An assembled program: the first `len` of `insns`.
#[derive(Copy, Clone)]
pub struct Program {
    insns: [Insn; CAPACITY],
    len: usize,
}

impl Program {
    /// The instructions.
    pub fn instructions(&self) -> &[Insn] {
        &self.insns[..self.len]
    }
}

const NOP: Insn = Insn {
    code: 0,
    jt: 0,
    jf: 0,
    k: 0,
};

const EMPTY: Program = Program {
    insns: [NOP; CAPACITY],
    len: 0,
};

/// The programs of the seals without a supervised row, indexed by [`Seal::index`]: the
/// ones `moat run` installs at every launch, assembled at compile time.
pub static PROGRAMS: [Program; Seal::UNSUPERVISED] = {
    let mut all = [EMPTY; Seal::UNSUPERVISED];
    let mut i = 0;
    while i < Seal::UNSUPERVISED {
        all[i] = assemble(Seal::from_index(i));
        i += 1;
    }
    all
};

// Every seal assembles: a mistake in the table or the assembler is a build error for the
// supervised seals too, although their programs are assembled when first used (they are
// installed by servers and supervised sandboxes, not on every launch, and keeping them all
// in the binary would add 96 KiB).
const _: () = {
    let mut i = Seal::UNSUPERVISED;
    while i < Seal::COUNT {
        let _ = assemble(Seal::from_index(i));
        i += 1;
    }
};

/// The programs of the supervised seals, assembled on first use.
static SUPERVISED: [std::sync::OnceLock<Program>; Seal::COUNT - Seal::UNSUPERVISED] =
    [const { std::sync::OnceLock::new() }; Seal::COUNT - Seal::UNSUPERVISED];

/// The program of `seal`.
pub fn program(seal: Seal) -> &'static Program {
    let i = seal.index();
    match PROGRAMS.get(i) {
        Some(p) => p,
        None => SUPERVISED[i - Seal::UNSUPERVISED].get_or_init(|| assemble(seal)),
    }
}

/// A jump target: an index into the assembler's labels, or the next instruction.
#[derive(Copy, Clone, PartialEq, Eq)]
pub(super) struct Label(usize);

/// The next instruction (a jump offset of 0).
pub(super) const NEXT: Label = Label(usize::MAX);

/// A classic-BPF assembler for what seccomp programs need: absolute 32-bit loads from
/// `struct seccomp_data`, `and` with a constant, conditional jumps against a constant and
/// `ret`. Jumps name labels, resolved by [`Assembler::finish`] into the forward 8-bit
/// offsets classic BPF encodes, so no offset is counted by hand. `const`, so that what the
/// kernel would reject panics at build time.
pub(super) struct Assembler {
    program: Program,
    labels: [usize; LABELS],
    next_label: usize,
    targets: [(Label, Label); CAPACITY],
    is_jump: [bool; CAPACITY],
}

impl Assembler {
    pub(super) const fn new() -> Self {
        Assembler {
            program: EMPTY,
            labels: [usize::MAX; LABELS],
            next_label: 0,
            targets: [(NEXT, NEXT); CAPACITY],
            is_jump: [false; CAPACITY],
        }
    }

    /// A new, unbound label.
    pub(super) const fn label(&mut self) -> Label {
        assert!(self.next_label < LABELS, "BPF program uses too many labels");
        self.next_label += 1;
        Label(self.next_label - 1)
    }

    const fn push(&mut self, code: u32, k: u32) {
        let at = self.program.len;
        assert!(
            at < CAPACITY,
            "BPF program longer than the assembler's capacity"
        );
        self.program.insns[at] = Insn {
            code: code as u16,
            jt: 0,
            jf: 0,
            k,
        };
        self.program.len += 1;
    }

    /// `A = *(u32 *)(seccomp_data + offset)`.
    pub(super) const fn load(&mut self, offset: u32) {
        self.push(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, offset);
    }

    /// `A &= mask`.
    pub(super) const fn and(&mut self, mask: u32) {
        self.push(libc::BPF_ALU | libc::BPF_AND | libc::BPF_K, mask);
    }

    /// `if A <op> k goto if_true else goto if_false`; `op` is `BPF_JEQ`, `BPF_JGT`,
    /// `BPF_JGE` (unsigned) or `BPF_JSET` (`A & k != 0`).
    pub(super) const fn jump(&mut self, op: u32, k: u32, if_true: Label, if_false: Label) {
        let at = self.program.len;
        self.push(libc::BPF_JMP | op | libc::BPF_K, k);
        self.targets[at] = (if_true, if_false);
        self.is_jump[at] = true;
    }

    /// `return value`.
    pub(super) const fn ret(&mut self, value: u32) {
        self.push(libc::BPF_RET | libc::BPF_K, value);
    }

    /// Makes `label` designate the next instruction.
    pub(super) const fn bind(&mut self, label: Label) {
        assert!(label.0 != NEXT.0, "BPF label Next cannot be bound");
        assert!(self.labels[label.0] == usize::MAX, "BPF label bound twice");
        self.labels[label.0] = self.program.len;
    }

    const fn offset(&self, from: usize, label: Label) -> u8 {
        if label.0 == NEXT.0 {
            return 0;
        }
        let to = self.labels[label.0];
        assert!(to != usize::MAX, "BPF label not bound");
        // Classic BPF only jumps forward, by an 8-bit count of instructions skipped.
        assert!(
            to > from && to < self.program.len && to - from - 1 <= u8::MAX as usize,
            "BPF jump out of reach"
        );
        (to - from - 1) as u8
    }

    /// Resolves the jumps and returns the program.
    pub(super) const fn finish(mut self) -> Program {
        let len = self.program.len;
        let ret = (libc::BPF_RET | libc::BPF_K) as u16;
        // The kernel rejects a program that can run off its end.
        assert!(
            len > 0 && self.program.insns[len - 1].code == ret,
            "BPF program does not end with a ret"
        );
        let mut at = 0;
        while at < len {
            if self.is_jump[at] {
                let (t, f) = self.targets[at];
                self.program.insns[at].jt = self.offset(at, t);
                self.program.insns[at].jf = self.offset(at, f);
            }
            at += 1;
        }
        self.program
    }
}

/// What the program does for a system call number the table names.
#[derive(Copy, Clone, PartialEq, Eq)]
enum Kind {
    /// Refused whatever its arguments.
    Refuse,
    /// `ioctl`: the request is checked.
    Ioctl,
    /// `socket`: the family, type and protocol are checked.
    Socket,
    /// Sent to the supervisor whatever its arguments.
    Supervise,
    /// `socketpair`: the family and type are checked.
    SocketPair,
}

/// A run of consecutive numbers with one [`Kind`].
#[derive(Copy, Clone)]
struct Range {
    first: u32,
    last: u32,
    kind: Kind,
}

/// The labels every part of a program shares.
#[derive(Copy, Clone)]
struct Exits {
    allow: Label,
    refuse: Label,
}

impl Exits {
    /// Returns what `to` (one of the exits) stands for, without a jump.
    const fn ret(self, asm: &mut Assembler, to: Label) {
        asm.ret(if to.0 == self.allow.0 {
            RET_ALLOW
        } else {
            assert!(to.0 == self.refuse.0, "BPF: not an exit label");
            RET_REFUSE
        });
    }
}

/// The program of `seal`.
const fn assemble(seal: Seal) -> Program {
    let mut asm = Assembler::new();
    let exits = Exits {
        allow: asm.label(),
        refuse: asm.label(),
    };
    let kill = asm.label();
    let arch = match NATIVE_AUDIT_ARCH {
        Some(arch) => arch,
        // Never installed: `Seal::program` refuses first.
        None => 0,
    };
    // Another ABI than the native one kills the process, before the number, which is per
    // ABI, is looked at (ForeignAbi, the table's first row).
    asm.load(ARCH);
    asm.jump(libc::BPF_JEQ, arch, NEXT, kill);
    asm.load(NR);
    // x32 calls report the x86_64 architecture; their numbers carry this bit.
    #[cfg(target_arch = "x86_64")]
    asm.jump(libc::BPF_JSET, super::X32_SYSCALL_BIT, kill, NEXT);

    let (ranges, count) = ranges(seal);
    search(&mut asm, seal, &ranges, 0, count, 0, u32::MAX, exits);

    asm.bind(exits.allow);
    asm.ret(RET_ALLOW);
    asm.bind(exits.refuse);
    asm.ret(RET_REFUSE);
    asm.bind(kill);
    asm.ret(RET_KILL);
    asm.finish()
}

/// The numbers the rows in force name, sorted, with consecutive refused numbers merged.
const fn ranges(seal: Seal) -> ([Range; RANGES], usize) {
    let mut out = [Range {
        first: 0,
        last: 0,
        kind: Kind::Refuse,
    }; RANGES];
    let mut n = 0;
    let mut i = 0;
    while i < TABLE.len() {
        let e: &Entry = &TABLE[i];
        i += 1;
        if !seal.holds(e.when) || matches!(e.action, Action::Kill) {
            continue;
        }
        match e.target {
            Target::ForeignAbi => {}
            Target::Syscalls(list) => {
                let kind = match e.action {
                    Action::Supervise => Kind::Supervise,
                    Action::Refuse | Action::Kill => Kind::Refuse,
                };
                let mut j = 0;
                while j < list.len() {
                    n = insert(&mut out, n, list[j].nr as u32, kind);
                    j += 1;
                }
            }
            Target::Ioctls(_) => n = insert(&mut out, n, libc::SYS_ioctl as u32, Kind::Ioctl),
            Target::SocketFamily(_)
            | Target::SocketFamiliesExcept(_)
            | Target::InetType(_)
            | Target::InetTypesExcept(_)
            | Target::InetProtocolsExcept { .. }
            | Target::NetlinkProtocol(_) => {
                n = insert(&mut out, n, libc::SYS_socket as u32, Kind::Socket)
            }
            Target::UnixType(_) => {
                n = insert(&mut out, n, libc::SYS_socket as u32, Kind::Socket);
                n = insert(&mut out, n, libc::SYS_socketpair as u32, Kind::SocketPair);
            }
        }
    }
    // Merge runs of refused numbers (io_uring's three, the SysV groups).
    let mut merged = 0;
    let mut k = 0;
    while k < n {
        let r = out[k];
        if merged > 0
            && matches!(r.kind, Kind::Refuse)
            && matches!(out[merged - 1].kind, Kind::Refuse)
            && out[merged - 1].last + 1 == r.first
        {
            out[merged - 1].last = r.last;
        } else {
            out[merged] = r;
            merged += 1;
        }
        k += 1;
    }
    (out, merged)
}

/// Inserts one number into the sorted list; a number named twice must mean the same.
const fn insert(out: &mut [Range; RANGES], n: usize, nr: u32, kind: Kind) -> usize {
    let mut at = 0;
    while at < n && out[at].first < nr {
        at += 1;
    }
    if at < n && out[at].first == nr {
        assert!(
            kind as u8 == out[at].kind as u8,
            "seccomp table: one system call number with two meanings"
        );
        return n;
    }
    assert!(
        n < RANGES,
        "seccomp table names too many system call numbers"
    );
    let mut j = n;
    while j > at {
        out[j] = out[j - 1];
        j -= 1;
    }
    out[at] = Range {
        first: nr,
        last: nr,
        kind,
    };
    n + 1
}

/// A binary search over `ranges[from..to]` for the number in the accumulator, known to be in
/// `lo..=hi`; numbers outside every range are allowed.
#[allow(clippy::too_many_arguments)]
const fn search(
    asm: &mut Assembler,
    seal: Seal,
    ranges: &[Range; RANGES],
    from: usize,
    to: usize,
    lo: u32,
    hi: u32,
    exits: Exits,
) {
    if from == to {
        asm.ret(RET_ALLOW);
        return;
    }
    if to - from > 1 {
        let mid = (from + to) / 2;
        let pivot = ranges[mid].first;
        let upper = asm.label();
        asm.jump(libc::BPF_JGE, pivot, upper, NEXT);
        search(asm, seal, ranges, from, mid, lo, pivot - 1, exits);
        asm.bind(upper);
        search(asm, seal, ranges, mid, to, pivot, hi, exits);
        return;
    }
    let r = ranges[from];
    // Inside the range: refuse (or notify) at once, or go on to the argument checks that
    // follow.
    let inside = match r.kind {
        Kind::Refuse => exits.refuse,
        Kind::Ioctl | Kind::Socket | Kind::Supervise | Kind::SocketPair => NEXT,
    };
    match (r.first > lo, r.last < hi) {
        (true, true) => {
            asm.jump(libc::BPF_JGE, r.first, NEXT, exits.allow);
            asm.jump(libc::BPF_JGT, r.last, exits.allow, inside);
        }
        (true, false) => asm.jump(libc::BPF_JGE, r.first, inside, exits.allow),
        (false, true) => asm.jump(libc::BPF_JGT, r.last, exits.allow, inside),
        (false, false) => {
            if let Kind::Refuse = r.kind {
                asm.ret(RET_REFUSE);
            }
        }
    }
    match r.kind {
        Kind::Refuse => {}
        Kind::Ioctl => ioctl(asm, seal, exits),
        Kind::Socket => socket(asm, seal, exits),
        Kind::Supervise => asm.ret(RET_NOTIFY),
        Kind::SocketPair => socketpair(asm, seal, exits),
    }
}

/// `socketpair(domain, type, protocol, sv)`: the unix types of the rows in force are
/// refused (on the low 32 bits, as for `socket`).
const fn socketpair(asm: &mut Assembler, seal: Seal, exits: Exits) {
    let rows = socket_rows(seal);
    asm.load(arg_low(0));
    asm.jump(libc::BPF_JEQ, libc::AF_UNIX as u32, NEXT, exits.allow);
    asm.load(arg_low(1));
    asm.and(SOCK_TYPE_MASK);
    let mut j = 0;
    while j < rows.unix_type_count {
        asm.jump(libc::BPF_JEQ, rows.unix_types[j] as u32, exits.refuse, NEXT);
        j += 1;
    }
    asm.ret(RET_ALLOW);
}

/// `ioctl(fd, request, ...)`: the requests of the rows in force are refused.
const fn ioctl(asm: &mut Assembler, seal: Seal, exits: Exits) {
    asm.load(arg_low(1));
    let mut i = 0;
    while i < TABLE.len() {
        let e = &TABLE[i];
        i += 1;
        if let (true, Target::Ioctls(list)) = (seal.holds(e.when), e.target) {
            let mut j = 0;
            while j < list.len() {
                asm.jump(libc::BPF_JEQ, list[j].1, exits.refuse, NEXT);
                j += 1;
            }
        }
    }
    asm.ret(RET_ALLOW);
}

/// The socket rows in force, gathered for laying out the argument checks.
struct SocketRows {
    /// Families refused outright.
    refused_families: [i32; 8],
    refused_count: usize,
    /// Families left alone when every other one is refused, if that row is in force.
    only: Option<&'static [i32]>,
    /// Netlink protocols refused.
    netlink: [i32; 8],
    netlink_count: usize,
    /// Internet socket types refused outright.
    inet_types: [i32; 8],
    inet_type_count: usize,
    /// Internet socket types left alone when every other one is refused.
    inet_only: Option<&'static [i32]>,
    /// Per type, the protocols left alone when every other one is refused.
    protocols: [(i32, &'static [i32]); 8],
    protocol_count: usize,
    /// Unix socket types refused.
    unix_types: [i32; 8],
    unix_type_count: usize,
}

const fn socket_rows(seal: Seal) -> SocketRows {
    let mut s = SocketRows {
        refused_families: [0; 8],
        refused_count: 0,
        only: None,
        netlink: [0; 8],
        netlink_count: 0,
        inet_types: [0; 8],
        inet_type_count: 0,
        inet_only: None,
        protocols: [(0, &[]); 8],
        protocol_count: 0,
        unix_types: [0; 8],
        unix_type_count: 0,
    };
    let mut i = 0;
    while i < TABLE.len() {
        let e = &TABLE[i];
        i += 1;
        if !seal.holds(e.when) {
            continue;
        }
        match e.target {
            Target::SocketFamily(f) => {
                s.refused_families[s.refused_count] = f;
                s.refused_count += 1;
            }
            Target::SocketFamiliesExcept(list) => {
                assert!(s.only.is_none(), "seccomp table: two family allowlists");
                s.only = Some(list);
            }
            Target::NetlinkProtocol(p) => {
                s.netlink[s.netlink_count] = p;
                s.netlink_count += 1;
            }
            Target::InetType(t) => {
                s.inet_types[s.inet_type_count] = t;
                s.inet_type_count += 1;
            }
            Target::InetTypesExcept(list) => {
                assert!(s.inet_only.is_none(), "seccomp table: two type allowlists");
                s.inet_only = Some(list);
            }
            Target::InetProtocolsExcept { ty, allowed } => {
                s.protocols[s.protocol_count] = (ty, allowed);
                s.protocol_count += 1;
            }
            Target::UnixType(t) => {
                s.unix_types[s.unix_type_count] = t;
                s.unix_type_count += 1;
            }
            Target::ForeignAbi | Target::Syscalls(_) | Target::Ioctls(_) => {}
        }
    }
    s
}

const fn contains(list: &[i32], value: i32) -> bool {
    let mut i = 0;
    while i < list.len() {
        if list[i] == value {
            return true;
        }
        i += 1;
    }
    false
}

/// `socket(domain, type, protocol)`. Every comparison is on the low 32 bits of the
/// argument, because the kernel declares the three `int` and ignores the upper halves of the
/// registers: `AF_INET | 1 << 32` is AF_INET to it, and to this program.
const fn socket(asm: &mut Assembler, seal: Seal, exits: Exits) {
    let rows = socket_rows(seal);
    let inet_checked =
        rows.inet_type_count > 0 || rows.inet_only.is_some() || rows.protocol_count > 0;
    // Where a family no row names goes.
    let other = if rows.only.is_some() {
        exits.refuse
    } else {
        exits.allow
    };
    asm.load(arg_low(0));
    let mut i = 0;
    while i < rows.refused_count {
        asm.jump(
            libc::BPF_JEQ,
            rows.refused_families[i] as u32,
            exits.refuse,
            NEXT,
        );
        i += 1;
    }
    let netlink = asm.label();
    let netlink_checked = rows.netlink_count > 0;
    if netlink_checked {
        asm.jump(libc::BPF_JEQ, libc::AF_NETLINK as u32, netlink, NEXT);
    }
    let unix = asm.label();
    let unix_checked = rows.unix_type_count > 0;
    if unix_checked {
        asm.jump(libc::BPF_JEQ, libc::AF_UNIX as u32, unix, NEXT);
    }
    // Families the allowlist keeps that need no further check are allowed here, before the
    // internet test below changes the accumulator.
    if let Some(only) = rows.only {
        let mut j = 0;
        while j < only.len() {
            let f = only[j];
            j += 1;
            let inet = f == libc::AF_INET || f == libc::AF_INET6;
            let refused = contains_n(&rows.refused_families, rows.refused_count, f);
            if (inet && inet_checked)
                || refused
                || (f == libc::AF_NETLINK && netlink_checked)
                || (f == libc::AF_UNIX && unix_checked)
            {
                continue;
            }
            asm.jump(libc::BPF_JEQ, f as u32, exits.allow, NEXT);
        }
    }
    let inet = asm.label();
    if inet_checked {
        // AF_INET6 (10) is AF_INET (2) plus bit 3: one test matches both.
        asm.and(INET_FAMILY_MASK);
        asm.jump(libc::BPF_JEQ, libc::AF_INET as u32, inet, other);
    } else {
        exits.ret(asm, other);
    }

    if unix_checked {
        asm.bind(unix);
        asm.load(arg_low(1));
        asm.and(SOCK_TYPE_MASK);
        let mut j = 0;
        while j < rows.unix_type_count {
            asm.jump(libc::BPF_JEQ, rows.unix_types[j] as u32, exits.refuse, NEXT);
            j += 1;
        }
        asm.ret(RET_ALLOW);
    }
    if netlink_checked {
        asm.bind(netlink);
        asm.load(arg_low(2));
        let mut j = 0;
        while j < rows.netlink_count {
            asm.jump(libc::BPF_JEQ, rows.netlink[j] as u32, exits.refuse, NEXT);
            j += 1;
        }
        asm.ret(RET_ALLOW);
    }
    if !inet_checked {
        return;
    }

    // AF_INET and AF_INET6: the type, without SOCK_NONBLOCK/SOCK_CLOEXEC.
    asm.bind(inet);
    asm.load(arg_low(1));
    asm.and(SOCK_TYPE_MASK);
    let other_type = if rows.inet_only.is_some() {
        exits.refuse
    } else {
        exits.allow
    };
    // Each type the rows name, with where it goes; a protocol check gets a label.
    let mut labels = [NEXT; 8];
    let mut p = 0;
    while p < rows.protocol_count {
        labels[p] = asm.label();
        p += 1;
    }
    let mut t = 0;
    while t < 16 {
        let ty: i32 = t;
        t += 1;
        let target = if contains_n(&rows.inet_types, rows.inet_type_count, ty) {
            exits.refuse
        } else {
            let mut found = usize::MAX;
            let mut q = 0;
            while q < rows.protocol_count {
                if rows.protocols[q].0 == ty {
                    found = q;
                }
                q += 1;
            }
            if found != usize::MAX {
                labels[found]
            } else if let Some(only) = rows.inet_only {
                if contains(only, ty) {
                    exits.allow
                } else {
                    exits.refuse
                }
            } else {
                exits.allow
            }
        };
        if target.0 != other_type.0 {
            asm.jump(libc::BPF_JEQ, ty as u32, target, NEXT);
        }
    }
    exits.ret(asm, other_type);
    // Protocol 0 means the first protocol registered for the type: TCP for streams, UDP for
    // datagrams.
    let mut q = 0;
    while q < rows.protocol_count {
        asm.bind(labels[q]);
        asm.load(arg_low(2));
        let allowed = rows.protocols[q].1;
        let mut j = 0;
        while j < allowed.len() {
            asm.jump(libc::BPF_JEQ, allowed[j] as u32, exits.allow, NEXT);
            j += 1;
        }
        asm.ret(RET_REFUSE);
        q += 1;
    }
}

const fn contains_n(list: &[i32; 8], n: usize, value: i32) -> bool {
    let mut i = 0;
    while i < n {
        if list[i] == value {
            return true;
        }
        i += 1;
    }
    false
}
