//! The kernel's own measure of what the counting program costs per packet
//! (`BPF_PROG_TEST_RUN`, `repeat` runs on one IPv4/UDP packet, mean ns per run), against
//! an empty program (`r0 = 1; exit`) loaded the same way. docs/PERFORMANCE.md turns it into
//! throughput: a packet passes two programs (egress of the sender, ingress of the
//! receiver) when both ends are in the container.
//!
//! usage (root): cargo run --release -p moat-cgroup --example program_cost [REPEAT]

use moat_cgroup::insn::{exit, mov_imm, R0};
use moat_cgroup::sys::{self, AttachType, MapType, ProgType};
use moat_cgroup::{counter, Direction, COUNTER_SIZE, TRAFFIC_ENTRIES, TRAFFIC_KEY_SIZE};
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;

fn main() {
    let repeat: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000_000);
    // Ethernet + IPv4 + UDP + 64 bytes of payload.
    let mut pkt = vec![0u8; 14 + 20 + 8 + 64];
    pkt[12] = 0x08; // ETH_P_IP
    pkt[14] = 0x45;
    pkt[16..18].copy_from_slice(&((20 + 8 + 64) as u16).to_be_bytes());
    pkt[22] = 64;
    pkt[23] = 17;
    pkt[26..30].copy_from_slice(&[127, 0, 0, 1]);
    pkt[30..34].copy_from_slice(&[127, 0, 0, 1]);
    let traffic = sys::map_create(
        MapType::PercpuHash,
        TRAFFIC_KEY_SIZE,
        COUNTER_SIZE,
        TRAFFIC_ENTRIES,
        sys::F_NO_PREALLOC,
        "cost_traffic",
    )
    .expect("map (run as root)");
    // The node's map of containers, with this process's cgroup (which the test run's
    // socket belongs to) registered as a container's: the path every counted packet takes.
    let containers =
        sys::map_create(MapType::Hash, 8, 8, 16, sys::F_NO_PREALLOC, "cost_cont").expect("map");
    let mount = moat_cgroup::cgroup2_mount().expect("cgroup2");
    let own = moat_cgroup::own_cgroup().expect("own cgroup");
    let id = std::fs::metadata(mount.join(own.trim_start_matches('/')))
        .expect("own cgroup directory")
        .ino();
    sys::map_update(&containers, &id.to_ne_bytes(), &0u64.to_ne_bytes()).expect("register");
    let count = counter(
        Direction::Transmit,
        containers.as_raw_fd(),
        traffic.as_raw_fd(),
    );
    let empty = [mov_imm(R0, 1), exit()];
    for (name, insns) in [("empty program", &empty[..]), ("moat counter", &count[..])] {
        let prog = sys::prog_load(ProgType::CgroupSkb, AttachType::Egress, insns, "cost")
            .unwrap_or_else(|(e, log)| panic!("{e}: {log}"));
        let mut best = u32::MAX;
        for _ in 0..5 {
            let (ret, ns) = sys::prog_test_run(&prog, &pkt, repeat).expect("test run");
            assert_eq!(ret, 1, "the program must let the packet through");
            best = best.min(ns);
        }
        println!("{name:14} {best:4} ns per packet (best of 5 x {repeat} runs)");
    }
}
