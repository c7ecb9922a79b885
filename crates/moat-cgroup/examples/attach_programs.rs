//! Attaches cgroup_skb programs to a cgroup v2 directory, for measuring what the kernel's
//! hooks cost apart from what moat's programs do in them (`bench/cgroup_bpf.py --floor`):
//!
//! - `empty`: a program that only lets the packet through (`r0 = 1; exit`), on ingress
//!   and egress: the kernel's cost of running any cgroup_skb program per packet;
//! - `counter`: moat's counting programs, with maps of the node's shapes in which the
//!   cgroup is registered, as moat-runtime registers a container's.
//!
//! The programs stay attached until the cgroup is removed (`rmdir`); the maps live as
//! long as the programs.
//!
//! usage (root): cargo run --release -p moat-cgroup --example attach_programs -- DIR empty|counter

use moat_cgroup::insn::{exit, mov_imm, R0};
use moat_cgroup::sys::{self, AttachType, MapType, ProgType};
use moat_cgroup::{counter, Direction, COUNTER_SIZE, TRAFFIC_ENTRIES, TRAFFIC_KEY_SIZE};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, mode] = args.as_slice() else {
        eprintln!("usage: attach_programs CGROUP_DIR empty|counter");
        return ExitCode::from(2);
    };
    match attach(dir, mode) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("attach_programs: {e}");
            ExitCode::FAILURE
        }
    }
}

fn attach(dir: &str, mode: &str) -> Result<(), String> {
    let err = |what: &str| {
        let what = what.to_string();
        move |e: std::io::Error| format!("{what}: {e}")
    };
    let cgroup: OwnedFd = std::fs::File::open(dir).map_err(err(dir))?.into();
    let id = std::fs::metadata(dir).map_err(err(dir))?.ino();
    let traffic = sys::map_create(
        MapType::PercpuHash,
        TRAFFIC_KEY_SIZE,
        COUNTER_SIZE,
        TRAFFIC_ENTRIES,
        sys::F_NO_PREALLOC,
        "bench_traffic",
    )
    .map_err(err("traffic map"))?;
    let containers = sys::map_create(MapType::Hash, 8, 8, 16, sys::F_NO_PREALLOC, "bench_cont")
        .map_err(err("containers map"))?;
    sys::map_update(&containers, &id.to_ne_bytes(), &0u64.to_ne_bytes())
        .map_err(err("register"))?;
    for (hook, direction) in [
        (AttachType::Ingress, Direction::Receive),
        (AttachType::Egress, Direction::Transmit),
    ] {
        let insns = match mode {
            "empty" => vec![mov_imm(R0, 1), exit()],
            "counter" => counter(direction, containers.as_raw_fd(), traffic.as_raw_fd()),
            other => return Err(format!("unknown mode `{other}` (empty or counter)")),
        };
        let prog = sys::prog_load(ProgType::CgroupSkb, hook, &insns, "bench")
            .map_err(|(e, log)| format!("load: {e}\n{log}"))?;
        sys::prog_attach(&cgroup, &prog, hook).map_err(err("attach"))?;
    }
    Ok(())
}
