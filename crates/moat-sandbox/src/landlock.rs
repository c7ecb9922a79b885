//! Applying a [`LandlockPlan`] to the calling thread with the `landlock` crate.
//!
//! The plan was already limited to the effective ABI, so every right handed to the crate
//! is one the kernel supports: the crate runs in `HardRequirement` mode and any mismatch
//! is an error, never a silent downgrade.

use crate::plan::LandlockPlan;
use landlock::{
    AccessFs, AccessNet, BitFlags, CompatLevel, Compatible, NetPort, PathBeneath, RestrictSelfAttr,
    Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetStatus,
};

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
    for (port, access) in &plan.port_rules {
        created = created.add_rule(NetPort::new(
            *port,
            flags::<AccessNet>(access.bits(), "network")?,
        ))?;
    }
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
