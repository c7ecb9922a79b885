//! What a sandbox enforces and what it does not: the one report every enforcement point
//! (moat run, moat check, the container runtime, the watchdog) shows the same way.

use crate::abi::AbiInfo;
use crate::remedy::{Advised, Frame, Remedy};
use moat_policy::{Abi, Compat};
use std::fmt;

/// What would enforce a control this kernel and this moat cannot.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Needs {
    /// A newer Landlock ABI.
    Abi(Abi),
    /// A newer Landlock ABI, or moat's supervisor (`crate::supervise`), which this
    /// kernel cannot run.
    AbiOrSupervisor(Abi),
    /// No Landlock ABI controls it: only moat's supervisor, which this kernel cannot run.
    Supervisor,
}

impl fmt::Display for Needs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Needs::Abi(a) => write!(f, "needs Landlock ABI {a}, Linux {}", a.linux()),
            Needs::AbiOrSupervisor(a) => write!(
                f,
                "needs Landlock ABI {a} (Linux {}), or moat's supervisor, which needs \
                 {SUPERVISOR_KERNEL}",
                a.linux()
            ),
            Needs::Supervisor => write!(
                f,
                "no Landlock ABI controls it; moat's supervisor does, which needs \
                 {SUPERVISOR_KERNEL}"
            ),
        }
    }
}

/// What moat's supervisor needs of the kernel.
const SUPERVISOR_KERNEL: &str = "Linux 5.6 (seccomp user notification and pidfd_getfd)";

/// A control the kernel cannot enforce at the effective ABI.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gap {
    /// What is not enforced, in words ("deny `truncate` outside the rules").
    pub what: String,
    /// What would enforce it.
    pub needs: Needs,
}

impl fmt::Display for Gap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.what, self.needs)
    }
}

/// The outcome of planning a sandbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// The kernel and effective ABI.
    pub abi: AbiInfo,
    /// Strict or best-effort.
    pub compat: Compat,
    /// What will be enforced, one line each; filled by `Plan::describe`.
    pub enforced: Vec<String>,
    /// Controls the policy asks for that this kernel cannot enforce. Strict mode refuses
    /// to run when this is not empty; best-effort prints each one.
    pub dropped: Vec<Gap>,
    /// Rights the policy denies by default that this kernel cannot deny, and that the
    /// policy does not insist on (see `FsPolicy::required`): shown, never silent.
    pub limits: Vec<Gap>,
    /// What the policy implies that nothing enforces yet, and that strict mode still runs
    /// with (refusing would break every server with an allowed port): printed at every
    /// run, in both modes.
    pub warned: Vec<Gap>,
    /// Optional paths that were skipped because they do not exist, and rules skipped on
    /// purpose, with why.
    pub skipped: Vec<String>,
    /// How path exceptions were planned.
    pub notes: Vec<String>,
}

impl Report {
    /// A report with nothing in it yet, for a policy planned at `abi` in `compat` mode.
    pub fn new(abi: AbiInfo, compat: Compat) -> Report {
        Report {
            abi,
            compat,
            enforced: Vec::new(),
            dropped: Vec::new(),
            limits: Vec::new(),
            warned: Vec::new(),
            skipped: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// Whether strict mode would refuse this sandbox.
    pub fn refused(&self) -> bool {
        self.compat == Compat::Strict && !self.dropped.is_empty()
    }

    /// Whether everything the policy implies is enforced.
    pub fn fully_enforced(&self) -> bool {
        self.dropped.is_empty() && self.limits.is_empty() && self.warned.is_empty()
    }

    /// The lines to print before running: every control that is not enforced (dropped
    /// ones in best-effort mode, and the gaps strict mode runs with).
    pub fn warnings(&self) -> Vec<String> {
        self.dropped
            .iter()
            .chain(&self.warned)
            .map(|g| format!("not enforced: {g}"))
            .collect()
    }

    /// The message strict mode gives when it refuses: what the kernel cannot enforce, and
    /// (through [`Advised`]) what to do about it.
    pub fn refusal(&self) -> Refusal<'_> {
        Refusal(self)
    }
}

/// Strict mode's refusal of a [`Report`]'s dropped controls.
#[derive(Clone, Copy, Debug)]
pub struct Refusal<'a>(&'a Report);

impl fmt::Display for Refusal<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the sandbox cannot be applied as requested on this kernel ({}):",
            self.0.abi.describe()
        )?;
        for g in &self.0.dropped {
            write!(f, "\n  - {g}")?;
        }
        Ok(())
    }
}

impl Advised for Refusal<'_> {
    fn remedies(&self) -> Vec<Remedy> {
        vec![Remedy::BestEffort]
    }

    fn advice_frame(&self) -> Option<Frame> {
        Some(Frame {
            before: "\nrun on a newer kernel, change the policy, or ",
            between: ", or ",
            after: "",
        })
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "kernel: {}", self.abi.describe())?;
        writeln!(f, "mode: {}", self.compat.name())?;
        writeln!(f, "enforced:")?;
        for line in &self.enforced {
            writeln!(f, "  {line}")?;
        }
        let sections: [(&str, &[String]); 2] = [
            ("skipped:", &self.skipped),
            ("path exceptions:", &self.notes),
        ];
        for (title, lines) in sections {
            if !lines.is_empty() {
                writeln!(f, "{title}")?;
                for line in lines {
                    writeln!(f, "  {line}")?;
                }
            }
        }
        let gaps: [(&str, &[Gap]); 2] = [
            (
                "not restricted by this kernel (the policy does not require it):",
                &self.limits,
            ),
            (
                "not enforced (moat runs anyway and says so at every run):",
                &self.warned,
            ),
        ];
        for (title, list) in gaps {
            if !list.is_empty() {
                writeln!(f, "{title}")?;
                for g in list {
                    writeln!(f, "  {g}")?;
                }
            }
        }
        if self.dropped.is_empty() {
            writeln!(f, "dropped: nothing")?;
        } else {
            writeln!(f, "dropped (asked for, not enforceable here):")?;
            for g in &self.dropped {
                writeln!(f, "  {g}")?;
            }
        }
        let verdict = if self.refused() {
            "strict mode refuses to run this sandbox"
        } else if !self.dropped.is_empty() {
            "runs in best-effort mode with the controls above dropped"
        } else if !self.fully_enforced() {
            "runs, but not fully enforced: see what is listed above as not restricted or not \
             enforced"
        } else {
            "runs fully enforced"
        };
        write!(f, "verdict: {verdict}")
    }
}
