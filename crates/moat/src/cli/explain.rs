//! `moat run --explain`: run the command sandboxed as a child, and when it ends, say what
//! the sandbox denied it and which flag or policy line would allow each denial.
//!
//! The kernel's Landlock audit records are the source when they can be read (ABI 7, audit
//! enabled, CAP_AUDIT_READ): the domain is created with `log_new_exec` so the command's
//! denials are logged, and only records of that domain are used. Otherwise the command is
//! traced with seccomp user notification and each call is checked against the plan the
//! way Landlock checks it. moat stays as the parent (ignoring the terminal's SIGINT and
//! SIGQUIT like a shell with a foreground job, passing on SIGTERM, SIGHUP, SIGUSR1 and
//! SIGUSR2) and exits with the command's status.

use super::{remedy, Failure};
use moat_policy::Abi;
use moat_sandbox::diagnose::audit::{self, AuditLog};
use moat_sandbox::diagnose::explain::{Checker, Denial, Denials};
use moat_sandbox::diagnose::trace::{self, Exit};
use moat_sandbox::enforce::{Enforcement, Restrictions, SupervisorHost};
use moat_sandbox::exec::Target;
use moat_sandbox::Plan;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::sync::atomic::{AtomicI32, Ordering};

/// Runs the command under `plan` as a child and reports what was denied.
pub fn run(
    target: &Target,
    env: Option<&[(OsString, OsString)]>,
    mut plan: Plan,
) -> Result<i32, Failure> {
    let audit = match plan.landlock.as_ref() {
        Some(l) if l.abi >= Abi::V7 => {
            AuditLog::open().map_err(|e| format!("{e}{}", audit_advice(&e)))
        }
        Some(_) => Err("Landlock audit needs ABI 7".to_string()),
        None => Err("no Landlock domain".to_string()),
    };
    let (exit, denials, source) = match audit {
        Ok(log) => {
            if let Some(l) = plan.landlock.as_mut() {
                // The command runs after an exec: without this its denials are not logged.
                l.audit.log_new_exec = true;
                l.audit.log_same_exec = true;
            }
            let (exit, denials) = with_audit(target, env, &plan, &log)?;
            (
                exit,
                denials,
                "the kernel's Landlock audit records".to_string(),
            )
        }
        Err(why) => {
            let (exit, denials) = with_tracer(target, env, &plan)?;
            (
                exit,
                denials,
                format!(
                    "the command's calls, traced with seccomp user notification and checked \
                     against the policy (audit records unavailable: {why})"
                ),
            )
        }
    };
    report(&denials, &source);
    Ok(exit.status())
}

/// In the child: what `moat run` does before exec, through the same entry point.
fn restrict(restrictions: &Restrictions) -> Result<(), String> {
    restrictions.apply().map(|_| ()).map_err(|e| e.to_string())
}

/// The command's pid, for the forwarding handler.
static CHILD: AtomicI32 = AtomicI32::new(0);

extern "C" fn forward(sig: libc::c_int) {
    let pid = CHILD.load(Ordering::Relaxed);
    if pid > 0 {
        // SAFETY: kill is async-signal-safe.
        unsafe { libc::kill(pid, sig) };
    }
}

/// How to get the kernel's own records on this machine, when that is possible here.
fn audit_advice(why: &audit::AuditUnavailable) -> &'static str {
    if !matches!(why, audit::AuditUnavailable::Disabled) {
        return "";
    }
    // SAFETY: no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return "";
    }
    let on_path = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|d| d.join("auditctl").is_file()));
    if on_path {
        "; `auditctl -e 1` enables it"
    } else {
        "; auditctl, from the auditd package, enables it with `auditctl -e 1`"
    }
}

/// Like a shell with a foreground job: the terminal's interrupt goes to the command and
/// moat ignores it. Signals sent to moat itself (a container engine stopping its pid 1,
/// a supervisor) are passed on to the command.
fn forward_signals(child: libc::pid_t) {
    CHILD.store(child, Ordering::Relaxed);
    // SAFETY: SIG_IGN and a handler that only calls kill(2) are valid dispositions.
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_IGN);
        libc::signal(libc::SIGQUIT, libc::SIG_IGN);
        for sig in [libc::SIGTERM, libc::SIGHUP, libc::SIGUSR1, libc::SIGUSR2] {
            libc::signal(
                sig,
                forward as extern "C" fn(libc::c_int) as libc::sighandler_t,
            );
        }
    }
}

fn with_tracer(
    target: &Target,
    env: Option<&[(OsString, OsString)]>,
    plan: &Plan,
) -> Result<(Exit, Vec<Denial>), Failure> {
    let checker = Checker::new(plan);
    // One listener per process: the tracer's also serves the sandbox's supervised calls.
    let restrictions = Restrictions::from_plan(plan, &[], Enforcement::Required)
        .map_err(Failure::moat)?
        .served_by(SupervisorHost::Tracer);
    let mut session =
        trace::spawn(target, env, || restrict(&restrictions)).map_err(Failure::moat)?;
    if let Some(rules) = restrictions.supervisor_rules() {
        // What the supervisor performs is checked as the program's own calls would be.
        restrictions.drop_capabilities_here().map_err(|e| {
            Failure::moat(format!(
                "dropping capabilities to supervise the command: {e}"
            ))
        })?;
        session.supervise(std::sync::Arc::clone(rules));
    }
    forward_signals(session.pid());
    let mut denials = Denials::default();
    let exit = session
        .run(|e| {
            for what in checker.check_call(&e.observed) {
                denials.add(Denial {
                    what,
                    pid: e.pid,
                    comm: e.comm(),
                });
            }
        })
        .map_err(Failure::moat)?;
    Ok((exit, denials.into_vec()))
}

fn with_audit(
    target: &Target,
    env: Option<&[(OsString, OsString)]>,
    plan: &Plan,
    log: &AuditLog,
) -> Result<(Exit, Vec<Denial>), Failure> {
    let restrictions =
        Restrictions::from_plan(plan, &[], Enforcement::Required).map_err(Failure::moat)?;
    let session =
        trace::spawn_untraced(target, env, || restrict(&restrictions)).map_err(Failure::moat)?;
    forward_signals(session.pid());
    let mut records = Vec::new();
    let exit = loop {
        records.extend(log.read(50));
        if let Some(exit) = session.try_wait().map_err(Failure::moat)? {
            // The kernel may still be delivering the last records.
            records.extend(log.read(200));
            break exit;
        }
    };
    let child = session.pid();
    let domain = records.iter().find_map(|r| {
        (r.kind == audit::AUDIT_LANDLOCK_DOMAIN)
            .then(|| audit::parse_allocation(&r.text))
            .flatten()
            .filter(|(_, pid)| *pid == child)
            .map(|(d, _)| d)
    });
    let who: BTreeMap<u64, (i32, String)> = records
        .iter()
        .filter(|r| r.kind == audit::AUDIT_SYSCALL)
        .filter_map(|r| audit::parse_syscall(&r.text).map(|w| (r.serial, w)))
        .collect();
    let mut denials = Denials::default();
    for r in records
        .iter()
        .filter(|r| r.kind == audit::AUDIT_LANDLOCK_ACCESS)
    {
        let Some((d, denied)) = audit::parse_access(&r.text) else {
            continue;
        };
        if Some(&d) != domain.as_ref() {
            continue; // another sandbox on this machine, or a nested one
        }
        let (pid, comm) = who.get(&r.serial).cloned().unwrap_or((0, "?".into()));
        for what in denied {
            denials.add(Denial {
                what,
                pid,
                comm: comm.clone(),
            });
        }
    }
    Ok((exit, denials.into_vec()))
}

fn report(denials: &[Denial], source: &str) {
    if denials.is_empty() {
        eprintln!("moat: explain: the sandbox denied nothing (source: {source})");
        return;
    }
    let n = denials.len();
    eprintln!(
        "moat: explain: the sandbox denied {n} operation{} (source: {source}):",
        if n == 1 { "" } else { "s" }
    );
    for d in denials {
        let text = format!("{d}\n  {}", remedy::allow_it(&d.what.remedy()));
        for line in text.lines() {
            eprintln!("moat: explain:   {line}");
        }
    }
}
