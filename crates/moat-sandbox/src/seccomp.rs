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
//! seccompiler's architecture check, which runs before any rule. A consequence is that a
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

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

/// The errno every refused call returns.
///
/// `EACCES` is what Landlock returns for a denied TCP bind/connect, so a program sees the same
/// error whichever layer refused it. For io_uring it is also what an LSM (SELinux's
/// `io_uring` permissions) returns when it denies `io_uring_setup`, so programs that probe for
/// io_uring already take their fallback path on it. One errno for the whole filter also keeps
/// it a single seccompiler program with a single match action.
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
/// report the x86_64 audit arch, so seccompiler's arch check lets them through, and its
/// rules, which compare exact numbers, would not match them: they need rules of their own.
#[cfg(target_arch = "x86_64")]
const X32_SYSCALL_BIT: i64 = 0x4000_0000;

/// `SOCK_TYPE_MASK` in the kernel: the socket type is the low four bits of `socket`'s second
/// argument; the rest holds `SOCK_NONBLOCK`/`SOCK_CLOEXEC` (anything else is `EINVAL`).
const SOCK_TYPE_MASK: u64 = 0xf;

/// `(mask, value)` patterns on the socket type whose union is every type but `SOCK_STREAM`
/// (1). seccompiler has no "masked not equal", and one rule per refused type would double
/// the program, whose size is most of what installing it costs.
const NOT_STREAM: [(u64, u64); 4] = [
    // AF_INET + SOCK_PACKET is the obsolete spelling of a packet socket, hence listed.
    (0x1, 0x0), // even: 0, 2 (DGRAM), 4 (RDM), 6 (DCCP), 8, 10 (PACKET), 12, 14
    (0x3, 0x3), // 3 (RAW), 7, 11, 15
    (0x5, 0x5), // 5 (SEQPACKET), 7, 13, 15
    (0x9, 0x9), // 9, 11, 13, 15
];

/// The same for every type but `SOCK_STREAM` (1) and `SOCK_DGRAM` (2).
const NOT_STREAM_OR_DGRAM: [(u64, u64); 6] = [
    (0x3, 0x0), // 0, 4 (RDM), 8, 12
    (0x6, 0x6), // 6 (DCCP), 7, 14, 15
    (0xa, 0xa), // 10 (PACKET), 11, 14, 15
    (0x3, 0x3), // 3 (RAW), 7, 11, 15
    (0x5, 0x5), // 5 (SEQPACKET), 7, 13, 15
    (0x9, 0x9), // 9, 11, 13, 15
];

/// The families let through: `AF_UNIX` and `AF_NETLINK` never leave the host (Landlock
/// scopes and filesystem rules cover `AF_UNIX`), and `AF_INET`/`AF_INET6` are narrowed below
/// to what Landlock's port rules govern.
const ALLOWED_FAMILIES: [libc::c_int; 4] = [
    libc::AF_UNIX,
    libc::AF_NETLINK,
    libc::AF_INET,
    libc::AF_INET6,
];

/// `domain & INET_FAMILY_MASK == AF_INET` holds for `AF_INET` and `AF_INET6` only (on the 32
/// bits the kernel reads).
const INET_FAMILY_MASK: u64 = 0xffff_ffff & !((libc::AF_INET ^ libc::AF_INET6) as u64);

// The mask trick needs AF_INET6 to be AF_INET plus exactly one bit.
const _: () = assert!(
    (libc::AF_INET ^ libc::AF_INET6).count_ones() == 1 && libc::AF_INET6 & !libc::AF_INET != 0
);

/// Errors from building or installing the socket filter.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    /// seccompiler cannot generate a filter for this CPU architecture.
    #[error(
        "cannot build the seccomp socket filter on {arch}: seccompiler supports x86_64, \
         aarch64 and riscv64"
    )]
    UnsupportedArch {
        /// The architecture moat was built for.
        arch: &'static str,
    },
    /// seccompiler rejected the filter (a bug in this module: its input is constant).
    #[error("cannot build the seccomp socket filter: {source}")]
    Build {
        /// seccompiler's reason.
        source: seccompiler::BackendError,
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

impl From<seccompiler::BackendError> for SeccompError {
    fn from(source: seccompiler::BackendError) -> Self {
        SeccompError::Build { source }
    }
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

impl SocketFilter {
    /// Builds the BPF program for the native architecture.
    ///
    /// Pure: it does not touch the calling process. It runs on every sandboxed launch, and
    /// the kernel's cost of installing the result grows with its length, so the rules are
    /// kept few (about a hundred BPF instructions).
    pub fn compile(&self) -> Result<BpfProgram, SeccompError> {
        let arch = TargetArch::try_from(std::env::consts::ARCH).map_err(|_| {
            SeccompError::UnsupportedArch {
                arch: std::env::consts::ARCH,
            }
        })?;

        let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
        rules.insert(libc::SYS_socket, self.socket_rules()?);
        // An empty rule list means "whatever the arguments".
        for nr in [
            libc::SYS_io_uring_setup,
            libc::SYS_io_uring_enter,
            libc::SYS_io_uring_register,
        ] {
            rules.insert(nr, Vec::new());
        }
        // Refused outright, not just the socket() cases above: nothing moat runs uses x32,
        // and a kernel without CONFIG_X86_X32_ABI would say ENOSYS to them anyway.
        #[cfg(target_arch = "x86_64")]
        for nr in [
            libc::SYS_socket,
            libc::SYS_io_uring_setup,
            libc::SYS_io_uring_enter,
            libc::SYS_io_uring_register,
        ] {
            rules.insert(X32_SYSCALL_BIT | nr, Vec::new());
        }

        let filter = SeccompFilter::new(
            rules,
            // Everything the rules do not match runs: this is a gap filler, not an allowlist.
            SeccompAction::Allow,
            SeccompAction::Errno(REFUSAL_ERRNO as u32),
            arch,
        )?;
        Ok(BpfProgram::try_from(filter)?)
    }

    /// Compiles the filter and installs it on the calling thread.
    ///
    /// Sets `no_new_privs` first (seccomp requires it without `CAP_SYS_ADMIN`; it is
    /// idempotent, and Landlock needs it too). The filter applies to the calling thread only
    /// (no `SECCOMP_FILTER_FLAG_TSYNC`): moat calls this single-threaded, right before
    /// `execve`, and the filter is inherited by every child and kept across `execve`. It
    /// cannot be removed afterwards.
    pub fn install(&self) -> Result<(), SeccompError> {
        let program = self.compile()?;
        seccompiler::apply_filter(&program).map_err(|error| match error {
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

    /// The rules under which `socket(domain, type, protocol)` is refused (any one matching
    /// refuses; all conditions of a rule must hold).
    ///
    /// All comparisons are on 32 bits (`Dword`) because the kernel declares the three
    /// arguments `int` and ignores the upper halves of the registers: comparing 64 bits would
    /// let `AF_INET | 1 << 32` slip past a rule the kernel then treats as `AF_INET`.
    fn socket_rules(&self) -> Result<Vec<SeccompRule>, SeccompError> {
        const DOMAIN: u8 = 0;
        const TYPE: u8 = 1;
        const PROTOCOL: u8 = 2;
        let arg = |index, op, value: libc::c_int| {
            // Sign-extending then truncating to 32 bits gives the register's low half.
            SeccompCondition::new(index, SeccompCmpArgLen::Dword, op, value as u32 as u64)
        };
        let masked_type = |mask: u64, sock_type: u64| {
            SeccompCondition::new(
                TYPE,
                SeccompCmpArgLen::Dword,
                SeccompCmpOp::MaskedEq(mask),
                sock_type,
            )
        };

        let mut rules = Vec::with_capacity(1 + NOT_STREAM_OR_DGRAM.len() + 2);

        // Unknown families: not one of the allowed ones.
        rules.push(SeccompRule::new(
            ALLOWED_FAMILIES
                .iter()
                .map(|&family| arg(DOMAIN, SeccompCmpOp::Ne, family))
                .collect::<Result<_, _>>()?,
        )?);

        // One condition matches both IP families: AF_INET6 (10) is AF_INET (2) plus bit 3, so
        // `domain & !8 == 2` holds for exactly those two values. This halves the rules.
        let inet = SeccompCondition::new(
            DOMAIN,
            SeccompCmpArgLen::Dword,
            SeccompCmpOp::MaskedEq(INET_FAMILY_MASK),
            libc::AF_INET as u64,
        )?;
        let refused_types: &[(u64, u64)] = if self.allow_udp {
            &NOT_STREAM_OR_DGRAM
        } else {
            &NOT_STREAM
        };
        for &(mask, sock_type) in refused_types {
            rules.push(SeccompRule::new(vec![
                inet.clone(),
                masked_type(mask, sock_type)?,
            ])?);
        }

        // Protocol 0 means the first protocol registered for the type: TCP for streams, UDP
        // for datagrams. Only those are what Landlock's port rules govern.
        let mut allowed = vec![(libc::SOCK_STREAM, libc::IPPROTO_TCP)];
        if self.allow_udp {
            allowed.push((libc::SOCK_DGRAM, libc::IPPROTO_UDP));
        }
        for (sock_type, protocol) in allowed {
            rules.push(SeccompRule::new(vec![
                inet.clone(),
                masked_type(SOCK_TYPE_MASK, sock_type as u64)?,
                arg(PROTOCOL, SeccompCmpOp::Ne, 0)?,
                arg(PROTOCOL, SeccompCmpOp::Ne, protocol)?,
            ])?);
        }
        Ok(rules)
    }
}

#[cfg(test)]
mod tests {
    //! The compiled program is checked by running it in a small classic-BPF interpreter over
    //! every combination that matters, including ones the kernel tests cannot reach (x32 on a
    //! kernel without x32, garbage in the upper halves of arguments).

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
        let mut data = Vec::with_capacity(64);
        data.extend_from_slice(&(nr as i32).to_ne_bytes());
        data.extend_from_slice(&arch.to_ne_bytes());
        data.extend_from_slice(&0u64.to_ne_bytes());
        for arg in args {
            data.extend_from_slice(&arg.to_ne_bytes());
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

    #[test]
    fn type_patterns_cover_exactly_the_refused_types() {
        let covered = |patterns: &[(u64, u64)]| -> Vec<u64> {
            (0..=SOCK_TYPE_MASK)
                .filter(|t| patterns.iter().any(|&(mask, value)| t & mask == value))
                .collect()
        };
        let all_but = |allowed: &[u64]| -> Vec<u64> {
            (0..=SOCK_TYPE_MASK)
                .filter(|t| !allowed.contains(t))
                .collect()
        };
        assert_eq!(covered(&NOT_STREAM), all_but(&[1]));
        assert_eq!(covered(&NOT_STREAM_OR_DGRAM), all_but(&[1, 2]));
        // Masks stay inside the type bits, so SOCK_NONBLOCK/SOCK_CLOEXEC never matter.
        for (mask, _) in NOT_STREAM.iter().chain(&NOT_STREAM_OR_DGRAM) {
            assert_eq!(mask & !SOCK_TYPE_MASK, 0);
        }
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
        for nr in [
            libc::SYS_socket,
            libc::SYS_io_uring_setup,
            libc::SYS_io_uring_enter,
            libc::SYS_io_uring_register,
        ] {
            assert_eq!(
                run(&program, NATIVE_ARCH, X32_SYSCALL_BIT | nr, tcp),
                RET_EACCES
            );
        }
        // Other x32 syscalls are none of this filter's business.
        assert_eq!(
            run(
                &program,
                NATIVE_ARCH,
                X32_SYSCALL_BIT | libc::SYS_getpid,
                [0; 6]
            ),
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
}
