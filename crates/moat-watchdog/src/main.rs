//! `moat-watchdog` (also `moat watchdog`): the function server. Configured by environment
//! variables like the classic watchdog; `--help` lists them all.

use clap::Parser;
use moat_watchdog::config::{self, Config};
use std::process::ExitCode;

/// The exit status of every start-up failure (as `moat run` when moat itself fails).
const EXIT_START_FAILED: u8 = 125;

#[derive(Parser, Debug)]
#[command(
    name = "moat-watchdog",
    version,
    about = "An OpenFaaS classic watchdog that runs every function call in its own Landlock sandbox",
    long_about = "An HTTP function server, a drop-in replacement for the OpenFaaS classic watchdog: \
each request runs the function (fprocess) with the body on stdin and answers with its stdout. \
Every call runs in its own Landlock sandbox with a private temporary directory, and its whole \
process tree is killed when it ends.\n\n\
Exit status: 0 after a graceful shutdown (SIGTERM or SIGINT); 125 when the watchdog cannot start \
(bad configuration, fprocess not found, sandbox=required on a kernel that cannot enforce the \
sandbox, port in use); with --run-healthcheck, 0 when the lock file exists and 1 otherwise.",
    after_help = config::help_text()
)]
struct Args {
    /// Exit 0 if the lock file exists, 1 otherwise (for exec health checks), and do nothing else.
    #[arg(long = "run-healthcheck")]
    run_healthcheck: bool,
}

fn main() -> ExitCode {
    // Before any thread exists: the reaping thread must be the only one to take SIGCHLD.
    moat_watchdog::block_sigchld();
    open_standard_streams();
    let args = Args::parse();
    if args.run_healthcheck {
        if moat_watchdog::lock_path().exists() {
            return ExitCode::SUCCESS;
        }
        eprintln!("unable to find lock file.");
        return ExitCode::from(1);
    }
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_target(false)
        .init();
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    let _ballast = (config.ballast_mb > 0).then(|| {
        tracing::info!(
            "MOAT_WATCHDOG_BALLAST_MB={}: holding that much touched memory (benchmark aid)",
            config.ballast_mb
        );
        moat_watchdog::allocate_ballast(config.ballast_mb)
    });
    let prepared = match moat_watchdog::prepare(config) {
        Ok(p) => p,
        Err(e) => return fail(&e),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return fail(&moat_watchdog::StartError::Runtime(e)),
    };
    match runtime.block_on(prepared.serve()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

fn fail(e: &dyn std::fmt::Display) -> ExitCode {
    // Once the log is set up, the failure is a log line like any other (both go to
    // stderr: printing it twice read as two failures); before, a plain line.
    if tracing::dispatcher::has_been_set() {
        tracing::error!("{e}");
    } else {
        eprintln!("moat-watchdog: {e}");
    }
    ExitCode::from(EXIT_START_FAILED)
}

/// Opens /dev/null on any of descriptors 0-2 that is closed, so that no pipe made for a call
/// lands on them (the spawn duplicates pipes onto 0-2 and needs them elsewhere).
fn open_standard_streams() {
    for fd in 0..=2 {
        // SAFETY: F_GETFD only queries the descriptor.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 {
            // SAFETY: open returns the lowest free descriptor, which is `fd`.
            unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) };
        }
    }
}
