//! What moat's seccomp layer refuses: the one table.
//!
//! Every fact about the seccomp layer lives in [`TABLE`]: which calls (and which arguments)
//! are refused, under which policy condition, and the sentence that tells users so. The BPF
//! program (`super::bpf`) is assembled from it at compile time, [`decide`] interprets it
//! (the specification the program is tested against, and what the tracer uses to tell a
//! socket the seal would refuse), `moat check` prints its sentences ([`Seal::describe`]),
//! and the watchdog's IPC seal is its `ipc` rows. Adding a refused call means adding a row.

/// A system call by name and native number.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Syscall {
    /// Its name, for messages.
    pub name: &'static str,
    /// Its number in the native ABI.
    pub nr: libc::c_long,
}

const fn sc(name: &'static str, nr: libc::c_long) -> Syscall {
    Syscall { name, nr }
}

/// What a row matches.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A system call through another ABI than the native one: the i386 `int 0x80` ABI
    /// (and its `socketcall`) and the x32 ABI on x86_64, AArch32 on aarch64. Its action is
    /// to kill the process: it is checked before the number, which is per ABI.
    ForeignAbi,
    /// These system calls, whatever their arguments.
    Syscalls(&'static [Syscall]),
    /// `ioctl(fd, request, ...)` with one of these requests. The kernel reads the request
    /// as an `unsigned int`, so only its low 32 bits count (here too).
    Ioctls(&'static [(&'static str, u32)]),
    /// `socket(family, ...)` for this family.
    SocketFamily(i32),
    /// `socket(family, ...)` for every family but these.
    SocketFamiliesExcept(&'static [i32]),
    /// `socket(AF_INET or AF_INET6, type, ...)` for this type (without `SOCK_NONBLOCK` and
    /// `SOCK_CLOEXEC`).
    InetType(i32),
    /// `socket(AF_INET or AF_INET6, type, ...)` for every type but these.
    InetTypesExcept(&'static [i32]),
    /// `socket(AF_INET or AF_INET6, ty, protocol)` for every protocol but these.
    InetProtocolsExcept {
        /// The socket type.
        ty: i32,
        /// The protocols left alone.
        allowed: &'static [i32],
    },
    /// `socket(AF_NETLINK, ..., protocol)` for this protocol.
    NetlinkProtocol(i32),
    /// `socket(AF_UNIX, type, ...)` and `socketpair(AF_UNIX, type, ...)` for this type
    /// (without `SOCK_NONBLOCK` and `SOCK_CLOEXEC`).
    UnixType(i32),
}

/// When a row applies: a condition on the [`Seal`].
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum When {
    /// In every sandbox.
    Always,
    /// When the network is sealed ([`Seal::network`]).
    Network,
    /// When the network is sealed and UDP is not allowed.
    NetworkWithoutUdp,
    /// When the network is sealed and UDP is allowed.
    NetworkWithUdp,
    /// When unix sockets are refused ([`Seal::unix`]).
    Unix,
    /// When `listen` is refused ([`Seal::listen`]).
    Listen,
    /// When the IPC seal is on ([`Seal::ipc`]).
    Ipc,
    /// When `listen` goes to the supervisor ([`Seal::supervise_listen`]) and is not refused
    /// outright.
    SuperviseListen,
    /// When `connect` goes to the supervisor ([`Seal::supervise_connect`]).
    SuperviseConnect,
}

/// What happens to a matching call.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// It fails with `super::REFUSAL_ERRNO`.
    Refuse,
    /// The process is killed with `SIGSYS`.
    Kill,
    /// moat's supervisor decides, and performs the call itself on a duplicate of the
    /// caller's descriptor (`crate::supervise`); without a supervisor, the call fails
    /// with `ENOSYS`.
    Supervise,
}

/// One row of the table.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// What it matches.
    pub target: Target,
    /// When it applies.
    pub when: When,
    /// What it does.
    pub action: Action,
    /// What it means, for users (`moat check`, the watchdog's start-up report, docs).
    pub text: &'static str,
}

// Socket types and protocols libc does not export for every target (linux/net.h, in.h).
const NETLINK_SOCK_DIAG: i32 = 4;

/// Every family moat's network seal leaves to Landlock or to no one: unix sockets (files,
/// scopes), netlink (the kernel), IPv4 and IPv6 (Landlock's port rules).
pub(crate) const SEALED_NETWORK_FAMILIES: &[i32] = &[
    libc::AF_UNIX,
    libc::AF_NETLINK,
    libc::AF_INET,
    libc::AF_INET6,
];

const IO_URING: &[Syscall] = &[
    sc("io_uring_setup", libc::SYS_io_uring_setup),
    sc("io_uring_enter", libc::SYS_io_uring_enter),
    sc("io_uring_register", libc::SYS_io_uring_register),
];

const LISTEN: &[Syscall] = &[sc("listen", libc::SYS_listen)];

const CONNECT: &[Syscall] = &[sc("connect", libc::SYS_connect)];

/// SysV IPC, POSIX message queues and keyrings: kernel objects any process of the user can
/// find and that Landlock does not see, through which one watchdog call could leave data
/// for the next.
const IPC: &[Syscall] = &[
    sc("shmget", libc::SYS_shmget),
    sc("shmat", libc::SYS_shmat),
    sc("shmctl", libc::SYS_shmctl),
    sc("shmdt", libc::SYS_shmdt),
    sc("semget", libc::SYS_semget),
    sc("semop", libc::SYS_semop),
    sc("semctl", libc::SYS_semctl),
    sc("semtimedop", libc::SYS_semtimedop),
    sc("msgget", libc::SYS_msgget),
    sc("msgsnd", libc::SYS_msgsnd),
    sc("msgrcv", libc::SYS_msgrcv),
    sc("msgctl", libc::SYS_msgctl),
    sc("mq_open", libc::SYS_mq_open),
    sc("mq_unlink", libc::SYS_mq_unlink),
    sc("mq_timedsend", libc::SYS_mq_timedsend),
    sc("mq_timedreceive", libc::SYS_mq_timedreceive),
    sc("mq_notify", libc::SYS_mq_notify),
    sc("mq_getsetattr", libc::SYS_mq_getsetattr),
    sc("add_key", libc::SYS_add_key),
    sc("request_key", libc::SYS_request_key),
    sc("keyctl", libc::SYS_keyctl),
];

/// Everything the seccomp layer refuses. Rows are independent: the program refuses a call
/// when any applicable row matches it.
pub const TABLE: &[Entry] = &[
    Entry {
        target: Target::ForeignAbi,
        when: When::Always,
        action: Action::Kill,
        text: "system calls through another ABI than the native one (i386 int 0x80 and its \
               socketcall, x32 on x86_64; AArch32 on aarch64) kill the process with SIGSYS: \
               32-bit programs cannot run in a moat sandbox",
    },
    Entry {
        target: Target::Syscalls(IO_URING),
        when: When::Always,
        action: Action::Refuse,
        text: "io_uring_setup, io_uring_enter, io_uring_register: refused with EACCES, \
               because io_uring creates sockets, listens and connects without the socket \
               system calls",
    },
    Entry {
        target: Target::Ioctls(&[
            ("TIOCSTI", libc::TIOCSTI as u32),
            ("TIOCLINUX", libc::TIOCLINUX as u32),
        ]),
        when: When::Always,
        action: Action::Refuse,
        text: "ioctl TIOCSTI and TIOCLINUX: refused with EACCES, so the sandbox cannot push \
               keystrokes into the terminal it was started from (whatever \
               dev.tty.legacy_tiocsti says)",
    },
    Entry {
        target: Target::Syscalls(LISTEN),
        when: When::Listen,
        action: Action::Refuse,
        text: "listen(): refused with EACCES, because the policy allows no TCP bind port and \
               no unix socket (listen() on an unbound socket makes the kernel pick a port \
               without the bind check Landlock makes)",
    },
    Entry {
        target: Target::Syscalls(LISTEN),
        when: When::SuperviseListen,
        action: Action::Supervise,
        text: "listen(): decided by moat's supervisor, which listens on the caller's socket \
               itself when it is a TCP socket bound to an allowed port or a unix socket bound \
               to a path (where the policy let it create one), and refuses with EACCES \
               anything else, a socket that was never bound included",
    },
    Entry {
        target: Target::Syscalls(CONNECT),
        when: When::SuperviseConnect,
        action: Action::Supervise,
        text: "connect(): performed by moat's supervisor on the caller's socket: pathname \
               unix sockets only at the paths the policy names (before Landlock ABI 9), TCP \
               only to the ports the policy allows; anything else EACCES",
    },
    Entry {
        target: Target::UnixType(libc::SOCK_DGRAM),
        when: When::SuperviseConnect,
        action: Action::Refuse,
        text: "socket() and socketpair() of AF_UNIX SOCK_DGRAM: refused, because a \
               datagram socket names its destination in every send (a socketpair's too), \
               which the supervisor does not see",
    },
    Entry {
        target: Target::SocketFamily(libc::AF_UNIX),
        when: When::Unix,
        action: Action::Refuse,
        text: "socket(AF_UNIX): refused with EACCES, because the policy allows no pathname \
               unix socket and Landlock controls connecting to them only from ABI 9 \
               (socketpair stays allowed)",
    },
    Entry {
        target: Target::SocketFamiliesExcept(SEALED_NETWORK_FAMILIES),
        when: When::Network,
        action: Action::Refuse,
        text: "socket(): every address family but AF_UNIX, AF_NETLINK, AF_INET and AF_INET6 \
               (AF_PACKET, AF_VSOCK, AF_XDP, AF_BLUETOOTH, AF_CAN, ...) is refused with EACCES",
    },
    Entry {
        target: Target::InetTypesExcept(&[libc::SOCK_STREAM, libc::SOCK_DGRAM]),
        when: When::Network,
        action: Action::Refuse,
        text: "socket(AF_INET/AF_INET6): SOCK_RAW, SOCK_SEQPACKET, SOCK_RDM, SOCK_DCCP, \
               SOCK_PACKET and every other type but SOCK_STREAM and SOCK_DGRAM are refused \
               with EACCES, with or without SOCK_NONBLOCK/SOCK_CLOEXEC",
    },
    Entry {
        target: Target::InetProtocolsExcept {
            ty: libc::SOCK_STREAM,
            allowed: &[0, libc::IPPROTO_TCP],
        },
        when: When::Network,
        action: Action::Refuse,
        text: "socket(AF_INET/AF_INET6, SOCK_STREAM): every protocol but 0 and IPPROTO_TCP \
               (MPTCP, SCTP) is refused with EACCES: Landlock's TCP rules do not apply to \
               them",
    },
    Entry {
        target: Target::InetType(libc::SOCK_DGRAM),
        when: When::NetworkWithoutUdp,
        action: Action::Refuse,
        text: "socket(AF_INET/AF_INET6, SOCK_DGRAM): refused with EACCES (UDP, ICMP ping, \
               UDP-Lite), because the policy does not allow UDP",
    },
    Entry {
        target: Target::InetProtocolsExcept {
            ty: libc::SOCK_DGRAM,
            allowed: &[0, libc::IPPROTO_UDP],
        },
        when: When::NetworkWithUdp,
        action: Action::Refuse,
        text: "socket(AF_INET/AF_INET6, SOCK_DGRAM): every protocol but 0 and IPPROTO_UDP \
               (ICMP ping, UDP-Lite) is refused with EACCES; UDP itself is allowed",
    },
    Entry {
        target: Target::NetlinkProtocol(NETLINK_SOCK_DIAG),
        when: When::Ipc,
        action: Action::Refuse,
        text: "socket(AF_NETLINK, NETLINK_SOCK_DIAG): refused with EACCES, because it lists \
               every socket of the network namespace, with the path a unix socket is bound to",
    },
    Entry {
        target: Target::Syscalls(IPC),
        when: When::Ipc,
        action: Action::Refuse,
        text: "SysV shared memory, semaphores and message queues, POSIX message queues and \
               keyrings (shmget, semget, msgget, mq_open, add_key, keyctl, ...): refused with \
               EACCES, because Landlock does not see them and they outlive a call",
    },
];

/// Which conditional rows of [`TABLE`] are in force: the seccomp side of a plan.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct Seal {
    /// Refuse the sockets Landlock cannot see: set whenever moat's own dialect restricts
    /// the network.
    pub network: bool,
    /// With `network`: UDP sockets stay allowed (explicitly allowed, enforced by Landlock,
    /// or dropped in best-effort mode).
    pub allow_udp: bool,
    /// Refuse `socket(AF_UNIX)`: the policy allows no pathname unix socket and Landlock
    /// cannot enforce that (before ABI 9).
    pub unix: bool,
    /// Refuse `listen()`: the policy allows no TCP bind port and no unix socket.
    pub listen: bool,
    /// The watchdog's IPC seal.
    pub ipc: bool,
    /// `listen()` goes to the supervisor: the policy allows some bind port or unix socket.
    pub supervise_listen: bool,
    /// `connect()` goes to the supervisor, and unix datagram sockets are refused: the policy
    /// names pathname unix sockets that Landlock cannot tell apart (before ABI 9).
    pub supervise_connect: bool,
}

impl Seal {
    /// How many distinct seals there are.
    pub const COUNT: usize = 128;

    /// The seals without a supervised row: their programs are assembled at compile time.
    pub const UNSUPERVISED: usize = 32;

    /// Whether `when` holds under this seal.
    pub const fn holds(self, when: When) -> bool {
        match when {
            When::Always => true,
            When::Network => self.network,
            When::NetworkWithoutUdp => self.network && !self.allow_udp,
            When::NetworkWithUdp => self.network && self.allow_udp,
            When::Unix => self.unix,
            When::Listen => self.listen,
            When::Ipc => self.ipc,
            When::SuperviseListen => self.supervise_listen && !self.listen,
            When::SuperviseConnect => self.supervise_connect,
        }
    }

    /// Whether a supervisor must hold the filter's listener.
    pub const fn supervised(self) -> bool {
        self.holds(When::SuperviseListen) || self.holds(When::SuperviseConnect)
    }

    /// The seal's index among [`Seal::COUNT`] (`allow_udp` counts only with `network`).
    pub const fn index(self) -> usize {
        (self.network as usize)
            | ((self.network && self.allow_udp) as usize) << 1
            | (self.unix as usize) << 2
            | (self.listen as usize) << 3
            | (self.ipc as usize) << 4
            | ((self.supervise_listen && !self.listen) as usize) << 5
            | (self.supervise_connect as usize) << 6
    }

    /// The seal with this index.
    pub const fn from_index(i: usize) -> Seal {
        Seal {
            network: i & 1 != 0,
            allow_udp: i & 2 != 0,
            unix: i & 4 != 0,
            listen: i & 8 != 0,
            ipc: i & 16 != 0,
            supervise_listen: i & 32 != 0,
            supervise_connect: i & 64 != 0,
        }
    }

    /// The rows in force, in table order.
    pub fn entries(self) -> impl Iterator<Item = &'static Entry> {
        TABLE.iter().filter(move |e| self.holds(e.when))
    }

    /// One sentence per row in force, for `moat check` and the watchdog's report.
    pub fn describe(self) -> Vec<&'static str> {
        self.entries().map(|e| e.text).collect()
    }
}

/// What the seccomp layer does with one call.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// It runs.
    Allow,
    /// It fails with EACCES, because of this row.
    Refuse(&'static Entry),
    /// The process is killed, because of this row.
    Kill(&'static Entry),
    /// The supervisor decides, because of this row.
    Supervise(&'static Entry),
}

/// How a call is made: the ABI's audit architecture, the number and the six arguments as
/// the registers hold them.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Call {
    /// `AUDIT_ARCH_*` of the ABI the call came through.
    pub arch: u32,
    /// The system call number.
    pub nr: u32,
    /// The arguments.
    pub args: [u64; 6],
}

/// Whether `call` comes through the native ABI.
pub(crate) fn is_native(arch: u32, nr: u32) -> bool {
    Some(arch) == super::NATIVE_AUDIT_ARCH
        && (!cfg!(target_arch = "x86_64") || nr & super::X32_SYSCALL_BIT == 0)
}

/// What the program of `seal` decides for `call`: the table read as plain Rust. The first
/// matching row in force decides; the tests hold the assembled program to this.
pub fn decide(seal: Seal, call: Call) -> Decision {
    for e in seal.entries() {
        if matches(e.target, call) {
            return match e.action {
                Action::Refuse => Decision::Refuse(e),
                Action::Kill => Decision::Kill(e),
                Action::Supervise => Decision::Supervise(e),
            };
        }
    }
    Decision::Allow
}

/// What the seal decides for `socket(domain, ty, protocol)` through the native ABI.
pub(crate) fn decide_socket(seal: Seal, domain: i32, ty: i32, protocol: i32) -> Decision {
    decide(
        seal,
        Call {
            arch: super::NATIVE_AUDIT_ARCH.unwrap_or(0),
            nr: libc::SYS_socket as u32,
            args: [
                domain as u32 as u64,
                ty as u32 as u64,
                protocol as u32 as u64,
                0,
                0,
                0,
            ],
        },
    )
}

/// The low 32 bits of an argument: what the kernel reads of an `int`.
fn low(arg: u64) -> i32 {
    arg as u32 as i32
}

fn is_inet(domain: i32) -> bool {
    domain == libc::AF_INET || domain == libc::AF_INET6
}

fn matches(target: Target, call: Call) -> bool {
    if let Target::ForeignAbi = target {
        return !is_native(call.arch, call.nr);
    }
    if !is_native(call.arch, call.nr) {
        return false;
    }
    let nr = call.nr as libc::c_long;
    let socket = nr == libc::SYS_socket;
    let [domain, ty, protocol] = [
        low(call.args[0]),
        low(call.args[1]) & 0xf,
        low(call.args[2]),
    ];
    match target {
        Target::ForeignAbi => false,
        Target::Syscalls(list) => list.iter().any(|s| s.nr == nr),
        Target::Ioctls(list) => {
            nr == libc::SYS_ioctl && list.iter().any(|(_, r)| *r == call.args[1] as u32)
        }
        Target::SocketFamily(f) => socket && domain == f,
        Target::SocketFamiliesExcept(allowed) => socket && !allowed.contains(&domain),
        Target::InetType(t) => socket && is_inet(domain) && ty == t,
        Target::InetTypesExcept(allowed) => socket && is_inet(domain) && !allowed.contains(&ty),
        Target::InetProtocolsExcept { ty: t, allowed } => {
            socket && is_inet(domain) && ty == t && !allowed.contains(&protocol)
        }
        Target::NetlinkProtocol(p) => socket && domain == libc::AF_NETLINK && protocol == p,
        Target::UnixType(t) => {
            (socket || nr == libc::SYS_socketpair) && domain == libc::AF_UNIX && ty == t
        }
    }
}

/// The names of the system calls the table refuses whatever their arguments, under `seal`
/// (for docs and the watchdog's report).
pub fn refused_syscalls(seal: Seal) -> Vec<&'static str> {
    seal.entries()
        .filter_map(|e| match e.target {
            Target::Syscalls(list) => Some(list.iter().map(|s| s.name)),
            _ => None,
        })
        .flatten()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices_round_trip() {
        for i in 0..Seal::COUNT {
            let s = Seal::from_index(i);
            // Not distinct seals: UDP counts only with the network sealed, and a supervised
            // listen only where listen is not refused outright.
            let canonical = Seal {
                allow_udp: s.allow_udp && s.network,
                supervise_listen: s.supervise_listen && !s.listen,
                ..s
            };
            assert_eq!(Seal::from_index(canonical.index()), canonical, "{s:?}");
            assert_eq!(s.index() == i, s == canonical, "{s:?}");
        }
    }

    #[test]
    fn every_row_can_apply_and_texts_are_distinct() {
        let all = Seal {
            network: true,
            allow_udp: false,
            unix: true,
            listen: false,
            ipc: true,
            supervise_listen: true,
            supervise_connect: true,
        };
        let udp = Seal {
            allow_udp: true,
            listen: true,
            ..all
        };
        for e in TABLE {
            assert!(all.holds(e.when) || udp.holds(e.when), "{e:?}");
        }
        let mut texts: Vec<&str> = TABLE.iter().map(|e| e.text).collect();
        texts.sort_unstable();
        texts.dedup();
        assert_eq!(texts.len(), TABLE.len());
    }

    #[test]
    fn always_rows_hold_in_the_empty_seal() {
        let d = Seal::default().describe();
        assert_eq!(d.len(), 3, "{d:?}");
        assert!(d.iter().any(|t| t.contains("TIOCSTI")));
        assert!(refused_syscalls(Seal::default()).contains(&"io_uring_setup"));
        assert!(!refused_syscalls(Seal::default()).contains(&"listen"));
    }
}
