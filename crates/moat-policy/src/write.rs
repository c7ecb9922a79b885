//! Writing the model out in each dialect (`moat policy convert`): the shared result and
//! error types and the dispatcher; each dialect's writer lives in its folder under
//! [`crate::dialect`], next to its reader and the wire structs both use.
//!
//! Every writer returns the text together with a list of warnings: one for each part of
//! the policy the target dialect cannot express, saying what changes. Nothing is dropped
//! without a warning; a caller that wants lossless conversions only refuses a result whose
//! `warnings` is not empty. A policy the target cannot express at all is a [`WriteError`].
//!
//! What reading the text back gives (`parse(write(p))`) is the same policy up to the rules'
//! origins, the order of rules, and how rules are grouped (one rule per path and right;
//! ports merged into ranges) — except for what a warning names. Rights a rule grants but
//! the policy does not handle mean nothing (nothing restricts them) and are left out of
//! landlockconfig and OCI output.

pub use crate::dialect::landlockconfig::to_landlockconfig_json;
pub use crate::dialect::moat::{to_moat_json, to_moat_toml, to_moat_yaml};
pub use crate::dialect::oci::{to_oci_1111_json, to_oci_json};

use crate::dialect::Dialect;
use crate::model::Policy;

/// A converted policy: the text, and what the target dialect could not carry over.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Written {
    /// The policy in the target dialect, ending with a newline.
    pub text: String,
    /// One sentence per part of the policy that the text does not express, saying what
    /// changes. Empty when the conversion is exact.
    pub warnings: Vec<String>,
}

impl Written {
    /// The text and the warnings.
    pub fn into_parts(self) -> (String, Vec<String>) {
        (self.text, self.warnings)
    }
}

/// A policy the target dialect cannot express at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    /// The target has no way to say what the policy means.
    #[error("{dialect} cannot express this policy: {reason}")]
    Inexpressible {
        /// The target dialect.
        dialect: &'static str,
        /// Why.
        reason: String,
    },
}

/// Writes `policy` in `dialect` (OCI #1241, OCI #1111, landlockconfig JSON or moat TOML).
pub fn write(policy: &Policy, dialect: Dialect) -> Result<Written, WriteError> {
    match dialect {
        Dialect::Moat => to_moat_toml(policy),
        Dialect::LandlockConfig => to_landlockconfig_json(policy),
        Dialect::OciPr1241 => to_oci_json(policy),
        Dialect::OciPr1111 => to_oci_1111_json(policy),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialect::{parse_document, Document};
    use crate::rights::{FsAccess, FsGroup, FsRight};

    fn read(name: &str, text: &str) -> (Policy, Dialect) {
        match parse_document(&Document::new(name, text)) {
            Ok(x) => x,
            Err(e) => panic!("{e}\n--- text:\n{text}"),
        }
    }

    #[test]
    fn moat_round_trip_of_unix_exceptions_and_capabilities() {
        let (p, _) = read(
            "p.toml",
            "[filesystem]\nread = [\"/etc\"]\nunix = [\"/run/a.sock\"]\nexcept = [\"/etc/shadow\"]\n\
             [capabilities]\nkeep = [\"all\", \"CHOWN\"]\n",
        );
        let w = to_moat_toml(&p).unwrap();
        assert!(w.warnings.is_empty(), "{:?}", w.warnings);
        let (back, _) = read("back.toml", &w.text);
        assert_eq!(back.fs.except.len(), 1);
        assert_eq!(back.caps, p.caps);
        assert!(back
            .fs
            .rules
            .iter()
            .any(|r| r.path == "/run/a.sock" && r.access == FsAccess::of(&[FsRight::ResolveUnix])));
        let json = to_moat_json(&p).unwrap();
        let (back, _) = read("back.json", &json.text);
        assert_eq!(back.caps, p.caps);
        // Dialects without these say what they lose.
        let lc = to_landlockconfig_json(&p).unwrap();
        assert!(
            lc.warnings.iter().any(|w| w.contains("no path exceptions")),
            "{:?}",
            lc.warnings
        );
        assert!(
            lc.warnings
                .iter()
                .any(|w| w.contains("no capability settings")),
            "{:?}",
            lc.warnings
        );
    }

    #[test]
    fn moat_round_trip_of_a_preset() {
        let p = crate::presets::load("shell").unwrap();
        let w = to_moat_toml(&p).unwrap();
        assert!(w.warnings.is_empty(), "{:?}", w.warnings);
        let (back, d) = read("back.toml", &w.text);
        assert_eq!(d, Dialect::Moat);
        assert_eq!(back.fs.handled, p.fs.handled);
        assert_eq!(back.fs.required, p.fs.required);
        assert_eq!(back.fs.rules.len(), p.fs.rules.len());
        assert!(back.net.seal_sockets);
        assert_eq!(back.scopes, p.scopes);
    }

    #[test]
    fn moat_writes_handled_for_partial_policies() {
        let mut p = Policy::default();
        p.fs.handled = FsAccess::of(&[FsRight::Execute, FsRight::WriteFile]);
        p.fs.required = p.fs.handled;
        p.grant_paths(["/usr"], FsAccess::of(&[FsRight::Execute]), false, "t");
        let w = to_moat_toml(&p).unwrap();
        assert!(
            w.text.contains("handled = [\"execute\", \"write_file\"]"),
            "{}",
            w.text
        );
        let (back, _) = read("b.toml", &w.text);
        assert_eq!(back.fs.handled, p.fs.handled);
        assert_eq!(back.fs.required, p.fs.handled);
        assert!(back.net.handled.is_empty());
        assert!(!back.net.seal_sockets);
        assert!(back.scopes.is_empty());
    }

    #[test]
    fn lc_and_oci_refuse_or_warn() {
        assert!(matches!(
            to_landlockconfig_json(&Policy::default()),
            Err(WriteError::Inexpressible { .. })
        ));
        let w = to_oci_json(&Policy::default()).unwrap();
        assert!(w.warnings.is_empty());
        let (back, d) = read("o.json", &w.text);
        assert_eq!(d, Dialect::OciPr1241);
        assert!(back.fs.handled.is_empty());

        let mut p = Policy::deny_all();
        p.grant_paths(["/usr"], FsGroup::ReadExec.access(), true, "t");
        let w = to_oci_json(&p).unwrap();
        let all = w.warnings.join("\n");
        assert!(all.contains("no scopes"), "{all}");
        assert!(all.contains("seccomp seal"), "{all}");
        assert!(all.contains("optional"), "{all}");
        assert!(all.contains("strict mode"), "{all}");
    }
}
