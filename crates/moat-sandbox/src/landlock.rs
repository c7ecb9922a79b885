//! Applying a [`LandlockPlan`] to the calling thread with the `landlock` crate.
//!
//! The plan was already limited to the effective ABI, so every right handed to the crate
//! is one the kernel supports: the crate runs in `HardRequirement` mode and any mismatch
//! is an error, never a silent downgrade.

use crate::plan::LandlockPlan;
use landlock::{
    AccessFs, AccessNet, BitFlags, CompatLevel, Compatible, NetPort, PathBeneath, RestrictSelfAttr,
    Ruleset, RulesetAttr, RulesetCreated, RulesetCreatedAttr, RulesetStatus,
};
use moat_policy::{AuditFlags, FsAccess};
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

/// Why the ruleset could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum LandlockError {
    /// The crate or the kernel refused part of the ruleset.
    #[error("Landlock: {0}")]
    Ruleset(#[from] landlock::RulesetError),
    /// A rule on one path was refused.
    #[error("Landlock: rule on `{path}`: {source}")]
    Rule {
        /// The path.
        path: String,
        /// The error.
        source: landlock::RulesetError,
    },
    /// A right bit the crate does not know (moat and the crate disagree).
    #[error("Landlock: the landlock crate does not know {kind} bits {bits:#x}")]
    UnknownBits {
        /// Which kind of right.
        kind: &'static str,
        /// The bits.
        bits: u64,
    },
    /// The kernel did not enforce the ruleset fully.
    #[error("Landlock: the kernel enforced the ruleset only partly ({0:?})")]
    NotFullyEnforced(String),
}

/// Converts a moat mask (UAPI bit values) into the crate's flags.
fn flags<T>(bits: u64, kind: &'static str) -> Result<BitFlags<T>, LandlockError>
where
    T: landlock::Access + enumflags2::BitFlag<Numeric = u64>,
{
    BitFlags::<T>::from_bits(bits).map_err(|_| LandlockError::UnknownBits { kind, bits })
}

/// Restricts the calling thread with the planned ruleset (sets no_new_privs first).
pub fn apply(plan: &LandlockPlan) -> Result<(), LandlockError> {
    let mut created = build(plan, &[])?;
    if !plan.audit.is_default() {
        created = created
            .log_same_exec(plan.audit.log_same_exec)?
            .log_new_exec(plan.audit.log_new_exec)?
            .log_subdomains(plan.audit.log_subdomains)?;
    }
    let status = created.restrict_self()?;
    match status.ruleset {
        RulesetStatus::FullyEnforced => Ok(()),
        other => Err(LandlockError::NotFullyEnforced(format!("{other:?}"))),
    }
}

/// A path rule added to a planned ruleset by the caller: a directory or file that only
/// exists for one sandbox (the watchdog's per-call private directory).
#[derive(Clone, Copy, Debug)]
pub struct ExtraRule<'a> {
    /// A descriptor on the path (any open mode; `O_PATH` is enough).
    pub fd: BorrowedFd<'a>,
    /// The rights granted beneath it; they must be handled by the plan.
    pub access: FsAccess,
}

/// Creates the planned ruleset, plus `extra` rules, without enforcing it, and returns its
/// descriptor, for a child process to pass to `landlock_restrict_self` itself
/// ([`crate::spawn`]). The descriptor is close-on-exec. The audit flags are not part of a
/// ruleset: pass [`restrict_flags`] of the plan's audit settings with it.
pub fn create(plan: &LandlockPlan, extra: &[ExtraRule<'_>]) -> Result<OwnedFd, LandlockError> {
    let created = build(plan, extra)?;
    Option::<OwnedFd>::from(created)
        .ok_or_else(|| LandlockError::NotFullyEnforced("the kernel created no ruleset".to_string()))
}

/// The `landlock_restrict_self` flags for `audit` (ABI 7): only the flags that move a
/// setting off the kernel's default.
pub fn restrict_flags(audit: AuditFlags) -> u32 {
    let mut flags = 0;
    if !audit.log_same_exec {
        flags |= 1; // LANDLOCK_RESTRICT_SELF_LOG_SAME_EXEC_OFF
    }
    if audit.log_new_exec {
        flags |= 2; // LANDLOCK_RESTRICT_SELF_LOG_NEW_EXEC_ON
    }
    if !audit.log_subdomains {
        flags |= 4; // LANDLOCK_RESTRICT_SELF_LOG_SUBDOMAINS_OFF
    }
    flags
}

/// The planned ruleset with its rules, created but not enforced.
fn build(plan: &LandlockPlan, extra: &[ExtraRule<'_>]) -> Result<RulesetCreated, LandlockError> {
    let mut ruleset = Ruleset::default().set_compatibility(CompatLevel::HardRequirement);
    if !plan.fs_handled.is_empty() {
        ruleset =
            ruleset.handle_access(flags::<AccessFs>(plan.fs_handled.bits(), "filesystem")?)?;
    }
    if !plan.net_handled.is_empty() {
        ruleset = ruleset.handle_access(flags::<AccessNet>(plan.net_handled.bits(), "network")?)?;
    }
    if !plan.scopes.is_empty() {
        ruleset = ruleset.scope(flags::<landlock::Scope>(plan.scopes.bits(), "scope")?)?;
    }
    let mut created = ruleset.create()?;
    for rule in &plan.path_rules {
        let access = flags::<AccessFs>(rule.access.bits(), "filesystem")?;
        created = created
            .add_rule(PathBeneath::new(&rule.fd, access))
            .map_err(|source| LandlockError::Rule {
                path: rule.path.display().to_string(),
                source,
            })?;
    }
    for rule in extra {
        let access = flags::<AccessFs>(rule.access.bits(), "filesystem")?;
        created = created
            .add_rule(PathBeneath::new(rule.fd, access))
            .map_err(|source| LandlockError::Rule {
                path: format!("(descriptor {})", rule.fd.as_raw_fd()),
                source,
            })?;
    }
    for (port, access) in &plan.port_rules {
        created = created.add_rule(NetPort::new(
            *port,
            flags::<AccessNet>(access.bits(), "network")?,
        ))?;
    }
    Ok(created)
}
