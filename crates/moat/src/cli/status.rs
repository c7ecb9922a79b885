//! `moat status`: what this kernel's Landlock (and seccomp) can enforce.

use super::Failure;
use moat_policy::Abi;
use moat_sandbox::abi::{self, Availability};

/// Arguments of `moat status`.
#[derive(clap::Args, Debug)]
#[command(about = "Show the kernel's Landlock ABI and, feature by feature, what it can enforce")]
pub struct StatusArgs {
    /// Print JSON instead of text.
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
    println!(
        "  {}  seccomp socket filter (UDP, raw, packet, SCTP, MPTCP)",
        if seccomp { "yes" } else { "no " }
    );
    Ok(0)
}
