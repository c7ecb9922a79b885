//! Every assembled program is run in a small classic-BPF interpreter over a grid of
//! architectures, numbers, arguments and garbage upper halves, against the table read as
//! plain Rust ([`decide`]) and against a second program built from the same table by
//! seccompiler's rule compiler: two independent translations of the table must agree
//! (seccompiler has no action that hands a call to a supervisor, so there the oracle is the
//! table alone).

use super::bpf::{Assembler, NEXT, RET_ALLOW, RET_KILL, RET_NOTIFY, RET_REFUSE};
use super::table::{Action, Seal, Target, TABLE};
use super::*;
use seccompiler::{
    SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule,
    TargetArch,
};
use std::collections::BTreeMap;

const NATIVE: u32 = match NATIVE_AUDIT_ARCH {
    Some(a) => a,
    None => 0,
};
const AUDIT_ARCH_I386: u32 = 3 | 0x4000_0000;

/// Runs a seccomp classic-BPF program over a `struct seccomp_data`.
fn run(program: &[Insn], arch: u32, nr: u32, args: [u64; 6]) -> u32 {
    let mut data = [0u8; 64];
    data[0..4].copy_from_slice(&nr.to_ne_bytes());
    data[4..8].copy_from_slice(&arch.to_ne_bytes());
    for (i, arg) in args.iter().enumerate() {
        data[16 + 8 * i..24 + 8 * i].copy_from_slice(&arg.to_ne_bytes());
    }
    let mut acc: u32 = 0;
    let mut pc = 0usize;
    loop {
        let insn = &program[pc];
        pc += 1;
        match insn.code {
            0x20 => {
                let at = insn.k as usize;
                acc = u32::from_ne_bytes(data[at..at + 4].try_into().unwrap());
            }
            0x54 => acc &= insn.k,
            0x05 => pc += insn.k as usize,
            0x15 | 0x25 | 0x35 | 0x45 => {
                let taken = match insn.code {
                    0x15 => acc == insn.k,
                    0x25 => acc > insn.k,
                    0x35 => acc >= insn.k,
                    _ => acc & insn.k != 0,
                };
                pc += usize::from(if taken { insn.jt } else { insn.jf });
            }
            0x06 => return insn.k,
            other => panic!("unexpected BPF opcode {other:#x} at {}", pc - 1),
        }
    }
}

/// A readable listing, for failure messages and `--nocapture`.
fn listing(program: &[Insn]) -> String {
    let mut out = String::new();
    for (at, insn) in program.iter().enumerate() {
        let (jt, jf) = (at + 1 + usize::from(insn.jt), at + 1 + usize::from(insn.jf));
        let text = match insn.code {
            0x20 => format!("ld  [{}]", insn.k),
            0x54 => format!("and {:#x}", insn.k),
            0x15 => format!("jeq {:#x}, {jt}, {jf}", insn.k),
            0x25 => format!("jgt {:#x}, {jt}, {jf}", insn.k),
            0x35 => format!("jge {:#x}, {jt}, {jf}", insn.k),
            0x45 => format!("jset {:#x}, {jt}, {jf}", insn.k),
            0x06 => format!("ret {:#x}", insn.k),
            other => format!("?? {other:#x}"),
        };
        out.push_str(&format!("{at:4}: {text}\n"));
    }
    out
}

/// Every distinct seal (an index whose seal maps back to it).
fn every_seal() -> impl Iterator<Item = Seal> {
    (0..Seal::COUNT)
        .filter(|&i| Seal::from_index(i).index() == i)
        .map(Seal::from_index)
}

fn expected(seal: Seal, arch: u32, nr: u32, args: [u64; 6]) -> u32 {
    match decide(seal, Call { arch, nr, args }) {
        Decision::Allow => RET_ALLOW,
        Decision::Refuse(_) => RET_REFUSE,
        Decision::Kill(_) => RET_KILL,
        Decision::Supervise(_) => RET_NOTIFY,
    }
}

/// The same table, compiled by seccompiler's rule compiler (native ABI only: it knows
/// nothing of x32).
fn seccompiler_program(seal: Seal) -> Vec<Insn> {
    let arch = TargetArch::try_from(std::env::consts::ARCH).unwrap();
    let dword = |i, op, v: u64| SeccompCondition::new(i, SeccompCmpArgLen::Dword, op, v).unwrap();
    let eq = |i, v: i32| dword(i, SeccompCmpOp::Eq, v as u32 as u64);
    let ne = |i, v: i32| dword(i, SeccompCmpOp::Ne, v as u32 as u64);
    let inet = || {
        dword(
            0,
            SeccompCmpOp::MaskedEq(u64::from(!((libc::AF_INET ^ libc::AF_INET6) as u32))),
            libc::AF_INET as u64,
        )
    };
    let ty = |t: i32| dword(1, SeccompCmpOp::MaskedEq(0xf), t as u64);
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    let add = |rules: &mut BTreeMap<i64, Vec<SeccompRule>>, nr: i64, conds| {
        rules
            .entry(nr)
            .or_default()
            .push(SeccompRule::new(conds).unwrap());
    };
    let socket = libc::SYS_socket;
    for e in seal.entries() {
        match e.action {
            Action::Refuse => {}
            // Compared against the table alone.
            Action::Supervise => continue,
            Action::Kill => assert_eq!(e.target, Target::ForeignAbi),
        }
        match e.target {
            Target::ForeignAbi => {}
            Target::Syscalls(list) => {
                for s in list {
                    rules.insert(s.nr, Vec::new());
                }
            }
            Target::Ioctls(list) => {
                for (_, r) in list {
                    add(
                        &mut rules,
                        libc::SYS_ioctl,
                        vec![dword(1, SeccompCmpOp::Eq, u64::from(*r))],
                    );
                }
            }
            Target::SocketFamily(f) => add(&mut rules, socket, vec![eq(0, f)]),
            Target::SocketFamiliesExcept(list) => {
                add(&mut rules, socket, list.iter().map(|&f| ne(0, f)).collect())
            }
            Target::InetType(t) => add(&mut rules, socket, vec![inet(), ty(t)]),
            Target::InetTypesExcept(list) => {
                for t in (0..16).filter(|t| !list.contains(t)) {
                    add(&mut rules, socket, vec![inet(), ty(t)]);
                }
            }
            Target::InetProtocolsExcept { ty: t, allowed } => {
                let mut c = vec![inet(), ty(t)];
                c.extend(allowed.iter().map(|&p| ne(2, p)));
                add(&mut rules, socket, c);
            }
            Target::NetlinkProtocol(p) => {
                add(&mut rules, socket, vec![eq(0, libc::AF_NETLINK), eq(2, p)])
            }
            Target::UnixType(t) => {
                for nr in [socket, libc::SYS_socketpair] {
                    add(&mut rules, nr, vec![eq(0, libc::AF_UNIX), ty(t)]);
                }
            }
        }
    }
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(REFUSAL_ERRNO as u32),
        arch,
    )
    .unwrap();
    let program: seccompiler::BpfProgram = filter.try_into().unwrap();
    program
        .into_iter()
        .map(|i| Insn {
            code: i.code,
            jt: i.jt,
            jf: i.jf,
            k: i.k,
        })
        .collect()
}

/// The numbers worth trying: everything the table names, its neighbours, and a spread.
fn numbers() -> Vec<u32> {
    let mut base: Vec<u32> = vec![0, 1, 2, 100, 300, 511, 600, 1000, 0x7fff_ffff];
    for e in TABLE {
        match e.target {
            Target::Syscalls(list) => base.extend(list.iter().map(|s| s.nr as u32)),
            Target::Ioctls(_) => base.push(libc::SYS_ioctl as u32),
            Target::ForeignAbi => {}
            _ => base.push(libc::SYS_socket as u32),
        }
    }
    base.push(libc::SYS_socketpair as u32);
    base.push(libc::SYS_connect as u32);
    base.push(libc::SYS_bind as u32);
    let mut out: Vec<u32> = base
        .iter()
        .flat_map(|&n| [n.wrapping_sub(1), n, n.wrapping_add(1)])
        .flat_map(|n| [n, n | 0x4000_0000, n | 0x8000_0000])
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// The whole grid against the table read as Rust, and, for the native ABI, against
/// seccompiler's translation of the same table.
#[test]
fn every_program_matches_the_table_and_seccompilers_translation() {
    let arches = [
        NATIVE,
        AUDIT_ARCH_I386,
        0x4000_0028,             // AUDIT_ARCH_ARM (AArch32)
        NATIVE & !0x4000_0000,   // the same machine, big-endian
        183 | 0xc000_0000 ^ 0x1, // garbage
    ];
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
    let flags = [0, libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, !0xf];
    let protocols = [
        0,
        libc::IPPROTO_TCP,
        libc::IPPROTO_UDP,
        libc::IPPROTO_ICMP,
        libc::IPPROTO_SCTP,
        libc::IPPROTO_MPTCP,
        4, // NETLINK_SOCK_DIAG
        -1,
    ];
    let requests = [
        0u64,
        libc::TIOCSTI,
        libc::TIOCLINUX,
        libc::TIOCGWINSZ,
        libc::FIONREAD,
        0xdead_beef_0000_0000 | libc::TIOCSTI,
        libc::TIOCSTI + 1,
    ];
    let garbage = [0, 0xffff_ffff_0000_0000_u64, 0xdead_beef_0000_0000];
    let nrs = numbers();
    let mut checked = 0usize;
    for seal in every_seal() {
        let program = seal.program().unwrap();
        let former = seccompiler_program(seal);
        for &arch in &arches {
            for &nr in &nrs {
                let mut argsets: Vec<[u64; 6]> = Vec::new();
                if nr == libc::SYS_socket as u32 || nr == libc::SYS_socketpair as u32 {
                    for d in domains {
                        for t in (0..=15).flat_map(|t| flags.map(|f| t | f)) {
                            for p in protocols {
                                for (round, _) in garbage.iter().enumerate() {
                                    let high = |i: usize| garbage[(round + i) % garbage.len()];
                                    argsets.push([
                                        d as u32 as u64 | high(0),
                                        t as u32 as u64 | high(1),
                                        p as u32 as u64 | high(2),
                                        high(3) | 0xffff_ffff,
                                        high(4),
                                        high(5),
                                    ]);
                                }
                            }
                        }
                    }
                } else {
                    for r in requests {
                        argsets.push([1, r, 0, 0, 0, 0]);
                        argsets.push([libc::AF_PACKET as u64, r, 3, 0, 0, 0]);
                    }
                }
                for args in argsets {
                    let want = expected(seal, arch, nr, args);
                    let got = run(program, arch, nr, args);
                    assert_eq!(
                        got,
                        want,
                        "{seal:?} arch={arch:#x} nr={nr:#x} args={args:#x?}\n{}",
                        listing(program)
                    );
                    let native = arch == NATIVE && nr & 0x4000_0000 == 0;
                    if (native || arch != NATIVE) && want != RET_NOTIFY {
                        let old = run(&former, arch, nr, args);
                        assert_eq!(
                            old, want,
                            "seccompiler's translation disagrees: {seal:?} arch={arch:#x} \
                             nr={nr:#x} args={args:#x?}"
                        );
                    }
                    checked += 1;
                }
            }
        }
    }
    println!("{checked} cases agree");
}

/// A few decisions written out by hand, independently of the table's wording.
#[test]
fn key_decisions() {
    let sealed = Seal {
        network: true,
        ..Seal::default()
    };
    let open = Seal::default();
    let sock = |seal: Seal, d, t, p| {
        run(
            seal.program().unwrap(),
            NATIVE,
            libc::SYS_socket as u32,
            [d as u64, t as u64, p as u64, 0, 0, 0],
        )
    };
    // The terminal and io_uring: refused in every sandbox.
    for seal in every_seal() {
        let p = seal.program().unwrap();
        assert_eq!(
            run(
                p,
                NATIVE,
                libc::SYS_ioctl as u32,
                [0, libc::TIOCSTI, 0, 0, 0, 0]
            ),
            RET_REFUSE
        );
        assert_eq!(
            run(
                p,
                NATIVE,
                libc::SYS_ioctl as u32,
                [0, libc::TIOCLINUX, 0, 0, 0, 0]
            ),
            RET_REFUSE
        );
        assert_eq!(
            run(
                p,
                NATIVE,
                libc::SYS_ioctl as u32,
                [0, libc::TIOCGWINSZ, 0, 0, 0, 0]
            ),
            RET_ALLOW
        );
        assert_eq!(
            run(p, NATIVE, libc::SYS_io_uring_setup as u32, [0; 6]),
            RET_REFUSE
        );
        assert_eq!(
            run(p, AUDIT_ARCH_I386, 54, [0, 0x5412, 0, 0, 0, 0]),
            RET_KILL
        );
        assert_eq!(
            run(p, NATIVE, libc::SYS_socketpair as u32, [1, 1, 0, 0, 0, 0]),
            RET_ALLOW
        );
        if cfg!(target_arch = "x86_64") {
            assert_eq!(
                run(p, NATIVE, 0x4000_0000 | libc::SYS_getpid as u32, [0; 6]),
                RET_KILL
            );
        }
        let listen = if seal.listen {
            RET_REFUSE
        } else if seal.supervise_listen {
            RET_NOTIFY
        } else {
            RET_ALLOW
        };
        assert_eq!(
            run(p, NATIVE, libc::SYS_listen as u32, [3, 1, 0, 0, 0, 0]),
            listen
        );
        let connect = if seal.supervise_connect {
            RET_NOTIFY
        } else {
            RET_ALLOW
        };
        assert_eq!(
            run(p, NATIVE, libc::SYS_connect as u32, [3, 0, 16, 0, 0, 0]),
            connect
        );
    }
    let supervised = Seal {
        supervise_connect: true,
        ..sealed
    };
    let pair = |seal: Seal, d: i32, t: i32| {
        run(
            seal.program().unwrap(),
            NATIVE,
            libc::SYS_socketpair as u32,
            [d as u64, t as u64, 0, 0, 0, 0],
        )
    };
    for ty in [libc::SOCK_DGRAM, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC] {
        assert_eq!(sock(supervised, libc::AF_UNIX, ty, 0), RET_REFUSE);
        assert_eq!(sock(sealed, libc::AF_UNIX, ty, 0), RET_ALLOW);
        assert_eq!(pair(supervised, libc::AF_UNIX, ty), RET_REFUSE);
        assert_eq!(pair(sealed, libc::AF_UNIX, ty), RET_ALLOW);
    }
    assert_eq!(
        pair(supervised, libc::AF_UNIX, libc::SOCK_STREAM),
        RET_ALLOW
    );
    assert_eq!(
        sock(supervised, libc::AF_UNIX, libc::SOCK_STREAM, 0),
        RET_ALLOW
    );
    assert_eq!(
        sock(supervised, libc::AF_UNIX, libc::SOCK_SEQPACKET, 0),
        RET_ALLOW
    );
    assert_eq!(sock(open, libc::AF_PACKET, 3, 0), RET_ALLOW);
    assert_eq!(sock(sealed, libc::AF_PACKET, 3, 0), RET_REFUSE);
    assert_eq!(sock(sealed, libc::AF_INET, libc::SOCK_STREAM, 0), RET_ALLOW);
    assert_eq!(
        sock(
            sealed,
            libc::AF_INET6,
            libc::SOCK_STREAM,
            libc::IPPROTO_MPTCP
        ),
        RET_REFUSE
    );
    assert_eq!(sock(sealed, libc::AF_INET, libc::SOCK_DGRAM, 0), RET_REFUSE);
    let udp = Seal {
        allow_udp: true,
        ..sealed
    };
    assert_eq!(sock(udp, libc::AF_INET, libc::SOCK_DGRAM, 0), RET_ALLOW);
    assert_eq!(
        sock(udp, libc::AF_INET, libc::SOCK_DGRAM, libc::IPPROTO_ICMP),
        RET_REFUSE
    );
    let unix = Seal {
        unix: true,
        ..Seal::default()
    };
    assert_eq!(sock(unix, libc::AF_UNIX, libc::SOCK_STREAM, 0), RET_REFUSE);
    assert_eq!(sock(unix, libc::AF_INET, libc::SOCK_RAW, 1), RET_ALLOW);
    assert_eq!(sock(sealed, libc::AF_UNIX, libc::SOCK_STREAM, 0), RET_ALLOW);
    let ipc = Seal {
        ipc: true,
        ..Seal::default()
    };
    assert_eq!(sock(ipc, libc::AF_NETLINK, libc::SOCK_RAW, 4), RET_REFUSE);
    assert_eq!(sock(ipc, libc::AF_NETLINK, libc::SOCK_RAW, 0), RET_ALLOW);
    assert_eq!(
        run(
            ipc.program().unwrap(),
            NATIVE,
            libc::SYS_msgget as u32,
            [0; 6]
        ),
        RET_REFUSE
    );
    // The upper halves of the registers do not count, as for the kernel.
    let high = 0xdead_beef_0000_0000u64;
    assert_eq!(
        run(
            sealed.program().unwrap(),
            NATIVE,
            libc::SYS_socket as u32,
            [libc::AF_INET as u64 | high, 1 | high, 6 | high, 0, 0, 0]
        ),
        RET_ALLOW
    );
}

/// Prints every program (`--nocapture`) and keeps them from growing unnoticed.
#[test]
fn programs_are_short() {
    for seal in every_seal() {
        let p = seal.program().unwrap();
        println!("{seal:?}: {} instructions\n{}", p.len(), listing(p));
        assert!(p.len() <= 90, "{seal:?}: {}\n{}", p.len(), listing(p));
    }
    // moat run's usual seal: the network sealed, listen and unix refused.
    let usual = Seal {
        network: true,
        allow_udp: false,
        unix: true,
        listen: true,
        ipc: false,
        supervise_listen: false,
        supervise_connect: false,
    };
    assert!(usual.program().unwrap().len() <= 36);
}

#[test]
fn return_values_are_seccompilers() {
    assert_eq!(RET_ALLOW, u32::from(SeccompAction::Allow));
    assert_eq!(
        RET_REFUSE,
        u32::from(SeccompAction::Errno(REFUSAL_ERRNO as u32))
    );
    assert_eq!(RET_KILL, u32::from(SeccompAction::KillProcess));
}

#[test]
fn assembler_resolves_labels() {
    let mut asm = Assembler::new();
    let allow = asm.label();
    let refuse = asm.label();
    asm.load(0);
    asm.jump(libc::BPF_JEQ, 1, allow, NEXT);
    asm.jump(libc::BPF_JGT, 2, allow, refuse);
    asm.bind(allow);
    asm.ret(RET_ALLOW);
    asm.bind(refuse);
    asm.ret(RET_REFUSE);
    let program = asm.finish().instructions().to_vec();
    assert_eq!(program.len(), 5);
    assert_eq!((program[1].jt, program[1].jf), (1, 0));
    assert_eq!((program[2].jt, program[2].jf), (0, 1));
    for (nr, want) in [
        (0, RET_REFUSE),
        (1, RET_ALLOW),
        (2, RET_REFUSE),
        (3, RET_ALLOW),
    ] {
        assert_eq!(run(&program, NATIVE, nr, [0; 6]), want, "nr {nr}");
    }
}

// What the kernel would reject panics (a build error for the table's own programs).

#[test]
#[should_panic(expected = "BPF label not bound")]
fn assembler_rejects_an_unbound_label() {
    let mut asm = Assembler::new();
    let l = asm.label();
    asm.jump(libc::BPF_JEQ, 0, l, NEXT);
    asm.ret(RET_ALLOW);
    asm.finish();
}

#[test]
#[should_panic(expected = "BPF jump out of reach")]
fn assembler_rejects_a_backward_jump() {
    let mut asm = Assembler::new();
    let l = asm.label();
    asm.bind(l);
    asm.jump(libc::BPF_JEQ, 0, l, NEXT);
    asm.ret(RET_ALLOW);
    asm.finish();
}

#[test]
#[should_panic(expected = "BPF label bound twice")]
fn assembler_rejects_a_label_bound_twice() {
    let mut asm = Assembler::new();
    let l = asm.label();
    asm.bind(l);
    asm.bind(l);
}

#[test]
#[should_panic(expected = "does not end with a ret")]
fn assembler_rejects_a_program_running_off_its_end() {
    let mut asm = Assembler::new();
    asm.load(0);
    asm.finish();
}

/// Attach cost of the hand-written program against the seccompiler one it replaced (and a
/// one-instruction program, for the fixed part), each compiled and attached in a fresh
/// child as in moat, interleaved. Timing only, nothing asserted; run it by hand:
/// `RUSTFLAGS="--cfg moat_bench" cargo test --release -p moat-sandbox --lib attach_cost -- --nocapture`
/// (a measurement, not a test: compiled only on request so the suite has no timed code).
#[cfg(moat_bench)]
#[test]
fn attach_cost_assembled_vs_seccompiler() {
    use std::time::{Duration, Instant};
    const ROUNDS: usize = 2000;

    type Build = fn() -> Vec<Insn>;
    const USUAL: Seal = Seal {
        network: true,
        allow_udp: false,
        unix: true,
        listen: true,
        ipc: false,
        supervise_listen: false,
        supervise_connect: false,
    };
    let variants: [(&str, Build); 5] = [
        ("assembled, moat run's usual seal", || {
            USUAL.program().unwrap().to_vec()
        }),
        ("assembled, terminal and io_uring only", || {
            Seal::default().program().unwrap().to_vec()
        }),
        ("seccompiler, moat run's usual seal", || {
            seccompiler_program(USUAL)
        }),
        ("seccompiler, terminal and io_uring only", || {
            seccompiler_program(Seal::default())
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
            let ok = apply(&program);
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

/// no_new_privs and the program, in a forked child of the measurement.
#[cfg(moat_bench)]
fn apply(program: &[Insn]) -> bool {
    let prog = libc::sock_fprog {
        len: program.len() as u16,
        filter: program.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: plain prctl; the program outlives the seccomp call, which copies it.
    unsafe {
        libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0
            && libc::syscall(libc::SYS_seccomp, libc::SECCOMP_SET_MODE_FILTER, 0, &prog) == 0
    }
}
