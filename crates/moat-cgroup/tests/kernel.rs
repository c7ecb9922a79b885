//! The programs in the real kernel, on a cgroup of our own (no container runtime): counts
//! match what a process in the cgroup sent, and the UDP rules refuse what Landlock ABI 10
//! would, with EACCES. Every refusal has its control: the same operation from a process
//! outside the cgroup works.

use moat_cgroup::{self as pins, Direction, Info, Setup, UdpRules};
use moat_policy::PortRange;
use std::path::PathBuf;
use std::process::Command;

fn skip() -> Option<&'static str> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root");
    }
    None
}

/// A fresh cgroup and pin root, removed on drop. One test at a time: they pick free ports
/// and some open a thousand sockets, which would take each other's ports.
struct Fixture {
    cgroup: PathBuf,
    root: PathBuf,
    _serial: std::sync::MutexGuard<'static, ()>,
}

static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

impl Fixture {
    /// `None` (and why, printed) when the tests cannot run here.
    fn new(tag: &str) -> Option<Fixture> {
        if let Some(why) = skip() {
            eprintln!("SKIP: {why}");
            return None;
        }
        pins::ensure_bpffs().unwrap();
        let mount = moat_cgroup::cgroup2_mount().unwrap();
        let n = format!("moat-test-{tag}-{}", std::process::id());
        Some(Fixture {
            cgroup: mount.join(&n),
            root: PathBuf::from(pins::BPFFS).join(n),
            _serial: SERIAL.lock().unwrap_or_else(|p| p.into_inner()),
        })
    }
    fn setup(&self) -> Setup {
        Setup::begin(&self.root, &self.info()).unwrap()
    }
    fn snapshot(&self) -> pins::Snapshot {
        let cpus = moat_cgroup::sys::PossibleCpus::get().unwrap();
        pins::read(&self.root.join("c"), cpus).unwrap()
    }
    fn info(&self) -> Info {
        Info {
            container_id: "c".into(),
            cgroup: self.cgroup.clone(),
            ..Info::default()
        }
    }
    /// Runs python code in the cgroup (or outside it) and returns its stdout.
    fn py(&self, inside: bool, code: &str) -> String {
        py_in(inside.then_some(self.cgroup.as_path()), code)
    }
}

/// Runs python code in `cgroup` (or where this test runs) and returns its stdout.
fn py_in(cgroup: Option<&std::path::Path>, code: &str) -> String {
    let procs = match cgroup {
        Some(c) => c.join("cgroup.procs").display().to_string(),
        None => "/dev/null".into(),
    };
    let out = Command::new("/bin/sh")
        .arg("-c")
        .arg(format!(
            "echo $$ > {procs} && exec /usr/bin/python3 -c \"$0\"",
        ))
        .arg(code)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
        let _ = std::fs::remove_dir(&self.cgroup);
        // The empty cgroup that holds the node's programs (pins::Node).
        let _ = std::fs::remove_dir(format!("{}.holder", self.cgroup.display()));
    }
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Python that tries each UDP operation and prints `ok` or the errno name per line.
const UDP_OPS: &str = r#"
import socket, errno, sys
allowed, other = int(sys.argv[1]), int(sys.argv[2])
def t(f):
    try:
        f(); print("ok")
    except OSError as e:
        print(errno.errorcode[e.errno])
def s4(): return socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
def s6(): return socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
t(lambda: s4().sendto(b"x", ("127.0.0.1", allowed)))
t(lambda: s4().sendto(b"x", ("127.0.0.1", other)))
t(lambda: s4().connect(("127.0.0.1", other)))
t(lambda: s6().sendto(b"x", ("::ffff:127.0.0.1", other)))
t(lambda: s6().connect(("::1", other)))
t(lambda: s4().bind(("127.0.0.1", other)))
def connect_then_sendto():
    s = s4(); s.connect(("127.0.0.1", allowed)); s.sendto(b"x", ("127.0.0.1", other))
t(connect_then_sendto)
def connect_then_send():
    s = s4(); s.connect(("127.0.0.1", allowed)); s.send(b"x")
t(connect_then_send)
def disconnect_then_send():
    # AF_UNSPEC connect dissolves the association, as Landlock allows; a later send with
    # no address fails as on any unconnected socket.
    import ctypes
    s = s4(); s.connect(("127.0.0.1", allowed))
    libc = ctypes.CDLL(None, use_errno=True)
    unspec = (ctypes.c_ubyte * 16)()
    if libc.connect(s.fileno(), unspec, 16) != 0:
        raise OSError(ctypes.get_errno(), "connect(AF_UNSPEC)")
    s.sendto(b"x", ("127.0.0.1", allowed))
t(disconnect_then_send)
"#;

#[test]
fn udp_rules_refuse_other_ports_with_eacces() {
    let Some(f) = Fixture::new("udp") else {
        return;
    };
    let (allowed, other) = (free_udp_port(), free_udp_port());
    let setup = f.setup();
    setup
        .udp(UdpRules {
            bind: vec![PortRange::single(0)],
            connect: vec![PortRange::single(allowed)],
        })
        .unwrap();
    let code = format!("import sys; sys.argv=['x','{allowed}','{other}']\n{UDP_OPS}");
    // Control: outside the cgroup everything works.
    assert_eq!(f.py(false, &code), "ok\nok\nok\nok\nok\nok\nok\nok\nok\n");
    assert_eq!(
        f.py(true, &code),
        "ok\nEACCES\nEACCES\nEACCES\nEACCES\nEACCES\nEACCES\nok\nok\n"
    );
    let snap = f.snapshot();
    let get = |op| snap.denied.iter().find(|(o, _)| *o == op).unwrap().1;
    // An IPv4-mapped destination on an IPv6 socket goes the IPv4 way (udpv6_sendmsg
    // hands it to udp_sendmsg), and is refused by the IPv4 hook.
    assert_eq!(get("sendmsg4"), 3);
    assert_eq!(get("connect4"), 1);
    assert_eq!(get("sendmsg6"), 0);
    assert_eq!(get("connect6"), 1);
    assert_eq!(get("bind4"), 1);
}

#[test]
fn autobind_needs_bind_zero_as_landlock_decides() {
    let Some(f) = Fixture::new("autobind") else {
        return;
    };
    let (allowed, local) = (free_udp_port(), free_udp_port());
    let setup = f.setup();
    setup
        .udp(UdpRules {
            bind: vec![PortRange::single(local)],
            connect: vec![PortRange::single(allowed)],
        })
        .unwrap();
    let code = format!(
        "import socket, errno\n\
         def t(f):\n  try:\n    f(); print('ok')\n  except OSError as e: print(errno.errorcode[e.errno])\n\
         t(lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM).connect(('127.0.0.1', {allowed})))\n\
         t(lambda: socket.socket(socket.AF_INET6, socket.SOCK_DGRAM).connect(('::ffff:127.0.0.1', {allowed})))\n\
         def bound():\n  s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('127.0.0.1', {local})); s.connect(('127.0.0.1', {allowed})); s.send(b'x')\n\
         t(bound)\n\
         t(lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM).bind(('127.0.0.1', 0)))\n\
         t(lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', ('127.0.0.1', {allowed})))\n"
    );
    assert_eq!(f.py(false, &code), "ok\nok\nok\nok\nok\n");
    // The last line is the documented difference from Landlock: the kernel autobinds
    // before the sendmsg hook runs.
    assert_eq!(f.py(true, &code), "EACCES\nEACCES\nok\nEACCES\nok\n");
}

#[test]
fn counters_count_what_the_cgroup_sends_and_receives() {
    let Some(f) = Fixture::new("count") else {
        return;
    };
    let setup = f.setup();
    setup.counters().unwrap();
    // A receiver outside the cgroup, the sender inside: 10 datagrams of 1000 bytes from a
    // bound local port, so the port label is known.
    let rx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let dst = rx.local_addr().unwrap().port();
    let src = free_udp_port();
    let code = format!(
        "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         s.bind(('127.0.0.1', {src}))\n\
         for _ in range(10): s.sendto(b'a' * 1000, ('127.0.0.1', {dst}))\n\
         s.settimeout(5)\nprint(len(s.recv(2000)))\n"
    );
    let rx_thread = std::thread::spawn(move || {
        let mut buf = [0u8; 2000];
        let (_, from) = rx.recv_from(&mut buf).unwrap();
        for _ in 0..9 {
            rx.recv_from(&mut buf).unwrap();
        }
        rx.send_to(&[b'b'; 500], from).unwrap();
    });
    assert_eq!(f.py(true, &code), "500\n");
    rx_thread.join().unwrap();
    let snap = f.snapshot();
    let find = |d| {
        snap.traffic
            .iter()
            .find(|(dir, port, _)| *dir == d && *port == Some(src))
            .map(|t| t.2)
            .unwrap_or_default()
    };
    // IPv4 (20) and UDP (8) headers count.
    assert_eq!(find(Direction::Transmit).packets, 10);
    assert_eq!(find(Direction::Transmit).bytes, 10 * 1028);
    assert_eq!(find(Direction::Receive).packets, 1);
    assert_eq!(find(Direction::Receive).bytes, 528);
}

#[test]
fn ports_beyond_the_map_count_as_other() {
    let Some(f) = Fixture::new("other") else {
        return;
    };
    let setup = f.setup();
    setup.counters().unwrap();
    let rx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let dst = rx.local_addr().unwrap().port();
    let n = moat_cgroup::PORT_ENTRIES as usize + 100;
    // One datagram from each of `n` sockets: `n` distinct local ports.
    let code = format!(
        "import socket, resource\nsocks = []\n\
         _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)\n\
         resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))\n\
         for _ in range({n}):\n  s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n  \
         s.sendto(b'x', ('127.0.0.1', {dst}))\n  socks.append(s)\nprint(len(socks))\n"
    );
    assert_eq!(f.py(true, &code), format!("{n}\n"));
    let snap = f.snapshot();
    let tx: Vec<_> = snap
        .traffic
        .iter()
        .filter(|t| t.0 == Direction::Transmit)
        .collect();
    let named = tx.iter().filter(|t| t.1.is_some()).count();
    let other = tx.iter().find(|t| t.1.is_none()).unwrap().2;
    assert_eq!(named, moat_cgroup::PORT_ENTRIES as usize);
    assert_eq!(other.packets, 100);
    let total: u64 = tx.iter().map(|t| t.2.packets).sum();
    assert_eq!(total, n as u64, "no packet lost or counted twice");
}

/// Sends `n` datagrams of 100 bytes from a process in `cgroup` and returns the local
/// port they were sent from.
fn send_from(cgroup: &std::path::Path, n: usize) -> u16 {
    let rx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let dst = rx.local_addr().unwrap().port();
    let src = free_udp_port();
    let code = format!(
        "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         s.bind(('127.0.0.1', {src}))\n\
         for _ in range({n}): s.sendto(b'a' * 100, ('127.0.0.1', {dst}))\n"
    );
    py_in(Some(cgroup), &code);
    src
}

fn sent(snap: &pins::Snapshot, port: u16) -> u64 {
    snap.traffic
        .iter()
        .filter(|(d, p, _)| *d == Direction::Transmit && *p == Some(port))
        .map(|t| t.2.packets)
        .sum()
}

#[test]
fn a_cgroup_below_the_containers_counts_for_the_container() {
    let Some(f) = Fixture::new("nested") else {
        return;
    };
    f.setup().counters().unwrap();
    let inner = f.cgroup.join("inner");
    std::fs::create_dir(&inner).unwrap();
    let port = send_from(&inner, 4);
    let direct = send_from(&f.cgroup, 2);
    std::fs::remove_dir(&inner).unwrap();
    let snap = f.snapshot();
    assert_eq!(sent(&snap, port), 4, "{:?}", snap.traffic);
    assert_eq!(sent(&snap, direct), 2, "{:?}", snap.traffic);
}

#[test]
fn containers_sharing_the_node_programs_count_apart_and_removal_unregisters() {
    let Some(f) = Fixture::new("two") else {
        return;
    };
    let other_cgroup = PathBuf::from(format!("{}-b", f.cgroup.display()));
    let other = Info {
        container_id: "d".into(),
        cgroup: other_cgroup.clone(),
        ..Info::default()
    };
    f.setup().counters().unwrap();
    Setup::begin(&f.root, &other).unwrap().counters().unwrap();
    // One set of programs for the node, not one per container.
    let nodes: Vec<_> = std::fs::read_dir(&f.root)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with('@'))
        .collect();
    assert_eq!(nodes.len(), 1);
    // The empty cgroup beside the containers' holds the node's two programs, once.
    let holder = std::fs::File::open(format!("{}.holder", f.cgroup.display()))
        .map(std::os::fd::OwnedFd::from)
        .unwrap();
    for hook in [
        moat_cgroup::sys::AttachType::Ingress,
        moat_cgroup::sys::AttachType::Egress,
    ] {
        assert_eq!(moat_cgroup::sys::prog_ids(&holder, hook).unwrap().len(), 1);
    }
    let a = send_from(&f.cgroup, 3);
    let b = send_from(&other_cgroup, 5);
    let cpus = moat_cgroup::sys::PossibleCpus::get().unwrap();
    let snap_d = pins::read(&f.root.join("d"), cpus).unwrap();
    let snap_c = f.snapshot();
    assert_eq!((sent(&snap_c, a), sent(&snap_c, b)), (3, 0));
    assert_eq!((sent(&snap_d, a), sent(&snap_d, b)), (0, 5));
    // Removing d's pins takes it out of the node map: its cgroup's packets count nowhere,
    // and its counters go at the next read.
    let id = snap_d.info.cgroup_id;
    assert_ne!(id, 0);
    let node_dir = pins::Node::dir(&f.root);
    let containers = moat_cgroup::sys::obj_get(&node_dir.join("containers")).unwrap();
    let mut claimed = [0u8; 8];
    assert!(moat_cgroup::sys::map_lookup(&containers, &id.to_ne_bytes(), &mut claimed).unwrap());
    assert_eq!(u64::from_ne_bytes(claimed), 1, "one port claimed");
    pins::remove(&f.root.join("d")).unwrap();
    assert!(!moat_cgroup::sys::map_lookup(&containers, &id.to_ne_bytes(), &mut claimed).unwrap());
    let ids_in_traffic = || {
        let traffic = moat_cgroup::sys::obj_get(&node_dir.join("traffic")).unwrap();
        let (mut key, mut prev, mut ids) = ([0u8; 16], None::<[u8; 16]>, Vec::new());
        while moat_cgroup::sys::map_next_key(&traffic, prev.as_ref().map(|k| &k[..]), &mut key)
            .unwrap()
        {
            ids.push(u64::from_ne_bytes(key[..8].try_into().unwrap()));
            prev = Some(key);
        }
        ids
    };
    assert!(ids_in_traffic().contains(&id));
    send_from(&other_cgroup, 1);
    let snap_c = f.snapshot();
    assert_eq!(sent(&snap_c, a), 3);
    assert!(!ids_in_traffic().contains(&id), "pruned by the read");
    let _ = std::fs::remove_dir(&other_cgroup);
}
