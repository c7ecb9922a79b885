//! The seccomp socket layer: closes the socket gaps Landlock leaves open.
//!
//! Landlock's network rules (ABI 4 to 9) only see TCP `bind(2)` and `connect(2)`. A policy
//! that restricts the network would still let the target open UDP, ICMP, raw, packet, SCTP,
//! MPTCP, vsock or XDP sockets, and reach the network through them. Whenever a moat policy
//! restricts the network, moat therefore installs the seccomp filter built here, which
//! refuses with `EACCES` (the errno Landlock itself uses for a denied bind/connect) every
//! `socket(2)` call whose result Landlock could not police:
//!
//! * address families other than `AF_UNIX`, `AF_NETLINK`, `AF_INET` and `AF_INET6`;
//! * `AF_INET`/`AF_INET6` sockets of any type but `SOCK_STREAM` (after masking off
//!   `SOCK_NONBLOCK`/`SOCK_CLOEXEC`), with `SOCK_DGRAM` allowed when UDP is allowed;
//! * `AF_INET`/`AF_INET6` `SOCK_STREAM` sockets whose protocol is neither 0 nor
//!   `IPPROTO_TCP` (MPTCP and SCTP: Landlock's TCP rules do not apply to them);
//! * when UDP is allowed, `SOCK_DGRAM` sockets whose protocol is neither 0 nor
//!   `IPPROTO_UDP` (ICMP "ping" sockets and UDP-Lite are not UDP to Landlock either);
//! * `io_uring_setup(2)`, `io_uring_enter(2)` and `io_uring_register(2)`, because
//!   `IORING_OP_SOCKET` creates sockets without going through the `socket` syscall;
//! * on x86_64, the x32 ABI aliases of all of the above (`0x4000_0000 | nr`), refused
//!   outright.
//!
//! Syscalls made through another ABI than the native one (i386 `int 0x80`, including
//! `socketcall(2)`, on x86_64; AArch32 on aarch64) **kill the process** with `SIGSYS`: that is
//! the filter's architecture check (`SECCOMP_RET_KILL_PROCESS`), which runs before the
//! syscall number is looked at. A consequence is that a
//! 32-bit program cannot run under a network-restricting policy at all: it dies at its first
//! syscall. This is deliberate: letting compat syscalls through unfiltered would reopen
//! every gap above through `socketcall`.
//!
//! `socketpair(2)` is left alone: in practice only `AF_UNIX` implements it. (`AF_TIPC` does
//! too, but TIPC reaches other hosts only once an administrator has enabled a bearer, and
//! this kernel's config has no TIPC at all.)
//!
//! Everything else is allowed: this filter is a gap filler next to Landlock, not a general
//! syscall sandbox.
//!
//! # Why the BPF program is written by hand
//!
//! The filter is attached on every sandboxed launch, and attaching is not free: the kernel
//! checks the program, converts it to eBPF and JIT-compiles it (`CONFIG_BPF_JIT_ALWAYS_ON` on
//! the development machine), at a cost that grows with its length; then, with interrupts
//! off, it runs it once for every syscall number of the native and compat ABIs (x86_64 and
//! i386 here) to find the numbers it always allows (the action cache, which spares those the filter at run time), at a cost that
//! grows with the path most numbers take through it. That was the largest single item of
//! `moat run`'s launch overhead (docs/PERFORMANCE.md). Measured on the development machine
//! (6.18 kernel, release build, median of 2000 fresh children per program, each attaching
//! once, interleaved: the measurement `attach_cost_hand_written_vs_seccompiler`, compiled with `--cfg moat_bench`):
//!
//! | program | instructions | attach (`prctl` + `seccomp`) | building it in the child |
//! |---|---:|---:|---:|
//! | seccompiler rules (before), no UDP / UDP | 102 / 133 | 83-92 / 95-105 us | 49-67 us |
//! | written here, no UDP / UDP | 23 / 26 | 43-48 us | none (a `static`) |
//! | a lone `ret ALLOW`, for the fixed part | 1 | 21-25 us | |
//!
//! seccompiler's rule compiler, which moat used before, cannot get anywhere near that size,
//! however the rules are arranged, because of its generic layout: after its 3-instruction
//! architecture check and the syscall number load, each syscall costs a `jeq` and a final
//! `ret`; each rule two `ja` and a `ret`; each condition reloads its argument (`ld` + compare,
//! plus an `and` when masked), since rules cannot share a load; a syscall refused whatever
//! its arguments costs 5 instructions, and numbers can only be matched one by one, not as a
//! range. The seven numbers refused outright (3 io_uring, 4 x32) therefore cost 35
//! instructions, 40 with the preamble and the default `ret`, before any `socket` rule; the
//! `socket` rules (families, non-stream types as masked patterns, since there is no "masked
//! not equal", and protocols) took 62 more, 93 with UDP: 102 and 133 in all. Its rule
//! objects also took longer to build at launch than attaching the whole hand-written program.
//!
//! The program is therefore written out in `assemble` and assembled at compile time by a
//! small `const` assembler that resolves named labels into jump offsets (none is counted by
//! hand; a mistake is a build error). It loads each value once, matches the io_uring numbers
//! as one range, folds the x32 aliases into that range with one `and`, shares three `ret`s,
//! and sorts out the numbers below the io_uring range first: one instruction more than the
//! shortest layout (22 and 25), but six steps instead of nine for nearly every number in the
//! action-cache pass, which measured about 2 us faster to attach. seccompiler still provides
//! the instruction type and the installation (`seccompiler::apply_filter`). The unit tests
//! run the program in a BPF interpreter over a grid of architectures, syscall numbers,
//! arguments and garbage upper halves, against a plain Rust statement of the rules and
//! against the former seccompiler rule set, which they keep as an oracle.

use std::mem::offset_of;

use seccompiler::{sock_filter, BpfProgram};

/// The errno every refused call returns.
///
/// `EACCES` is what Landlock returns for a denied TCP bind/connect, so a program sees the same
/// error whichever layer refused it. For io_uring it is also what an LSM (SELinux's
/// `io_uring` permissions) returns when it denies `io_uring_setup`, so programs that probe for
/// io_uring already take their fallback path on it. One errno for the whole filter also keeps
/// a single refusal `ret` in the program.
pub const REFUSAL_ERRNO: i32 = libc::EACCES;

/// Describes the refused address families.
pub const REFUSED_FAMILIES: &str = "socket(): every address family but AF_UNIX, AF_NETLINK, \
     AF_INET and AF_INET6 (AF_PACKET, AF_VSOCK, AF_XDP, AF_BLUETOOTH, AF_CAN, ...) is refused \
     with EACCES";

/// Describes the refused IPv4/IPv6 socket types.
pub const REFUSED_INET_TYPES: &str = "socket(AF_INET/AF_INET6): SOCK_RAW, SOCK_SEQPACKET, \
     SOCK_RDM, SOCK_DCCP, SOCK_PACKET and every other type but SOCK_STREAM and SOCK_DGRAM are \
     refused with EACCES, with or without SOCK_NONBLOCK/SOCK_CLOEXEC";

/// Describes the refused stream protocols.
pub const REFUSED_INET_STREAM_PROTOCOLS: &str = "socket(AF_INET/AF_INET6, SOCK_STREAM): every \
     protocol but 0 and IPPROTO_TCP (MPTCP, SCTP) is refused with EACCES: Landlock's TCP rules \
     do not apply to them";

/// Describes what is refused of datagram sockets when UDP is not allowed.
pub const REFUSED_DATAGRAM: &str = "socket(AF_INET/AF_INET6, SOCK_DGRAM): refused with EACCES \
     (UDP, ICMP ping, UDP-Lite), because the policy does not allow UDP";

/// Describes what is still refused of datagram sockets when UDP is allowed.
pub const REFUSED_DATAGRAM_WITH_UDP: &str = "socket(AF_INET/AF_INET6, SOCK_DGRAM): every \
     protocol but 0 and IPPROTO_UDP (ICMP ping, UDP-Lite) is refused with EACCES; UDP itself \
     is allowed";

/// Describes the io_uring refusal.
pub const REFUSED_IO_URING: &str = "io_uring_setup, io_uring_enter, io_uring_register: refused \
     with EACCES, because IORING_OP_SOCKET creates sockets without the socket syscall";

/// Describes the x32 refusal (x86_64 only).
pub const REFUSED_X32: &str = "x32 ABI socket and io_uring_* syscalls (x86_64): refused with \
     EACCES whatever their arguments";

/// Describes what happens to syscalls made through a non-native ABI.
pub const KILLED_FOREIGN_ABI: &str = "syscalls through a non-native ABI (i386 int 0x80 and \
     socketcall on x86_64, AArch32 on aarch64) kill the process with SIGSYS: 32-bit programs \
     cannot run under a network-restricting policy";

/// Every line [`SocketFilter::describe`] can produce, for documentation. Which of the two
/// datagram lines applies depends on [`SocketFilter::allow_udp`].
pub const REFUSED: &[&str] = &[
    REFUSED_FAMILIES,
    REFUSED_INET_TYPES,
    REFUSED_INET_STREAM_PROTOCOLS,
    REFUSED_DATAGRAM,
    REFUSED_DATAGRAM_WITH_UDP,
    REFUSED_IO_URING,
    REFUSED_X32,
    KILLED_FOREIGN_ABI,
];

/// The x32 ABI marks its syscall numbers with this bit (`__X32_SYSCALL_BIT`). x32 syscalls
/// report the x86_64 audit arch, so they pass the architecture check and need tests of their
/// own.
#[cfg(target_arch = "x86_64")]
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// The `AUDIT_ARCH_*` value (`linux/audit.h`) of the native ABI: the ELF machine, with
/// `__AUDIT_ARCH_64BIT` and `__AUDIT_ARCH_LE`. The architectures are seccompiler's (moat used
/// its rule compiler before, and its error message names them); `None` elsewhere.
const NATIVE_AUDIT_ARCH: Option<u32> = {
    const LE64: u32 = 0x8000_0000 | 0x4000_0000;
    if cfg!(target_arch = "x86_64") {
        Some(62 | LE64) // EM_X86_64
    } else if cfg!(target_arch = "aarch64") {
        Some(183 | LE64) // EM_AARCH64
    } else if cfg!(target_arch = "riscv64") {
        Some(243 | LE64) // EM_RISCV
    } else {
        None
    }
};

/// `SOCK_TYPE_MASK` in the kernel: the socket type is the low four bits of `socket`'s second
/// argument; the rest holds `SOCK_NONBLOCK`/`SOCK_CLOEXEC` (anything else is `EINVAL`).
const SOCK_TYPE_MASK: u32 = 0xf;

/// `domain & INET_FAMILY_MASK == AF_INET` holds for `AF_INET` and `AF_INET6` only (on the 32
/// bits the kernel reads).
const INET_FAMILY_MASK: u32 = !((libc::AF_INET ^ libc::AF_INET6) as u32);

// The mask trick needs AF_INET6 to be AF_INET plus exactly one bit.
const _: () = assert!(
    (libc::AF_INET ^ libc::AF_INET6).count_ones() == 1 && libc::AF_INET6 & !libc::AF_INET != 0
);

// The io_uring syscalls are refused as one range of numbers, and `socket` is looked for
// among the numbers below it.
const IO_URING_FIRST: u32 = libc::SYS_io_uring_setup as u32;
const IO_URING_LAST: u32 = libc::SYS_io_uring_register as u32;
const _: () = assert!(
    libc::SYS_io_uring_enter == libc::SYS_io_uring_setup + 1
        && libc::SYS_io_uring_register == libc::SYS_io_uring_enter + 1
        && libc::SYS_socket < libc::SYS_io_uring_setup
);

// Where the program reads `struct seccomp_data`.
const NR: u32 = offset_of!(libc::seccomp_data, nr) as u32;
const ARCH: u32 = offset_of!(libc::seccomp_data, arch) as u32;

/// Offset of the low 32 bits of syscall argument `index` (what the kernel reads of an `int`
/// argument; the upper half of the register is ignored, so it must be here too).
const fn arg_low(index: u32) -> u32 {
    let arg = offset_of!(libc::seccomp_data, args) as u32 + 8 * index;
    if cfg!(target_endian = "little") {
        arg
    } else {
        arg + 4
    }
}
const DOMAIN: u32 = arg_low(0);
const TYPE: u32 = arg_low(1);
const PROTOCOL: u32 = arg_low(2);

/// Errors from installing the socket filter.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    /// No BPF program is written for this CPU architecture.
    #[error(
        "cannot build the seccomp socket filter on {arch}: moat supports x86_64, aarch64 and \
         riscv64"
    )]
    UnsupportedArch {
        /// The architecture moat was built for.
        arch: &'static str,
    },
    /// `prctl(PR_SET_NO_NEW_PRIVS)` failed; an unprivileged process cannot install a filter
    /// without it.
    #[error("cannot set no_new_privs before installing the seccomp socket filter: {source}")]
    NoNewPrivs {
        /// The OS error.
        source: std::io::Error,
    },
    /// The `seccomp(2)` call failed (for instance a kernel built without
    /// `CONFIG_SECCOMP_FILTER`).
    #[error("the kernel refused the seccomp socket filter: {source}")]
    Install {
        /// The OS error.
        source: std::io::Error,
    },
    /// Any other failure reported by seccompiler while installing.
    #[error("cannot install the seccomp socket filter: {source}")]
    Other {
        /// seccompiler's error.
        source: seccompiler::Error,
    },
}

/// The seccomp filter moat installs whenever a policy restricts the network.
///
/// See the [module documentation](self) for what it refuses and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SocketFilter {
    /// Allow `AF_INET`/`AF_INET6` `SOCK_DGRAM` sockets with protocol 0 or `IPPROTO_UDP`:
    /// set it when the policy allows UDP (`allow_udp`) or when Landlock (ABI 10 port rules)
    /// enforces UDP itself.
    pub allow_udp: bool,
}

/// The two programs, assembled when moat is compiled (a mistake in [`assemble`] is a build
/// error), so a launch does no work to get them.
static PROGRAM: Program = assemble(false);
static PROGRAM_WITH_UDP: Program = assemble(true);

impl SocketFilter {
    /// The BPF program for the native architecture.
    ///
    /// Pure: it does not touch the calling process, and only copies a program assembled at
    /// compile time. The kernel's cost of attaching the program grows with its length, so it
    /// is written by hand (see the [module documentation](self)): 23 instructions, 26 with
    /// UDP allowed, on x86_64 (three fewer elsewhere: no x32).
    pub fn compile(&self) -> Result<BpfProgram, SeccompError> {
        Ok(self.program()?.to_vec())
    }

    /// The program, without copying it: a `static` assembled at compile time, so a
    /// process that installs it after `clone(CLONE_VM)` ([`crate::spawn`]) needs no
    /// allocation.
    pub fn program(&self) -> Result<&'static [sock_filter], SeccompError> {
        if NATIVE_AUDIT_ARCH.is_none() {
            return Err(SeccompError::UnsupportedArch {
                arch: std::env::consts::ARCH,
            });
        }
        let program = if self.allow_udp {
            &PROGRAM_WITH_UDP
        } else {
            &PROGRAM
        };
        Ok(program.instructions())
    }

    /// Installs the filter on the calling thread.
    ///
    /// Sets `no_new_privs` first (seccomp requires it without `CAP_SYS_ADMIN`; it is
    /// idempotent, and Landlock needs it too). The filter applies to the calling thread only
    /// (no `SECCOMP_FILTER_FLAG_TSYNC`): moat calls this single-threaded, right before
    /// `execve`, and the filter is inherited by every child and kept across `execve`. It
    /// cannot be removed afterwards.
    pub fn install(&self) -> Result<(), SeccompError> {
        seccompiler::apply_filter(self.program()?).map_err(|error| match error {
            seccompiler::Error::Prctl(source) => SeccompError::NoNewPrivs { source },
            seccompiler::Error::Seccomp(source) => SeccompError::Install { source },
            source => SeccompError::Other { source },
        })
    }

    /// Human-readable lines saying what this filter refuses, for `moat check`.
    pub fn describe(&self) -> Vec<String> {
        let datagram = if self.allow_udp {
            REFUSED_DATAGRAM_WITH_UDP
        } else {
            REFUSED_DATAGRAM
        };
        let mut lines = vec![
            REFUSED_FAMILIES,
            REFUSED_INET_TYPES,
            REFUSED_INET_STREAM_PROTOCOLS,
            datagram,
            REFUSED_IO_URING,
        ];
        if cfg!(target_arch = "x86_64") {
            lines.push(REFUSED_X32);
        }
        lines.push(KILLED_FOREIGN_ABI);
        lines.into_iter().map(String::from).collect()
    }
}

/// What the filter returns (`linux/seccomp.h`; the tests check them against seccompiler's
/// `SeccompAction` values).
const RET_ALLOW: u32 = libc::SECCOMP_RET_ALLOW;
const RET_REFUSE: u32 = libc::SECCOMP_RET_ERRNO | (REFUSAL_ERRNO as u32 & libc::SECCOMP_RET_DATA);
const RET_KILL: u32 = libc::SECCOMP_RET_KILL_PROCESS;

/// The filter's program.
const fn assemble(allow_udp: bool) -> Program {
    use Label::{Allow, Kill, Next, ProtocolZero, Refuse, Socket, Stream};
    let arch = match NATIVE_AUDIT_ARCH {
        Some(arch) => arch,
        // Never installed: SocketFilter::program refuses first.
        None => 0,
    };
    let mut asm = Assembler::new();

    // Another ABI than the native one (i386 `int 0x80` and its `socketcall`, AArch32) kills
    // the process, before the syscall number, which is per ABI, is looked at.
    asm.load(ARCH);
    asm.jump(libc::BPF_JEQ, arch, Next, Kill);

    // The syscall number. Nearly all numbers are below the io_uring ones, and they are
    // sorted out first: when attaching, the kernel runs the program for every syscall
    // number to find those it always allows (its action cache, which spares them the
    // filter at run time), so the shorter their path, the cheaper the attach (this costs
    // one instruction but measured faster, see the module documentation).
    asm.load(NR);
    asm.jump(libc::BPF_JGE, IO_URING_FIRST, Next, Socket);
    // x32 aliases: `socket` refused outright (nothing moat runs uses x32, and a kernel without
    // CONFIG_X86_X32_ABI says ENOSYS to them anyway), then the bit is cleared so that the
    // io_uring range below covers both ABIs. Clearing it maps no other number into that
    // range: only `X32_SYSCALL_BIT | n` becomes `n`.
    #[cfg(target_arch = "x86_64")]
    {
        asm.jump(
            libc::BPF_JEQ,
            X32_SYSCALL_BIT | libc::SYS_socket as u32,
            Refuse,
            Next,
        );
        asm.and(!X32_SYSCALL_BIT);
        // What is left can be below the range again (x32 numbers, bit cleared).
        asm.jump(libc::BPF_JGT, IO_URING_LAST, Allow, Next);
        asm.jump(libc::BPF_JGE, IO_URING_FIRST, Refuse, Allow);
    }
    // io_uring_setup, io_uring_enter, io_uring_register: whatever their arguments.
    #[cfg(not(target_arch = "x86_64"))]
    asm.jump(libc::BPF_JGT, IO_URING_LAST, Allow, Refuse);

    // socket(domain, type, protocol). Every comparison is on the low 32 bits of the
    // argument, because the kernel declares the three `int` and ignores the upper halves of
    // the registers: `AF_INET | 1 << 32` is AF_INET to it, and to this filter.
    asm.bind(Socket);
    asm.jump(libc::BPF_JEQ, libc::SYS_socket as u32, Next, Allow);
    asm.load(DOMAIN);
    asm.jump(libc::BPF_JEQ, libc::AF_UNIX as u32, Allow, Next);
    asm.jump(libc::BPF_JEQ, libc::AF_NETLINK as u32, Allow, Next);
    // AF_INET6 (10) is AF_INET (2) plus bit 3: one test matches both.
    asm.and(INET_FAMILY_MASK);
    asm.jump(libc::BPF_JEQ, libc::AF_INET as u32, Next, Refuse);
    // The type, without SOCK_NONBLOCK/SOCK_CLOEXEC.
    asm.load(TYPE);
    asm.and(SOCK_TYPE_MASK);
    // Protocol 0 means the first protocol registered for the type: TCP for streams, UDP for
    // datagrams. Only those are what Landlock's port rules govern.
    if allow_udp {
        asm.jump(libc::BPF_JEQ, libc::SOCK_STREAM as u32, Stream, Next);
        asm.jump(libc::BPF_JEQ, libc::SOCK_DGRAM as u32, Next, Refuse);
        asm.load(PROTOCOL);
        asm.jump(libc::BPF_JEQ, libc::IPPROTO_UDP as u32, Allow, ProtocolZero);
    } else {
        asm.jump(libc::BPF_JEQ, libc::SOCK_STREAM as u32, Stream, Refuse);
    }
    asm.bind(Stream);
    asm.load(PROTOCOL);
    asm.jump(libc::BPF_JEQ, libc::IPPROTO_TCP as u32, Allow, Next);
    asm.bind(ProtocolZero);
    asm.jump(libc::BPF_JEQ, 0, Allow, Refuse);

    asm.bind(Allow);
    asm.ret(RET_ALLOW);
    asm.bind(Refuse);
    asm.ret(RET_REFUSE);
    asm.bind(Kill);
    asm.ret(RET_KILL);
    asm.finish()
}

/// A jump target in the program being assembled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Label {
    /// The next instruction (a jump offset of 0); cannot be bound.
    Next,
    /// The numbers below the io_uring ones, then the `socket` argument checks.
    Socket,
    /// The protocol check of an `AF_INET`/`AF_INET6` `SOCK_STREAM` socket.
    Stream,
    /// The "protocol is 0" test, with the protocol already loaded.
    ProtocolZero,
    /// `SECCOMP_RET_ALLOW`.
    Allow,
    /// `SECCOMP_RET_ERRNO | EACCES`.
    Refuse,
    /// `SECCOMP_RET_KILL_PROCESS`.
    Kill,
}

/// How many labels there are.
const LABELS: usize = Label::Kill as usize + 1;

/// The most instructions [`Assembler`] holds (the filter needs 25).
const CAPACITY: usize = 32;

/// An assembled program: the first `len` of `instructions`.
struct Program {
    instructions: [sock_filter; CAPACITY],
    len: usize,
}

impl Program {
    fn instructions(&self) -> &[sock_filter] {
        &self.instructions[..self.len]
    }
}

/// A classic-BPF assembler for the handful of instructions the filter needs: absolute 32-bit
/// loads from `struct seccomp_data`, `and` with a constant, conditional jumps against a
/// constant, and `ret`.
///
/// Jumps name their targets with [`Label`]s, which [`Assembler::finish`] turns into the
/// forward offsets classic BPF encodes (instructions to skip, 0 to 255), so no offset in this
/// file is counted by hand, and an edit that moves code cannot leave a jump pointing at the
/// wrong instruction. It is `const` so that the filter's program is assembled at build time:
/// what the kernel would reject (an unbound label, a backward or too long jump, a program
/// that can run off its end) panics, which in a `static` initialiser fails the build.
struct Assembler {
    program: Program,
    /// Each label's instruction index once bound; `usize::MAX` until then.
    labels: [usize; LABELS],
    /// The true and false targets of each conditional jump, by instruction index.
    targets: [Option<(Label, Label)>; CAPACITY],
}

impl Assembler {
    const fn new() -> Self {
        const NOP: sock_filter = sock_filter {
            code: 0,
            jt: 0,
            jf: 0,
            k: 0,
        };
        Assembler {
            program: Program {
                instructions: [NOP; CAPACITY],
                len: 0,
            },
            labels: [usize::MAX; LABELS],
            targets: [None; CAPACITY],
        }
    }

    const fn push(&mut self, code: u32, k: u32) {
        let at = self.program.len;
        assert!(
            at < CAPACITY,
            "BPF program longer than the assembler's capacity"
        );
        self.program.instructions[at] = sock_filter {
            code: code as u16,
            jt: 0,
            jf: 0,
            k,
        };
        self.program.len += 1;
    }

    /// `A = *(u32 *)(seccomp_data + offset)`.
    const fn load(&mut self, offset: u32) {
        self.push(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, offset);
    }

    /// `A &= mask`.
    const fn and(&mut self, mask: u32) {
        self.push(libc::BPF_ALU | libc::BPF_AND | libc::BPF_K, mask);
    }

    /// `if A <op> k goto if_true else goto if_false`, `op` being `BPF_JEQ`, `BPF_JGT` or
    /// `BPF_JGE` (unsigned).
    const fn jump(&mut self, op: u32, k: u32, if_true: Label, if_false: Label) {
        self.targets[self.program.len] = Some((if_true, if_false));
        self.push(libc::BPF_JMP | op | libc::BPF_K, k);
    }

    /// `return value`.
    const fn ret(&mut self, value: u32) {
        self.push(libc::BPF_RET | libc::BPF_K, value);
    }

    /// Makes `label` designate the next instruction.
    const fn bind(&mut self, label: Label) {
        assert!(
            !matches!(label, Label::Next),
            "BPF label Next cannot be bound"
        );
        assert!(
            self.labels[label as usize] == usize::MAX,
            "BPF label bound twice"
        );
        self.labels[label as usize] = self.program.len;
    }

    /// The offset encoding a jump from instruction `from` to `label`.
    const fn offset(&self, from: usize, label: Label) -> u8 {
        if matches!(label, Label::Next) {
            return 0;
        }
        let to = self.labels[label as usize];
        assert!(to != usize::MAX, "BPF label not bound");
        // Classic BPF only jumps forward, by an 8-bit count of instructions skipped.
        assert!(
            to > from && to < self.program.len && to - from - 1 <= u8::MAX as usize,
            "BPF jump out of reach"
        );
        (to - from - 1) as u8
    }

    /// Resolves the jumps and returns the program.
    const fn finish(mut self) -> Program {
        let len = self.program.len;
        let ret = (libc::BPF_RET | libc::BPF_K) as u16;
        // The kernel rejects a program that can run off its end.
        assert!(
            len > 0 && self.program.instructions[len - 1].code == ret,
            "BPF program does not end with a ret"
        );
        let mut at = 0;
        while at < len {
            if let Some((if_true, if_false)) = self.targets[at] {
                self.program.instructions[at].jt = self.offset(at, if_true);
                self.program.instructions[at].jf = self.offset(at, if_false);
            }
            at += 1;
        }
        self.program
    }
}

#[cfg(test)]
mod tests {
    //! The compiled program is checked by running it in a small classic-BPF interpreter over
    //! every combination that matters, including ones the kernel tests cannot reach (x32 on a
    //! kernel without x32, garbage in the upper halves of arguments, foreign architectures),
    //! against a plain Rust statement of the rules and against the seccompiler rule set moat
    //! used to install.

    use seccompiler::SeccompAction;

    use super::*;

    const AUDIT_ARCH_I386: u32 = 3 | 0x4000_0000;
    const RET_KILL_PROCESS: u32 = 0x8000_0000;
    const RET_ALLOW: u32 = 0x7fff_0000;
    const RET_EACCES: u32 = 0x0005_0000 | libc::EACCES as u32;

    #[cfg(target_arch = "x86_64")]
    const NATIVE_ARCH: u32 = 62 | 0x8000_0000 | 0x4000_0000;
    #[cfg(target_arch = "aarch64")]
    const NATIVE_ARCH: u32 = 183 | 0x8000_0000 | 0x4000_0000;
    #[cfg(target_arch = "riscv64")]
    const NATIVE_ARCH: u32 = 243 | 0x8000_0000 | 0x4000_0000;

    /// Runs a seccomp classic-BPF program over a `struct seccomp_data` (the subset of
    /// instructions seccompiler emits).
    fn run(program: &BpfProgram, arch: u32, nr: i64, args: [u64; 6]) -> u32 {
        let mut data = [0u8; 64];
        data[0..4].copy_from_slice(&(nr as i32).to_ne_bytes());
        data[4..8].copy_from_slice(&arch.to_ne_bytes());
        // 8..16: the instruction pointer, left 0.
        for (i, arg) in args.iter().enumerate() {
            data[16 + 8 * i..24 + 8 * i].copy_from_slice(&arg.to_ne_bytes());
        }
        let mut acc: u32 = 0;
        let mut pc = 0usize;
        loop {
            let insn = &program[pc];
            pc += 1;
            match insn.code {
                // BPF_LD | BPF_W | BPF_ABS
                0x20 => {
                    let at = insn.k as usize;
                    let word: [u8; 4] = data[at..at + 4].try_into().unwrap();
                    acc = u32::from_ne_bytes(word);
                }
                // BPF_ALU | BPF_AND | BPF_K
                0x54 => acc &= insn.k,
                // BPF_JMP | BPF_JA
                0x05 => pc += insn.k as usize,
                // BPF_JMP | BPF_JEQ/JGT/JGE | BPF_K
                0x15 | 0x25 | 0x35 => {
                    let taken = match insn.code {
                        0x15 => acc == insn.k,
                        0x25 => acc > insn.k,
                        _ => acc >= insn.k,
                    };
                    pc += usize::from(if taken { insn.jt } else { insn.jf });
                }
                // BPF_RET | BPF_K
                0x06 => return insn.k,
                other => panic!("unexpected BPF opcode {other:#x} at {}", pc - 1),
            }
        }
    }

    /// A readable listing of a program, for test output and failure messages.
    fn listing(program: &BpfProgram) -> String {
        let mut out = String::new();
        for (at, insn) in program.iter().enumerate() {
            let (jt, jf) = (at + 1 + usize::from(insn.jt), at + 1 + usize::from(insn.jf));
            let text = match insn.code {
                0x20 => format!("ld  [{}]", insn.k),
                0x54 => format!("and {:#x}", insn.k),
                0x05 => format!("ja  {}", at + 1 + insn.k as usize),
                0x15 => format!("jeq {:#x}, {jt}, {jf}", insn.k),
                0x25 => format!("jgt {:#x}, {jt}, {jf}", insn.k),
                0x35 => format!("jge {:#x}, {jt}, {jf}", insn.k),
                0x06 => format!("ret {:#x}", insn.k),
                other => format!("?? {other:#x}"),
            };
            out.push_str(&format!("{at:4}: {text}\n"));
        }
        out
    }

    fn socket(program: &BpfProgram, domain: i32, ty: i32, protocol: i32) -> u32 {
        let args = [domain as u64, ty as u64, protocol as u64, 0, 0, 0];
        run(program, NATIVE_ARCH, libc::SYS_socket, args)
    }

    /// What the filter must decide, written independently of the rule construction.
    fn expected(allow_udp: bool, domain: i32, ty: i32, protocol: i32) -> u32 {
        let inet = domain == libc::AF_INET || domain == libc::AF_INET6;
        if domain == libc::AF_UNIX || domain == libc::AF_NETLINK {
            return RET_ALLOW;
        }
        if !inet {
            return RET_EACCES;
        }
        let ok = match ty & 0xf {
            libc::SOCK_STREAM => protocol == 0 || protocol == libc::IPPROTO_TCP,
            libc::SOCK_DGRAM => allow_udp && (protocol == 0 || protocol == libc::IPPROTO_UDP),
            _ => false,
        };
        if ok {
            RET_ALLOW
        } else {
            RET_EACCES
        }
    }

    /// What the filter must decide for any syscall: the whole specification in plain Rust.
    fn reference(allow_udp: bool, arch: u32, nr: u32, args: [u64; 6]) -> u32 {
        if arch != NATIVE_ARCH {
            return RET_KILL_PROCESS;
        }
        let io_uring = [
            libc::SYS_io_uring_setup,
            libc::SYS_io_uring_enter,
            libc::SYS_io_uring_register,
        ]
        .map(|n| n as u32);
        if io_uring.contains(&nr) {
            return RET_EACCES;
        }
        if cfg!(target_arch = "x86_64") {
            let x32 = 0x4000_0000;
            if nr == x32 | libc::SYS_socket as u32 || io_uring.iter().any(|&n| nr == x32 | n) {
                return RET_EACCES;
            }
        }
        if nr == libc::SYS_socket as u32 {
            // The kernel reads the low 32 bits of each argument, as an int.
            return expected(allow_udp, args[0] as i32, args[1] as i32, args[2] as i32);
        }
        RET_ALLOW
    }

    /// The seccompiler rule set this module compiled before the program was written by hand,
    /// kept as a second, independently built oracle (and to show its size).
    mod seccompiler_rules {
        use std::collections::BTreeMap;

        use seccompiler::{
            BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition,
            SeccompFilter, SeccompRule, TargetArch,
        };

        use super::super::{INET_FAMILY_MASK, REFUSAL_ERRNO, SOCK_TYPE_MASK};

        /// `(mask, value)` patterns on the socket type whose union is every type but
        /// `SOCK_STREAM` (1): seccompiler has no "masked not equal".
        pub const NOT_STREAM: [(u64, u64); 4] = [
            (0x1, 0x0), // even: 0, 2 (DGRAM), 4 (RDM), 6 (DCCP), 8, 10 (PACKET), 12, 14
            (0x3, 0x3), // 3 (RAW), 7, 11, 15
            (0x5, 0x5), // 5 (SEQPACKET), 7, 13, 15
            (0x9, 0x9), // 9, 11, 13, 15
        ];

        /// The same for every type but `SOCK_STREAM` (1) and `SOCK_DGRAM` (2).
        pub const NOT_STREAM_OR_DGRAM: [(u64, u64); 6] = [
            (0x3, 0x0), // 0, 4 (RDM), 8, 12
            (0x6, 0x6), // 6 (DCCP), 7, 14, 15
            (0xa, 0xa), // 10 (PACKET), 11, 14, 15
            (0x3, 0x3), // 3 (RAW), 7, 11, 15
            (0x5, 0x5), // 5 (SEQPACKET), 7, 13, 15
            (0x9, 0x9), // 9, 11, 13, 15
        ];

        pub fn program(allow_udp: bool) -> BpfProgram {
            let arch = TargetArch::try_from(std::env::consts::ARCH).unwrap();
            let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
            rules.insert(libc::SYS_socket, socket_rules(allow_udp));
            let io_uring = [
                libc::SYS_io_uring_setup,
                libc::SYS_io_uring_enter,
                libc::SYS_io_uring_register,
            ];
            for nr in io_uring {
                rules.insert(nr, Vec::new());
            }
            #[cfg(target_arch = "x86_64")]
            for nr in [libc::SYS_socket].into_iter().chain(io_uring) {
                rules.insert(0x4000_0000 | nr, Vec::new());
            }
            let filter = SeccompFilter::new(
                rules,
                SeccompAction::Allow,
                SeccompAction::Errno(REFUSAL_ERRNO as u32),
                arch,
            )
            .unwrap();
            BpfProgram::try_from(filter).unwrap()
        }

        fn socket_rules(allow_udp: bool) -> Vec<SeccompRule> {
            let arg = |index, op, value: libc::c_int| {
                SeccompCondition::new(index, SeccompCmpArgLen::Dword, op, value as u32 as u64)
                    .unwrap()
            };
            let masked = |index, mask: u64, value: u64| {
                let op = SeccompCmpOp::MaskedEq(mask);
                SeccompCondition::new(index, SeccompCmpArgLen::Dword, op, value).unwrap()
            };
            let families = [
                libc::AF_UNIX,
                libc::AF_NETLINK,
                libc::AF_INET,
                libc::AF_INET6,
            ];
            let mut rules = vec![SeccompRule::new(
                families
                    .iter()
                    .map(|&family| arg(0, SeccompCmpOp::Ne, family))
                    .collect(),
            )
            .unwrap()];
            let inet = masked(0, u64::from(INET_FAMILY_MASK), libc::AF_INET as u64);
            let refused: &[(u64, u64)] = if allow_udp {
                &NOT_STREAM_OR_DGRAM
            } else {
                &NOT_STREAM
            };
            for &(mask, sock_type) in refused {
                let rule = vec![inet.clone(), masked(1, mask, sock_type)];
                rules.push(SeccompRule::new(rule).unwrap());
            }
            let mut allowed = vec![(libc::SOCK_STREAM, libc::IPPROTO_TCP)];
            if allow_udp {
                allowed.push((libc::SOCK_DGRAM, libc::IPPROTO_UDP));
            }
            for (sock_type, protocol) in allowed {
                rules.push(
                    SeccompRule::new(vec![
                        inet.clone(),
                        masked(1, u64::from(SOCK_TYPE_MASK), sock_type as u64),
                        arg(2, SeccompCmpOp::Ne, 0),
                        arg(2, SeccompCmpOp::Ne, protocol),
                    ])
                    .unwrap(),
                );
            }
            rules
        }

        #[test]
        fn type_patterns_cover_exactly_the_refused_types() {
            let type_mask = u64::from(SOCK_TYPE_MASK);
            let covered = |patterns: &[(u64, u64)]| -> Vec<u64> {
                (0..=type_mask)
                    .filter(|t| patterns.iter().any(|&(mask, value)| t & mask == value))
                    .collect()
            };
            let all_but = |allowed: &[u64]| -> Vec<u64> {
                (0..=type_mask).filter(|t| !allowed.contains(t)).collect()
            };
            assert_eq!(covered(&NOT_STREAM), all_but(&[1]));
            assert_eq!(covered(&NOT_STREAM_OR_DGRAM), all_but(&[1, 2]));
            // Masks stay inside the type bits, so SOCK_NONBLOCK/SOCK_CLOEXEC never matter.
            for (mask, _) in NOT_STREAM.iter().chain(&NOT_STREAM_OR_DGRAM) {
                assert_eq!(mask & !type_mask, 0);
            }
        }
    }

    #[test]
    fn every_socket_combination_is_decided_as_specified() {
        let flags = [0, libc::SOCK_NONBLOCK, libc::SOCK_CLOEXEC];
        let protocols = [
            0,
            libc::IPPROTO_ICMP,
            libc::IPPROTO_TCP,
            libc::IPPROTO_UDP,
            libc::IPPROTO_ICMPV6,
            libc::IPPROTO_SCTP,
            libc::IPPROTO_UDPLITE,
            libc::IPPROTO_RAW,
            libc::IPPROTO_MPTCP,
            -1,
        ];
        for allow_udp in [false, true] {
            let program = SocketFilter { allow_udp }.compile().unwrap();
            let odd = [
                i32::MAX,
                i32::MIN,
                0x4000_0002,
                0x8000_000a_u32 as i32,
                0x100_000a,
            ];
            for domain in (-1..=64).chain(odd) {
                for ty in 0..=15 {
                    for flag in flags {
                        for protocol in protocols {
                            let got = socket(&program, domain, ty | flag, protocol);
                            let want = expected(allow_udp, domain, ty | flag, protocol);
                            assert_eq!(
                                got, want,
                                "allow_udp={allow_udp} socket({domain}, {ty}|{flag:#x}, \
                                 {protocol}): got {got:#x}, want {want:#x}"
                            );
                        }
                    }
                }
            }
        }
    }

    /// The whole grid: architecture x syscall number x domain x type x protocol x garbage in
    /// the upper halves of the registers (and in the unused arguments), for both UDP
    /// settings, against the plain Rust reference and against the former seccompiler
    /// program.
    #[test]
    fn every_syscall_matches_the_reference_and_the_seccompiler_rules() {
        let arches = [
            NATIVE_ARCH,
            AUDIT_ARCH_I386,
            0x4000_0028,                // AUDIT_ARCH_ARM (AArch32)
            NATIVE_ARCH & !0x4000_0000, // the same machine, big-endian
            // Another 64-bit architecture the module knows.
            if NATIVE_ARCH == 183 | 0xc000_0000 {
                62 | 0xc000_0000
            } else {
                183 | 0xc000_0000
            },
        ];

        let socket = libc::SYS_socket as u32;
        let first = IO_URING_FIRST;
        let base = [
            0,
            socket,
            socket + 1,
            libc::SYS_socketpair as u32,
            first - 1,
            first,
            first + 2,
            first + 3,
        ];
        // Each number alone, with the x32 bit, with the top bit.
        let nrs: Vec<u32> = base
            .iter()
            .flat_map(|&nr| [0, 0x4000_0000, 0x8000_0000].map(|bit| nr | bit))
            .collect();

        let domains = [
            -1,
            libc::AF_UNSPEC,
            libc::AF_UNIX,
            libc::AF_INET,
            3,
            libc::AF_INET6 - 1,
            libc::AF_INET6,
            libc::AF_NETLINK,
            libc::AF_PACKET,
            libc::AF_XDP,
            libc::AF_UNIX | 8,
            libc::AF_NETLINK | 2,
            0x4000_0002,
            0x8000_000a_u32 as i32,
        ];
        // No flags, the two real ones, and every bit above the type (EINVAL to the kernel,
        // so the filter must let the kernel say so for an allowed type).
        let flags = [0, libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, !0xf];
        let protocols = [
            0,
            libc::IPPROTO_TCP,
            libc::IPPROTO_UDP,
            libc::IPPROTO_ICMP,
            libc::IPPROTO_SCTP,
            libc::IPPROTO_MPTCP,
            -1,
        ];
        // Upper halves: each argument gets a different one of these in each round.
        let garbage = [0, 0xffff_ffff_0000_0000_u64, 0xdead_beef_0000_0000];

        let mut checked = 0usize;
        for allow_udp in [false, true] {
            let program = SocketFilter { allow_udp }.compile().unwrap();
            let former = seccompiler_rules::program(allow_udp);
            for &arch in &arches {
                for &nr in &nrs {
                    for domain in domains {
                        for ty in (0..=15).flat_map(|ty| flags.map(|flag| ty | flag)) {
                            for protocol in protocols {
                                for round in 0..garbage.len() {
                                    let high = |i: usize| garbage[(round + i) % garbage.len()];
                                    let args = [
                                        domain as u32 as u64 | high(0),
                                        ty as u32 as u64 | high(1),
                                        protocol as u32 as u64 | high(2),
                                        high(3) | 0xffff_ffff,
                                        high(4),
                                        high(5),
                                    ];
                                    let want = reference(allow_udp, arch, nr, args);
                                    let got = run(&program, arch, i64::from(nr), args);
                                    let old = run(&former, arch, i64::from(nr), args);
                                    assert!(
                                        got == want && old == want,
                                        "allow_udp={allow_udp} arch={arch:#x} nr={nr:#x} \
                                         args={args:#x?}: got {got:#x}, seccompiler rules \
                                         {old:#x}, want {want:#x}\n{}",
                                        listing(&program)
                                    );
                                    checked += 1;
                                }
                            }
                        }
                    }
                }
            }
        }
        println!("{checked} cases agree");
    }

    #[test]
    fn upper_register_halves_are_ignored_like_the_kernel_does() {
        let program = SocketFilter::default().compile().unwrap();
        let high = 0xdead_beef_0000_0000u64;
        let udp = [
            libc::AF_INET as u64 | high,
            libc::SOCK_DGRAM as u64 | high,
            high,
            0,
            0,
            0,
        ];
        assert_eq!(
            run(&program, NATIVE_ARCH, libc::SYS_socket, udp),
            RET_EACCES
        );
        let packet = [libc::AF_PACKET as u64 | high, 3, 0, 0, 0, 0];
        assert_eq!(
            run(&program, NATIVE_ARCH, libc::SYS_socket, packet),
            RET_EACCES
        );
        let tcp = [libc::AF_INET as u64 | high, 1 | high, 6 | high, 0, 0, 0];
        assert_eq!(run(&program, NATIVE_ARCH, libc::SYS_socket, tcp), RET_ALLOW);
    }

    #[test]
    fn io_uring_is_refused_and_other_syscalls_run() {
        for allow_udp in [false, true] {
            let program = SocketFilter { allow_udp }.compile().unwrap();
            for nr in [
                libc::SYS_io_uring_setup,
                libc::SYS_io_uring_enter,
                libc::SYS_io_uring_register,
            ] {
                assert_eq!(run(&program, NATIVE_ARCH, nr, [0; 6]), RET_EACCES);
            }
            for nr in [
                libc::SYS_socketpair,
                libc::SYS_connect,
                libc::SYS_bind,
                libc::SYS_read,
                libc::SYS_execve,
            ] {
                let args = [libc::AF_PACKET as u64, 3, 0, 0, 0, 0];
                assert_eq!(run(&program, NATIVE_ARCH, nr, args), RET_ALLOW, "nr {nr}");
            }
        }
    }

    #[test]
    fn foreign_abi_is_killed() {
        let program = SocketFilter::default().compile().unwrap();
        // i386 socketcall(SYS_SOCKET, ...) and socket(): killed before any rule.
        assert_eq!(
            run(&program, AUDIT_ARCH_I386, 102, [1, 0, 0, 0, 0, 0]),
            RET_KILL_PROCESS
        );
        assert_eq!(
            run(&program, AUDIT_ARCH_I386, 359, [2, 2, 0, 0, 0, 0]),
            RET_KILL_PROCESS
        );
        assert_eq!(run(&program, AUDIT_ARCH_I386, 20, [0; 6]), RET_KILL_PROCESS);
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn x32_aliases_are_refused_outright() {
        let program = SocketFilter { allow_udp: true }.compile().unwrap();
        let tcp = [libc::AF_INET as u64, libc::SOCK_STREAM as u64, 0, 0, 0, 0];
        let x32 = i64::from(X32_SYSCALL_BIT);
        for nr in [
            libc::SYS_socket,
            libc::SYS_io_uring_setup,
            libc::SYS_io_uring_enter,
            libc::SYS_io_uring_register,
        ] {
            assert_eq!(run(&program, NATIVE_ARCH, x32 | nr, tcp), RET_EACCES);
        }
        // Other x32 syscalls are none of this filter's business.
        assert_eq!(
            run(&program, NATIVE_ARCH, x32 | libc::SYS_getpid, [0; 6]),
            RET_ALLOW
        );
    }

    #[test]
    fn program_fits_and_describe_follows_udp() {
        for allow_udp in [false, true] {
            let filter = SocketFilter { allow_udp };
            let program = filter.compile().unwrap();
            // Far below the kernel's 4096 and cheap to evaluate.
            assert!(program.len() < 1024, "{} instructions", program.len());
            let lines = filter.describe();
            assert!(lines.iter().all(|line| REFUSED.contains(&line.as_str())));
            assert_eq!(
                lines.contains(&REFUSED_DATAGRAM.to_string()),
                !allow_udp,
                "{lines:?}"
            );
            assert_eq!(
                lines.contains(&REFUSED_DATAGRAM_WITH_UDP.to_string()),
                allow_udp
            );
        }
    }

    /// Prints both programs (`--nocapture`) and keeps them from growing unnoticed.
    #[test]
    fn program_is_short() {
        for allow_udp in [false, true] {
            let program = SocketFilter { allow_udp }.compile().unwrap();
            let former = seccompiler_rules::program(allow_udp);
            println!(
                "allow_udp={allow_udp}: {} instructions (seccompiler rules: {})\n{}",
                program.len(),
                former.len(),
                listing(&program)
            );
            let x32 = if cfg!(target_arch = "x86_64") { 3 } else { 0 };
            let udp = if allow_udp { 3 } else { 0 };
            assert_eq!(program.len(), 20 + x32 + udp, "{}", listing(&program));
        }
    }

    #[test]
    fn return_values_are_seccompilers() {
        assert_eq!(RET_ALLOW, u32::from(SeccompAction::Allow));
        assert_eq!(RET_ALLOW, super::RET_ALLOW);
        let refuse = SeccompAction::Errno(REFUSAL_ERRNO as u32);
        assert_eq!(RET_EACCES, u32::from(refuse));
        assert_eq!(RET_EACCES, RET_REFUSE);
        assert_eq!(RET_KILL_PROCESS, u32::from(SeccompAction::KillProcess));
        assert_eq!(RET_KILL_PROCESS, RET_KILL);
    }

    #[test]
    fn compile_and_install_use_the_same_program() {
        for allow_udp in [false, true] {
            let filter = SocketFilter { allow_udp };
            assert_eq!(filter.compile().unwrap(), filter.program().unwrap());
        }
    }

    #[test]
    fn assembler_resolves_labels() {
        use Label::{Allow, Next, Refuse};
        let mut asm = Assembler::new();
        asm.load(NR);
        asm.jump(libc::BPF_JEQ, 1, Allow, Next);
        asm.jump(libc::BPF_JGT, 2, Allow, Refuse);
        asm.bind(Allow);
        asm.ret(RET_ALLOW);
        asm.bind(Refuse);
        asm.ret(RET_EACCES);
        let program = asm.finish().instructions().to_vec();
        assert_eq!(program.len(), 5);
        assert_eq!((program[1].jt, program[1].jf), (1, 0));
        assert_eq!((program[2].jt, program[2].jf), (0, 1));
        for (nr, want) in [
            (0, RET_EACCES),
            (1, RET_ALLOW),
            (2, RET_EACCES),
            (3, RET_ALLOW),
        ] {
            assert_eq!(run(&program, NATIVE_ARCH, nr, [0; 6]), want, "nr {nr}");
        }
    }

    // What the kernel would reject panics (a build error for the filter's own programs).

    #[test]
    #[should_panic(expected = "BPF label not bound")]
    fn assembler_rejects_an_unbound_label() {
        let mut asm = Assembler::new();
        asm.jump(libc::BPF_JEQ, 0, Label::Kill, Label::Next);
        asm.ret(RET_ALLOW);
        asm.finish();
    }

    #[test]
    #[should_panic(expected = "BPF jump out of reach")]
    fn assembler_rejects_a_backward_jump() {
        let mut asm = Assembler::new();
        asm.bind(Label::Allow);
        asm.jump(libc::BPF_JEQ, 0, Label::Allow, Label::Next);
        asm.ret(RET_ALLOW);
        asm.finish();
    }

    #[test]
    #[should_panic(expected = "BPF jump out of reach")]
    fn assembler_rejects_a_label_past_the_end() {
        let mut asm = Assembler::new();
        asm.jump(libc::BPF_JEQ, 0, Label::Allow, Label::Next);
        asm.ret(RET_ALLOW);
        asm.bind(Label::Allow);
        asm.finish();
    }

    #[test]
    #[should_panic(expected = "BPF label bound twice")]
    fn assembler_rejects_a_label_bound_twice() {
        let mut asm = Assembler::new();
        asm.bind(Label::Allow);
        asm.bind(Label::Allow);
    }

    #[test]
    #[should_panic(expected = "BPF label Next cannot be bound")]
    fn assembler_rejects_binding_next() {
        Assembler::new().bind(Label::Next);
    }

    #[test]
    #[should_panic(expected = "does not end with a ret")]
    fn assembler_rejects_a_program_running_off_its_end() {
        let mut asm = Assembler::new();
        asm.load(NR);
        asm.finish();
    }

    #[test]
    #[should_panic(expected = "capacity")]
    fn assembler_rejects_a_program_over_capacity() {
        let mut asm = Assembler::new();
        for _ in 0..=CAPACITY {
            asm.load(NR);
        }
    }

    /// Attach cost of the hand-written program against the seccompiler one it replaced (and a
    /// one-instruction program, for the fixed part), each compiled and attached in a fresh
    /// child as in moat, interleaved. Timing only, nothing asserted; run it by hand:
    /// `RUSTFLAGS="--cfg moat_bench" cargo test --release -p moat-sandbox --lib attach_cost -- --nocapture`
    /// (a measurement, not a test: compiled only on request so the suite has no timed code).
    #[cfg(moat_bench)]
    #[test]
    fn attach_cost_hand_written_vs_seccompiler() {
        use std::time::{Duration, Instant};
        const ROUNDS: usize = 2000;

        type Build = fn() -> BpfProgram;
        let variants: [(&str, Build); 5] = [
            ("hand-written, no UDP", || {
                SocketFilter { allow_udp: false }.compile().unwrap()
            }),
            ("hand-written, UDP", || {
                SocketFilter { allow_udp: true }.compile().unwrap()
            }),
            ("seccompiler rules, no UDP", || {
                seccompiler_rules::program(false)
            }),
            ("seccompiler rules, UDP", || {
                seccompiler_rules::program(true)
            }),
            ("one instruction (ret ALLOW)", || {
                let mut asm = Assembler::new();
                asm.ret(RET_ALLOW);
                asm.finish().instructions().to_vec()
            }),
        ];

        /// Forks a child that builds and attaches one program; returns (build, attach) ns.
        fn in_child(build: Build) -> [u64; 2] {
            let mut fds = [-1; 2];
            // SAFETY: fds has room for two descriptors.
            assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
            // SAFETY: the child only allocates (glibc malloc is fork-safe), makes syscalls
            // and leaves with _exit.
            let pid = unsafe { libc::fork() };
            assert!(pid >= 0);
            if pid == 0 {
                let start = Instant::now();
                let program = build();
                let built = start.elapsed();
                let ok = seccompiler::apply_filter(&program).is_ok();
                let attached = start.elapsed() - built;
                let times = [built.as_nanos() as u64, attached.as_nanos() as u64];
                let bytes: Vec<u8> = times.iter().flat_map(|t| t.to_ne_bytes()).collect();
                // SAFETY: writing a valid buffer, then leaving the child.
                unsafe {
                    let n = libc::write(fds[1], bytes.as_ptr().cast(), bytes.len());
                    libc::_exit(if ok && n == 16 { 0 } else { 1 });
                }
            }
            let mut bytes = [0u8; 16];
            // SAFETY: closing our copy of the write end, reading into a valid buffer,
            // waiting for our own child.
            unsafe {
                libc::close(fds[1]);
                assert_eq!(libc::read(fds[0], bytes.as_mut_ptr().cast(), 16), 16);
                libc::close(fds[0]);
                let mut status = 0;
                assert_eq!(libc::waitpid(pid, &mut status, 0), pid);
                assert_eq!(status, 0, "child failed");
            }
            let word = |i: usize| u64::from_ne_bytes(bytes[i * 8..i * 8 + 8].try_into().unwrap());
            [word(0), word(1)]
        }

        let mut samples = vec![(Vec::new(), Vec::new()); variants.len()];
        for round in 0..ROUNDS {
            // A different order each round, so drifts hit every variant alike.
            for i in 0..variants.len() {
                let v = (i * (round % 2 * 2 + 1) + round) % variants.len();
                let [built, attached] = in_child(variants[v].1);
                samples[v].0.push(Duration::from_nanos(built));
                samples[v].1.push(Duration::from_nanos(attached));
            }
        }
        let pct = |sorted: &[Duration], p: usize| sorted[(sorted.len() - 1) * p / 100];
        println!("{ROUNDS} fresh children per variant, interleaved:");
        let mut medians = Vec::new();
        for ((name, build), (built, attached)) in variants.iter().zip(&mut samples) {
            built.sort();
            attached.sort();
            let len = build().len();
            medians.push((len, pct(attached, 50)));
            println!(
                "  {name:28} {len:4} insns: build median {:>9?}; attach (prctl + seccomp) \
                 median {:>9?}, p10 {:>9?}, p90 {:>9?}",
                pct(built, 50),
                pct(attached, 50),
                pct(attached, 10),
                pct(attached, 90),
            );
        }
        // What each costs above the one-instruction program. Not linear in the length: the
        // kernel also runs the program for every syscall number (its action cache), so the
        // path most numbers take counts too.
        let (base_len, base) = medians[4];
        for (name, (len, median)) in variants.iter().map(|v| v.0).zip(&medians).take(4) {
            let above = median.saturating_sub(base);
            let per = above.as_nanos() as f64 / (len - base_len) as f64;
            println!(
                "  {name:28} {above:>9?} above the one-instruction program ({per:.0} ns per \
                 added instruction)"
            );
        }
    }
}
