//! `moat status`: what this kernel's Landlock (and seccomp) can enforce.

use super::Failure;
use moat_policy::Abi;
use moat_sandbox::abi::{self, Availability};

/// Arguments of `moat status`.
#[derive(clap::Args, Debug)]
#[command(about = "Show the kernel's Landlock ABI and, feature by feature, what it can enforce")]
pub struct StatusArgs {
    /// Print JSON instead of text, for scripts: `landlock` (`kernel_abi`, `effective_abi`,
    /// `cap` when MOAT_MAX_ABI lowers it), `features` (each Landlock feature: `feature`,
    /// `abi`, `linux`, `description`, `enforceable`) and `beyond_landlock` (what moat adds
    /// to Landlock: `feature`, `description`, `enforceable`).
    #[arg(long)]
    json: bool,
}

/// Each Landlock feature and the ABI that brought it.
const FEATURES: &[(&str, &str, Abi)] = &[
    (
        "filesystem",
        "filesystem access control (execute, read, write, create, remove)",
        Abi::V1,
    ),
    (
        "refer",
        "rename and link across directories (refer)",
        Abi::V2,
    ),
    ("truncate", "truncate", Abi::V3),
    ("tcp", "TCP bind and connect rules", Abi::V4),
    ("ioctl_dev", "ioctl on device files (ioctl_dev)", Abi::V5),
    ("scopes", "signal and abstract unix socket scopes", Abi::V6),
    (
        "audit_flags",
        "audit log flags (log_same_exec, log_new_exec, log_subdomains)",
        Abi::V7,
    ),
    ("tsync", "restrict all threads at once (tsync)", Abi::V8),
    (
        "resolve_unix",
        "connecting to pathname unix sockets (resolve_unix)",
        Abi::V9,
    ),
    ("udp", "UDP bind and connect/send rules", Abi::V10),
];

/// What a control beyond Landlock needs from the kernel.
#[derive(Copy, Clone)]
enum Layer {
    /// A seccomp filter.
    Seccomp,
    /// moat's supervisor: seccomp user notification and pidfd_getfd (Linux 5.6).
    Supervisor,
    /// Nothing beyond what every Linux has.
    Always,
}

/// What moat enforces beyond Landlock's own rights: `(key, description, what it needs)`.
/// The honest half of the status: a policy can imply more than the ABI list shows.
const BEYOND_LANDLOCK: &[(&str, &str, Layer)] = &[
    (
        "sockets",
        "seccomp: UDP (before ABI 10), raw, packet, SCTP, MPTCP, other families and io_uring refused when a policy restricts the network",
        Layer::Seccomp,
    ),
    (
        "terminal",
        "seccomp: TIOCSTI and TIOCLINUX refused in every sandbox (no keystrokes into the caller's terminal)",
        Layer::Seccomp,
    ),
    (
        "unix_none",
        "seccomp: socket(AF_UNIX) refused when a policy allows no pathname unix socket (before ABI 9)",
        Layer::Seccomp,
    ),
    (
        "unix_allowlist",
        "supervisor: only the listed pathname unix sockets reachable, before ABI 9 (unix datagram sockets refused)",
        Layer::Supervisor,
    ),
    (
        "listen_none",
        "seccomp: listen() refused when a policy allows no bind port and no unix socket",
        Layer::Seccomp,
    ),
    (
        "listen_ports",
        "supervisor: listen() only on sockets bound to the allowed bind ports (no Landlock ABI has it)",
        Layer::Supervisor,
    ),
    (
        "capabilities",
        "every capability dropped before exec, but those a policy keeps",
        Layer::Always,
    ),
];

/// Whether this kernel has what `layer` needs.
fn enforceable(layer: Layer, seccomp: bool) -> bool {
    match layer {
        Layer::Seccomp => seccomp,
        Layer::Supervisor => seccomp && moat_sandbox::supervisor_available(),
        Layer::Always => true,
    }
}

fn seccomp_available() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| s.lines().any(|l| l.starts_with("Seccomp:")))
        .unwrap_or(false)
}

/// Runs `moat status`.
pub fn status(args: StatusArgs) -> Result<i32, Failure> {
    let info = abi::detect().map_err(Failure::moat)?;
    let effective = match info.availability {
        Availability::Available => info.effective,
        Availability::Disabled | Availability::Missing => Abi::V0,
    };
    let availability = match info.availability {
        Availability::Available => "available",
        Availability::Disabled => "disabled",
        Availability::Missing => "missing",
    };
    let seccomp = seccomp_available();
    if args.json {
        let features: Vec<_> = FEATURES
            .iter()
            .map(|(key, what, abi)| {
                serde_json::json!({
                    "feature": key,
                    "description": what,
                    "abi": abi.number(),
                    "linux": abi.linux(),
                    "enforceable": *abi <= effective,
                })
            })
            .collect();
        let doc = serde_json::json!({
            "moat_version": env!("CARGO_PKG_VERSION"),
            "landlock": {
                "availability": availability,
                "kernel_abi": info.kernel_number,
                "effective_abi": effective.number(),
                "cap": info.cap.map(Abi::number),
                "newest_known_abi": Abi::LATEST.number(),
            },
            "features": features,
            "seccomp_socket_filter": seccomp,
            "beyond_landlock": BEYOND_LANDLOCK
                .iter()
                .map(|(key, what, layer)| serde_json::json!({
                    "feature": key,
                    "description": what,
                    "enforceable": enforceable(*layer, seccomp),
                }))
                .collect::<Vec<_>>(),
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&doc).map_err(Failure::moat)?
        );
        return Ok(0);
    }
    println!("moat {}", env!("CARGO_PKG_VERSION"));
    println!("Landlock: {}", info.describe());
    if info.kernel_number > i64::from(Abi::LATEST.number()) {
        println!(
            "  (the kernel reports ABI {}; moat knows up to {})",
            info.kernel_number,
            Abi::LATEST
        );
    }
    println!("effective ABI: {effective}");
    println!();
    for (_, what, abi) in FEATURES {
        let mark = if *abi <= effective { "yes" } else { "no " };
        println!(
            "  {mark}  ABI {:>2} (Linux {:>5})  {what}",
            abi.number(),
            abi.linux()
        );
    }
    println!();
    println!("beyond Landlock:");
    for (_, what, layer) in BEYOND_LANDLOCK {
        let yes = enforceable(*layer, seccomp);
        println!("  {}  {what}", if yes { "yes" } else { "no " });
    }
    Ok(0)
}
