//! `moat exporter` (`moat-exporter`): serves the containers' cgroup-bpf counters to
//! Prometheus. See `moat_cgroup::exporter`.

use clap::Parser;
use std::path::PathBuf;

/// Serve moat's per-container network counters and refusals as Prometheus metrics.
///
/// Reads the maps moat-runtime pins under the pin directory for every container it
/// confines or observes (annotation moat.dev/observe: "true"), and removes the pins of
/// containers whose cgroup is gone. Needs CAP_BPF (and read/write access to the pins).
#[derive(Parser)]
#[command(name = "moat exporter", bin_name = "moat exporter", version)]
struct Args {
    /// Address to serve /metrics on: HOST:PORT, `[IPV6]:PORT`, or :PORT for all addresses.
    #[arg(long, default_value = ":9477", value_name = "ADDR")]
    listen: String,
    /// moat's directory in bpffs.
    #[arg(long, default_value = moat_cgroup::DEFAULT_ROOT, value_name = "DIR")]
    pins: PathBuf,
    /// Where the host's root is mounted, to see which containers' cgroups still exist
    /// (in a container: the host's /sys/fs/cgroup mounted under DIR/sys/fs/cgroup).
    #[arg(long, default_value = "/", value_name = "DIR")]
    host_root: PathBuf,
    /// Print the metrics once to stdout (classic Prometheus text format) and exit.
    #[arg(long)]
    once: bool,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let fail = |m: String| {
        eprintln!("moat exporter: {m}");
        std::process::ExitCode::from(2)
    };
    let cpus = match moat_cgroup::sys::PossibleCpus::get() {
        Ok(n) => n,
        Err(e) => return fail(format!("cannot count the possible CPUs: {e}")),
    };
    let src = moat_cgroup::exporter::Sources {
        pins: args.pins,
        host: args.host_root,
        cpus,
    };
    if args.once {
        let text = moat_cgroup::exporter::scrape(&src);
        print!("{}", moat_cgroup::exporter::to_prometheus_text(&text));
        return std::process::ExitCode::SUCCESS;
    }
    let listen = match moat_cgroup::exporter::parse_listen(&args.listen) {
        Ok(a) => a,
        Err(m) => return fail(m),
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(format!("cannot start the async runtime: {e}")),
    };
    match rt.block_on(moat_cgroup::exporter::serve(listen, src)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => fail(format!("{}: {e}", args.listen)),
    }
}
