//! What a sandbox enforces and what it does not: the one report every enforcement point
//! (moat run, moat check, the container runtime, the watchdog) shows the same way.

use crate::abi::AbiInfo;
use moat_policy::{Abi, Compat};
use std::fmt;

/// A control the kernel cannot enforce at the effective ABI.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gap {
    /// What is not enforced, in words ("deny `truncate` outside the rules").
    pub what: String,
    /// The ABI that would enforce it.
    pub needs: Abi,
}

impl fmt::Display for Gap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (needs Landlock ABI {}, Linux {})",
            self.what,
            self.needs,
            self.needs.linux()
        )
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
    /// Optional paths that were skipped because they do not exist.
    pub skipped: Vec<String>,
}

impl Report {
    /// Whether strict mode would refuse this sandbox.
    pub fn refused(&self) -> bool {
        self.compat == Compat::Strict && !self.dropped.is_empty()
    }

    /// The lines best-effort mode prints before running: every dropped control.
    pub fn warnings(&self) -> Vec<String> {
        self.dropped
            .iter()
            .map(|g| format!("not enforced: {g}"))
            .collect()
    }

    /// The message strict mode gives when it refuses.
    pub fn refusal(&self) -> String {
        let mut s = format!(
            "the sandbox cannot be applied as requested on this kernel ({}):",
            self.abi.describe()
        );
        for g in &self.dropped {
            s.push_str("\n  - ");
            s.push_str(&g.to_string());
        }
        s.push_str(
            "\nrun on a newer kernel, change the policy, or pass --best-effort to run with what this kernel enforces",
        );
        s
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
        if !self.skipped.is_empty() {
            writeln!(f, "skipped (optional, missing):")?;
            for line in &self.skipped {
                writeln!(f, "  {line}")?;
            }
        }
        if !self.limits.is_empty() {
            writeln!(
                f,
                "not restricted by this kernel (the policy does not require it):"
            )?;
            for g in &self.limits {
                writeln!(f, "  {g}")?;
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
        } else if self.dropped.is_empty() {
            "runs fully enforced"
        } else {
            "runs in best-effort mode with the controls above dropped"
        };
        write!(f, "verdict: {verdict}")
    }
}
