//! moat-sandbox's remedies in `moat run`'s words: its flags, and the policy-file line when
//! one fits.

use moat_policy::{FsGroup, NetRight, Scope};
use moat_sandbox::remedy::{Advised, Remedy};
use std::sync::atomic::{AtomicBool, Ordering};

/// The `moat run` flag that grants `group` on a path, when one does.
fn group_flag(group: FsGroup) -> Option<&'static str> {
    match group {
        FsGroup::Read => Some("--ro"),
        FsGroup::Execute | FsGroup::ReadExec => Some("--rox"),
        FsGroup::Write | FsGroup::ReadWrite => Some("--rw"),
        FsGroup::ReadWriteExec => Some("--rwx"),
        FsGroup::Devices | FsGroup::All => None,
    }
}

/// Set once by the container launcher (`moat run --from-runtime`): its users write a
/// container's policy and annotations, not `moat run` flags.
static CONTAINER: AtomicBool = AtomicBool::new(false);

/// Speak to a container's user from now on ([`moat_sandbox::remedy::container_words`]).
pub fn speak_for_container() {
    CONTAINER.store(true, Ordering::Relaxed);
}

fn for_container() -> bool {
    CONTAINER.load(Ordering::Relaxed)
}

/// How `--explain` offers one remedy.
pub fn allow_it(remedy: &Remedy) -> String {
    if for_container() {
        match moat_sandbox::remedy::container_words(remedy) {
            Some(w) => format!("to allow it, {w}"),
            None => "no setting of a container's policy allows it".into(),
        }
    } else {
        format!("allow it with {}", words(remedy))
    }
}

/// The line every denial moat reports ends with: how to see the others.
pub fn explain_hint() -> String {
    if for_container() {
        format!(
            "\nmoat: set the annotation {}=true to see everything the sandbox denies and \
             what would allow each",
            moat_policy::annotations::EXPLAIN
        )
    } else {
        "\nmoat: run it again with `moat run --explain ...` to see everything the sandbox \
         denies and the flag that would allow each"
            .to_string()
    }
}

/// One remedy, as `moat run` says it.
pub fn words(remedy: &Remedy) -> String {
    let line = remedy.policy_line();
    let with_line = |flag: Option<String>| match (flag, &line) {
        (Some(f), Some(l)) => format!("`{f}`, or in a policy file `{l}`"),
        (Some(f), None) => format!("`{f}`"),
        (None, Some(l)) => format!("in a policy file `{l}`"),
        (None, None) => String::new(),
    };
    match remedy {
        Remedy::Grant { path, group } => {
            with_line(group_flag(*group).map(|f| format!("{f} {}", path.display())))
        }
        Remedy::AllowPort { right, port } => {
            let flag = match right {
                NetRight::BindTcp => "--bind-tcp",
                NetRight::ConnectTcp => "--connect-tcp",
                NetRight::BindUdp => "--bind-udp",
                NetRight::ConnectSendUdp => "--connect-udp",
            };
            with_line(Some(format!("{flag} {port}")))
        }
        Remedy::Unscope(s) => {
            let flag = match s {
                Scope::Signal => "signal",
                Scope::AbstractUnixSocket => "abstract-unix-socket",
            };
            with_line(Some(format!("--unscoped {flag}")))
        }
        Remedy::GrantExecAbove { .. } => "allow it with --rox on a directory above it".into(),
        Remedy::GrantProgram => "pass --add-exec".into(),
        Remedy::GrantDependencies => "pass --ldd".into(),
        Remedy::MarkOptional => "mark it optional".into(),
        Remedy::IgnoreMissing => "pass --ignore-missing to skip it".into(),
        Remedy::BestEffort => "pass --best-effort to run with what this kernel enforces".into(),
    }
}

/// An error of moat-sandbox with its remedies in `moat run`'s words. Cold: only a
/// launch that fails gets here, and the launch path stays as small as before.
#[cold]
pub fn advise(err: &impl Advised) -> String {
    if for_container() {
        err.advise(&moat_sandbox::remedy::container_words)
    } else {
        err.advise(&|r| Some(words(r)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use moat_policy::FsRight;
    use moat_sandbox::diagnose::explain::Denied;

    fn remedy(d: Denied) -> String {
        words(&d.remedy())
    }

    #[test]
    fn remedies_name_the_smallest_flag_and_group() {
        let d = Denied::Fs {
            path: "/root/.bashrc".into(),
            rights: vec![FsRight::ReadFile],
        };
        assert_eq!(
            remedy(d),
            "`--ro /root/.bashrc`, or in a policy file `[filesystem] read = [\"/root/.bashrc\"]`"
        );
        let d = Denied::Fs {
            path: "/opt/x".into(),
            rights: vec![FsRight::Execute, FsRight::ReadFile],
        };
        let r = remedy(d);
        assert!(r.starts_with("`--rox /opt/x`"), "{r}");
        assert!(r.contains("read_exec = [\"/opt/x\"]"));
        let d = Denied::Fs {
            path: "/etc".into(),
            rights: vec![FsRight::MakeReg],
        };
        assert!(remedy(d).starts_with("`--rw /etc`"));
        let d = Denied::Port {
            right: NetRight::BindTcp,
            port: 100,
        };
        assert_eq!(
            remedy(d),
            "`--bind-tcp 100`, or in a policy file `[network] bind_tcp = [100]`"
        );
        assert!(remedy(Denied::Scope(Scope::Signal)).contains("[scopes] signal = false"));
    }

    #[test]
    fn errors_read_as_they_always_have() {
        use moat_sandbox::exec::{ExecError, Lacking};
        use moat_sandbox::plan::PlanError;
        let missing = PlanError::MissingPath {
            path: "/no/such".into(),
            origin: moat_policy::Origin::new("flag --ro"),
        };
        assert_eq!(
            advise(&missing),
            "flag --ro: path `/no/such` does not exist \
             (mark it optional or pass --ignore-missing to skip it)"
        );
        let denied = |which| ExecError::PolicyDenied {
            program: "/opt/p".into(),
            lacking: "/opt/i".into(),
            which,
        };
        assert_eq!(
            advise(&denied(Lacking::Program)),
            "cannot execute /opt/p: the sandbox policy denies `execute` on /opt/i; \
             allow it with --rox on a directory above it or pass --add-exec"
        );
        assert_eq!(
            advise(&denied(Lacking::Interpreter)),
            "cannot execute /opt/p: the sandbox policy denies `execute` on /opt/i (its \
             interpreter); allow it with --rox on a directory above it or pass --ldd"
        );
        let report = moat_sandbox::Report::new(
            moat_sandbox::abi::detect_with_cap(None),
            moat_policy::Compat::Strict,
        );
        assert_eq!(
            advise(&report.refusal()),
            format!(
                "the sandbox cannot be applied as requested on this kernel ({}):\n\
                 run on a newer kernel, change the policy, or pass --best-effort to run with \
                 what this kernel enforces",
                report.abi.describe()
            )
        );
    }
}
