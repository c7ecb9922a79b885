//! cgroup-bpf through moat-runtime and the real runc: counters read back from the
//! exporter's /metrics, UDP port rules refusing what Landlock ABI 10 would (with plain runc
//! as the control), and the failure to attach handled as any unenforceable control.

#[macro_use]
mod common;
use common::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn free_port(udp: bool) -> u16 {
    if udp {
        std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    } else {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }
}

fn pins(id: &str) -> PathBuf {
    Path::new("/sys/fs/bpf/moat").join(id)
}

/// The probe line the UDP tests run, and what each side must answer.
fn udp_probe(allowed: u16, other: u16) -> Vec<String> {
    let (a, o) = (allowed.to_string(), other.to_string());
    let mut v: Vec<String> = Vec::new();
    for op in [
        vec!["udp-sendto", &a],
        vec!["udp-sendto", &o],
        vec!["udp-connect", &o],
        vec!["udp6-mapped-sendto", &o],
        vec!["udp-connect-sendto", &a, &o],
        vec!["udp-connect-send", &a],
        vec!["bind-udp", &o],
    ] {
        if !v.is_empty() {
            v.push(";".into());
        }
        v.extend(op.iter().map(|s| s.to_string()));
    }
    v.insert(0, "/bin/moat-probe".into());
    v
}

const UDP_POLICY: &str = "[filesystem]\nread_exec = [\"/bin\"]\n[network]\nbind_udp = [0]\n";

#[test]
fn udp_ports_are_enforced_by_cgroup_bpf_below_abi_10() {
    need_runc!();
    let (allowed, other) = (free_port(true), free_port(true));
    let policy = format!("{UDP_POLICY}connect_udp = [{allowed}]\n");
    let b = Bundle::new("udp");
    b.edit(|c| c["process"]["args"] = serde_json::json!(udp_probe(allowed, other)));
    // Control: plain runc lets every one of them through.
    let o = b.run(Path::new("runc"));
    assert_eq!(stdout(&o), "ok\nok\nok\nok\nok\nok\nok\n", "{}", stderr(&o));
    b.annotate("moat.dev/policy", &policy);
    let o = b.run(&moat_runtime());
    assert_eq!(
        stdout(&o),
        "ok\nEACCES\nEACCES\nEACCES\nEACCES\nok\nEACCES\n",
        "{}\n{}",
        stderr(&o),
        b.log()
    );
}

/// An engine that creates a container again from the same bundle hands moat-runtime the
/// config.json it wrote the first time: the UDP rules that configuration's launcher leaves
/// to the cgroup must be attached again (they went with the first container's cgroup).
#[test]
fn a_bundle_created_again_gets_its_cgroup_rules_again() {
    need_runc!();
    let (allowed, other) = (free_port(true), free_port(true));
    let policy = format!("{UDP_POLICY}connect_udp = [{allowed}]\n");
    let b = Bundle::new("udpagain");
    b.edit(|c| c["process"]["args"] = serde_json::json!(udp_probe(allowed, other)));
    b.annotate("moat.dev/policy", &policy);
    let want = "ok\nEACCES\nEACCES\nEACCES\nEACCES\nok\nEACCES\n";
    for round in 0..2 {
        let o = b.run(&moat_runtime());
        assert_eq!(
            stdout(&o),
            want,
            "round {round}: {}\n{}",
            stderr(&o),
            b.log()
        );
        assert!(pins(&b.id).exists(), "round {round}");
    }
}

#[test]
fn a_failed_attach_refuses_strict_and_is_reported_in_best_effort() {
    need_runc!();
    let (allowed, other) = (free_port(true), free_port(true));
    let policy = format!("{UDP_POLICY}connect_udp = [{allowed}]\n");
    let b = Bundle::new("udpfail");
    // A cgroupsPath moat will not place (it climbs with `..`): attaching fails.
    let cg = format!(
        "/moat-x-{}/../moat-y-{}",
        std::process::id(),
        std::process::id()
    );
    b.edit(|c| {
        c["process"]["args"] = serde_json::json!(udp_probe(allowed, other));
        c["linux"]["cgroupsPath"] = cg.clone().into();
    });
    b.annotate("moat.dev/policy", &policy);
    let o = b.run(&moat_runtime());
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert_eq!(stdout(&o), "");
    assert!(b.log().contains("cgroupsPath"), "{}", b.log());
    assert!(!b.exists());
    b.annotate("moat.dev/compat", "best-effort");
    let o = b.run(&moat_runtime());
    // Started, UDP open, and both moat-runtime and the launcher say what is not enforced.
    assert_eq!(stdout(&o), "ok\nok\nok\nok\nok\nok\nok\n", "{}", stderr(&o));
    assert!(
        b.log()
            .contains("best-effort: network counters and UDP port rules not enforced"),
        "{}",
        b.log()
    );
    assert!(stderr(&o).contains("UDP"), "{}", stderr(&o));
    let _ = std::fs::remove_dir(format!(
        "/sys/fs/cgroup/unified/moat-y-{}",
        std::process::id()
    ));
}

/// An attach the kernel refuses after the checks moat-runtime makes itself: a cgroup that
/// already holds the kernel's maximum of programs on one hook. A strict `create` fails and
/// no container exists; the same bundle starts once they are gone (the control).
#[test]
fn an_attach_the_kernel_refuses_fails_the_create() {
    need_runc!();
    use moat_cgroup::insn::{exit, mov_imm, R0};
    use moat_cgroup::sys::{self, AttachType, ProgType};
    let b = Bundle::new("crowded");
    b.annotate("moat.dev/policy", "[filesystem]\nread_exec = [\"/bin\"]\n");
    let mount = moat_cgroup::cgroup2_mount().unwrap();
    let own = moat_cgroup::own_cgroup().unwrap();
    let cgroup = moat_cgroup::container_dir(&mount, &own, None, &b.id).unwrap();
    std::fs::create_dir_all(&cgroup).unwrap();
    let fd: std::os::fd::OwnedFd = std::fs::File::open(&cgroup).unwrap().into();
    // BPF_CGROUP_MAX_PROGS: 64 programs on one hook of a cgroup.
    for _ in 0..64 {
        let p = sys::prog_load(
            ProgType::CgroupSkb,
            AttachType::Ingress,
            &[mov_imm(R0, 1), exit()],
            "crowd",
        )
        .unwrap();
        sys::prog_attach(&fd, &p, AttachType::Ingress).unwrap();
    }
    // The created container's process keeps its stdio: no pipe to wait on.
    let err = b.path().join("create.err");
    let create = || {
        b.cmd(&moat_runtime())
            .args(["create", &b.id])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&err).unwrap())
            .status()
            .unwrap()
    };
    let stderr = |_| std::fs::read_to_string(&err).unwrap_or_default();
    let o = create();
    assert_eq!(o.code(), Some(1), "{}", stderr(()));
    assert!(b.log().contains("count_ingress"), "{}", b.log());
    assert!(!b.exists());
    assert!(!pins(&b.id).exists());
    // Control: once the cgroup is gone with its programs.
    drop(fd);
    let _ = std::fs::remove_dir(&cgroup);
    let o = create();
    assert!(o.success(), "{}\n{}", stderr(()), b.log());
    assert!(b.exists());
    assert!(pins(&b.id).exists());
}

/// A container's cgroup can outlive its pins (moat-runtime stopped between its attach and
/// the runtime, or a cgroup the runtime could not remove) and still hold the node's
/// counting programs: a new container of the same id uses it, where the kernel refuses to
/// attach a program twice.
#[test]
fn a_cgroup_left_holding_the_programs_is_used_again() {
    need_runc!();
    let b = Bundle::new("leftover");
    b.annotate("moat.dev/observe", "true");
    // The attach without a container (`/bin/true` as the runtime), then the pins go and
    // the cgroup stays, as after a crash.
    let o = b
        .cmd(&moat_runtime())
        .args(["--moat-runtime", "/bin/true", "create", "--bundle"])
        .arg(b.path())
        .arg(&b.id)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let cgroup = moat_cgroup::read_info(&pins(&b.id)).unwrap().cgroup;
    std::fs::remove_dir_all(pins(&b.id)).unwrap();
    let fd: std::os::fd::OwnedFd = std::fs::File::open(&cgroup).unwrap().into();
    let held = moat_cgroup::sys::prog_ids(&fd, moat_cgroup::sys::AttachType::Ingress).unwrap();
    assert_eq!(held.len(), 1, "the node's ingress program stays attached");
    b.start_sleeping(&moat_runtime());
    assert!(b.exists());
    assert!(pins(&b.id).exists());
    assert_eq!(
        moat_cgroup::sys::prog_ids(&fd, moat_cgroup::sys::AttachType::Ingress).unwrap(),
        held,
        "attached once"
    );
}

/// The exporter on a port of its own, stopped on drop.
struct Exporter(std::process::Child, u16);

impl Exporter {
    fn start() -> Exporter {
        let mut c = Command::new(bin("moat-exporter"))
            .args(["--listen", "127.0.0.1:0"])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(c.stderr.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .split(" on 127.0.0.1:")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("exporter said: {line}"));
        Exporter(c, port)
    }
    fn metrics(&self) -> String {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.1)).unwrap();
        write!(
            s,
            "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        assert!(out.starts_with("HTTP/1.1 200"), "{out}");
        out.split_once("\r\n\r\n").unwrap().1.to_string()
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn sample(text: &str, name: &str, id: &str, port: u16) -> u64 {
    let want = format!("{name}{{container_id=\"{id}\",port=\"{port}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&want))
        .unwrap_or_else(|| panic!("no {want} in\n{text}"))
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn observed_container_traffic_reaches_metrics() {
    need_runc!();
    let st = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--quiet", "-p", "moat-cgroup"])
        .status()
        .unwrap();
    assert!(st.success());
    let udp_rx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let tcp_rx = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let (udp_dst, tcp_dst) = (
        udp_rx.local_addr().unwrap().port(),
        tcp_rx.local_addr().unwrap().port(),
    );
    let (udp_src, tcp_src) = (free_port(true), free_port(false));
    let server = std::thread::spawn(move || {
        // A container that cannot connect must fail the test, not hang it.
        tcp_rx.set_nonblocking(true).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let mut c = loop {
            match tcp_rx.accept() {
                Ok((c, _)) => break c,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if std::time::Instant::now() > deadline {
                        return 0;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                Err(e) => panic!("accept: {e}"),
            }
        };
        c.set_nonblocking(false).unwrap();
        let mut n = 0;
        let mut buf = [0u8; 65536];
        loop {
            match c.read(&mut buf).unwrap() {
                0 => break,
                k => n += k,
            }
        }
        n
    });
    let b = Bundle::new("count");
    // A kubelet-style absolute cgroupsPath and the CRI's names.
    let cg = format!("/moat-test-{}/count", std::process::id());
    b.edit(|c| c["linux"]["cgroupsPath"] = cg.clone().into());
    b.annotate("moat.dev/observe", "true");
    b.annotate("io.kubernetes.cri.container-name", "web");
    let args = [
        "/bin/moat-probe".to_string(),
        "udp-sendto".into(),
        udp_dst.to_string(),
        "1000".into(),
        "10".into(),
        udp_src.to_string(),
        ";".into(),
        "tcp-send".into(),
        tcp_dst.to_string(),
        "100000".into(),
        tcp_src.to_string(),
    ];
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    b.start_with(&moat_runtime(), &refs);
    assert_eq!(server.join().unwrap(), 100_000);
    // The pins are there as soon as the container exists.
    assert!(pins(&b.id).join("info").exists());
    let exporter = Exporter::start();
    let text = exporter.metrics();
    // Labels: the container name comes from the CRI annotation.
    assert!(text.contains(",container=\"web\""), "{text}");
    let text = text.replace(",container=\"web\"", "");
    let tx = |p| sample(&text, "moat_network_transmit_bytes_total", &b.id, p);
    // UDP: exactly 10 datagrams of 1000 bytes, each with 28 bytes of IPv4 and UDP headers.
    assert_eq!(tx(udp_src), 10 * 1028, "{text}");
    assert_eq!(
        sample(&text, "moat_network_transmit_packets_total", &b.id, udp_src),
        10
    );
    // TCP: the payload plus headers (20 + 20, with options up to 60 per segment) of a few
    // dozen segments.
    let t = tx(tcp_src);
    assert!((100_000..100_000 + 200 * 60).contains(&t), "{t}\n{text}");
    assert!(sample(&text, "moat_network_receive_bytes_total", &b.id, tcp_src) > 0);
    // promtool accepts the exposition.
    let mut p = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (apt-get install prometheus)");
    p.stdin
        .take()
        .unwrap()
        .write_all(exporter.metrics().as_bytes())
        .unwrap();
    let o = p.wait_with_output().unwrap();
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    // delete removes the pins, and the container's entry in the node's map (a forced
    // delete does both before libc starts, through the registry pin).
    let cgroup_id = moat_cgroup::read_info(&pins(&b.id)).unwrap().cgroup_id;
    assert!(registered(&b.id, cgroup_id));
    let o = b
        .cmd(&moat_runtime())
        .args(["delete", "-f", &b.id])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!pins(&b.id).exists());
    assert!(!registered(&b.id, cgroup_id));
    // runc removes the container's own group in every hierarchy, not the parent the
    // cgroupsPath named: take it back in each (cgroup v1 controllers and the unified tree).
    // The child's removal completes asynchronously in some hierarchies (its parent stays
    // busy for a moment): try for a second.
    let parent = format!("moat-test-{}", std::process::id());
    for _ in 0..50 {
        let mut left = false;
        for hierarchy in std::fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
        {
            let dir = hierarchy.path().join(&parent);
            left |= dir.exists() && std::fs::remove_dir(&dir).is_err();
        }
        if !left {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Whether `cgroup_id` is in the node's map of containers (the one the pins of container
/// `id` name, or any node's when they are gone).
fn registered(id: &str, cgroup_id: u64) -> bool {
    let mut maps = Vec::new();
    for e in std::fs::read_dir("/sys/fs/bpf/moat").unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('@') {
            maps.push(e.path().join("containers"));
        } else if name == id {
            for p in std::fs::read_dir(e.path()).unwrap().flatten() {
                if p.file_name()
                    .to_string_lossy()
                    .starts_with(moat_cgroup::REGISTRY_PIN)
                {
                    maps.push(p.path());
                }
            }
        }
    }
    maps.iter().any(|m| {
        let Ok(fd) = moat_cgroup::sys::obj_get(m) else {
            return false;
        };
        let mut v = [0u8; 8];
        moat_cgroup::sys::map_lookup(&fd, &cgroup_id.to_ne_bytes(), &mut v).unwrap_or(false)
    })
}

/// Both ways a forced `delete` takes: before libc, through the registry pin, and the full
/// path for pins an older moat-runtime made (no registry pin), which reads the cgroup id
/// from the pinned description. Each removes the pins and the node map's entry.
#[test]
fn a_forced_delete_unregisters_with_or_without_the_registry_pin() {
    need_runc!();
    for old_pins in [false, true] {
        let b = Bundle::new(if old_pins { "oldpins" } else { "regpin" });
        b.annotate("moat.dev/observe", "true");
        b.start_sleeping(&moat_runtime());
        let cgroup_id = moat_cgroup::read_info(&pins(&b.id)).unwrap().cgroup_id;
        assert!(registered(&b.id, cgroup_id));
        if old_pins {
            for p in std::fs::read_dir(pins(&b.id)).unwrap().flatten() {
                if p.file_name()
                    .to_string_lossy()
                    .starts_with(moat_cgroup::REGISTRY_PIN)
                {
                    std::fs::remove_file(p.path()).unwrap();
                }
            }
            assert!(registered(&b.id, cgroup_id), "the node's own pin remains");
        }
        // Under strace, to see which way it went: before libc there is no
        // `arch_prctl` (glibc's start-up sets its thread pointer with it) until runc's
        // execve.
        let trace = b.path().join("delete.trace");
        let o = Command::new("strace")
            .arg("-f")
            .arg("-o")
            .arg(&trace)
            .args(["-e", "trace=execve,arch_prctl,bpf"])
            .arg(moat_runtime())
            .args(b.cmd(&moat_runtime()).get_args())
            .args(["delete", "--force", &b.id])
            .current_dir(b.path())
            .output()
            .expect("strace (installed by scripts/test.sh)");
        assert!(o.status.success(), "{}", stderr(&o));
        let trace = std::fs::read_to_string(&trace).unwrap();
        let ours: String = trace
            .lines()
            .skip_while(|l| !l.contains("execve(") || !l.contains("moat-runtime"))
            .skip(1)
            .take_while(|l| !l.contains("execve("))
            .collect::<Vec<_>>()
            .join("\n");
        let early = !ours.contains("arch_prctl");
        assert_eq!(early, !old_pins, "{trace}");
        assert!(ours.contains("BPF_MAP_DELETE_ELEM"), "{trace}");
        assert!(!pins(&b.id).exists(), "old pins: {old_pins}");
        assert!(!registered(&b.id, cgroup_id), "old pins: {old_pins}");
    }
}

#[test]
fn the_exporter_removes_pins_of_vanished_containers() {
    need_runc!();
    let b = Bundle::new("vanish");
    b.annotate("moat.dev/observe", "true");
    b.start_sleeping(&moat_runtime());
    assert!(pins(&b.id).exists());
    let cgroup_id = moat_cgroup::read_info(&pins(&b.id)).unwrap().cgroup_id;
    // A delete the runtime refuses (the container runs) leaves the pins.
    let o = b
        .cmd(&moat_runtime())
        .args(["delete", &b.id])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(pins(&b.id).exists());
    // Deleted behind moat-runtime's back: the cgroup goes, the pins stay.
    let o = b
        .cmd(Path::new("runc"))
        .args(["delete", "-f", &b.id])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(pins(&b.id).exists());
    let o = Command::new(bin("moat-exporter"))
        .arg("--once")
        .output()
        .unwrap();
    assert!(o.status.success());
    assert!(!stdout(&o).contains(&b.id));
    assert!(!pins(&b.id).exists());
    // The full path's removal takes the container out of the map it was registered in.
    assert!(!registered(&b.id, cgroup_id));
}

#[test]
fn udp_ports_hold_for_processes_exec_d_into_the_container() {
    need_runc!();
    let (allowed, other) = (free_port(true), free_port(true));
    let policy = format!("{UDP_POLICY}connect_udp = [{allowed}]\n");
    let probe = udp_probe(allowed, other);
    let args: Vec<&str> = probe.iter().map(String::as_str).collect();
    for (runtime, want) in [
        (
            moat_runtime(),
            "ok\nEACCES\nEACCES\nEACCES\nEACCES\nok\nEACCES\n",
        ),
        // Control: the same exec under plain runc.
        (PathBuf::from("runc"), "ok\nok\nok\nok\nok\nok\nok\n"),
    ] {
        let b = Bundle::new("udpexec");
        b.annotate("moat.dev/policy", &policy);
        b.start_sleeping(&runtime);
        let o = b
            .cmd(&runtime)
            .arg("exec")
            .arg(&b.id)
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(stdout(&o), want, "{}: {}", runtime.display(), stderr(&o));
    }
}
