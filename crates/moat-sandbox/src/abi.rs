//! What the running kernel's Landlock can do, optionally capped by `MOAT_MAX_ABI`.

use moat_policy::Abi;

/// The environment variable that caps the ABI moat uses, as if the kernel were older.
/// Tests use it to exercise every degrade and refusal path on one kernel.
pub const MAX_ABI_ENV: &str = "MOAT_MAX_ABI";

/// Whether the kernel has Landlock at all.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Availability {
    /// Landlock answers with an ABI version.
    Available,
    /// Built in but disabled at boot (`EOPNOTSUPP`).
    Disabled,
    /// Not built into this kernel (`ENOSYS`), or refused by a seccomp filter.
    Missing,
}

/// The kernel's Landlock ABI and the ABI moat will use.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct AbiInfo {
    /// Whether Landlock is there.
    pub availability: Availability,
    /// The raw number the kernel reported (0 when unavailable); may exceed what moat knows.
    pub kernel_number: i64,
    /// The kernel's ABI as moat understands it.
    pub kernel: Abi,
    /// The cap from `MOAT_MAX_ABI`, if set.
    pub cap: Option<Abi>,
    /// What moat enforces with: the smaller of `kernel` and `cap`.
    pub effective: Abi,
}

/// A malformed `MOAT_MAX_ABI`.
#[derive(Debug, thiserror::Error)]
#[error("{MAX_ABI_ENV}=`{value}` is not an ABI number (write an integer from 0 to {})", Abi::LATEST.number())]
pub struct AbiCapError {
    /// The value found.
    pub value: String,
}

/// Asks the kernel for its Landlock ABI version.
pub fn kernel() -> (Availability, i64) {
    let err = match crate::landlock::abi_version() {
        Ok(v) => return (Availability::Available, v),
        Err(e) => e,
    };
    match err.raw_os_error() {
        Some(libc::EOPNOTSUPP) => (Availability::Disabled, 0),
        _ => (Availability::Missing, 0),
    }
}

/// Parses a cap value; empty means no cap.
pub fn parse_cap(value: &str) -> Result<Option<Abi>, AbiCapError> {
    let v = value.trim();
    if v.is_empty() {
        return Ok(None);
    }
    match v.parse::<u32>() {
        Ok(n) => Ok(Some(Abi::from_number(i64::from(n)))),
        Err(_) => Err(AbiCapError {
            value: value.to_string(),
        }),
    }
}

/// The kernel's ABI and the effective one under `MOAT_MAX_ABI` from this process's
/// environment. A malformed cap is an error: guessing could weaken a sandbox.
pub fn detect() -> Result<AbiInfo, AbiCapError> {
    let cap = match std::env::var_os(MAX_ABI_ENV) {
        Some(v) => parse_cap(&v.to_string_lossy())?,
        None => None,
    };
    Ok(detect_with_cap(cap))
}

/// The kernel's ABI and the effective one under an explicit cap.
pub fn detect_with_cap(cap: Option<Abi>) -> AbiInfo {
    let (availability, kernel_number) = kernel();
    let kernel = Abi::from_number(kernel_number);
    let effective = match cap {
        Some(c) => c.min(kernel),
        None => kernel,
    };
    AbiInfo {
        availability,
        kernel_number,
        kernel,
        cap,
        effective,
    }
}

impl AbiInfo {
    /// "ABI 7" or "ABI 7 (capped to 3 by MOAT_MAX_ABI)" or "no Landlock".
    pub fn describe(&self) -> String {
        let kernel = match self.availability {
            Availability::Available => format!("Landlock ABI {}", self.kernel),
            Availability::Disabled => "Landlock disabled at boot".to_string(),
            Availability::Missing => "no Landlock in this kernel".to_string(),
        };
        match self.cap {
            Some(c) if c < self.kernel => {
                format!("{kernel}, capped to ABI {c} by {MAX_ABI_ENV}")
            }
            _ => kernel,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps() {
        assert_eq!(parse_cap("").ok(), Some(None));
        assert_eq!(parse_cap("3").ok(), Some(Some(Abi::V3)));
        assert_eq!(parse_cap("0").ok(), Some(Some(Abi::V0)));
        assert_eq!(parse_cap("99").ok(), Some(Some(Abi::LATEST)));
        assert!(parse_cap("-1").is_err());
        assert!(parse_cap("seven").is_err());
        let info = detect_with_cap(Some(Abi::V2));
        assert!(info.effective <= Abi::V2);
    }
}
