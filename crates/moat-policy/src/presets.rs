//! Policies shipped inside the binary.

use crate::dialect::{moat, Document, Format};
use crate::error::PolicyError;
use crate::model::Policy;

/// A built-in preset: its name and moat TOML text.
#[derive(Copy, Clone, Debug)]
pub struct Preset {
    /// The name used with `--preset` and `presets = [...]`.
    pub name: &'static str,
    /// The policy, in moat's TOML format.
    pub text: &'static str,
}

/// Every preset, in the order `moat presets` lists them.
pub const PRESETS: &[Preset] = &[
    Preset {
        name: "default",
        text: include_str!("../presets/default.toml"),
    },
    Preset {
        name: "minimal",
        text: include_str!("../presets/minimal.toml"),
    },
    Preset {
        name: "shell",
        text: include_str!("../presets/shell.toml"),
    },
    Preset {
        name: "network-client",
        text: include_str!("../presets/network-client.toml"),
    },
    Preset {
        name: "web-server",
        text: include_str!("../presets/web-server.toml"),
    },
];

impl Preset {
    /// The first line of the preset's `description`.
    pub fn description(&self) -> &'static str {
        self.text
            .lines()
            .find_map(|l| l.strip_prefix("description = \""))
            .and_then(|l| l.strip_suffix('"'))
            .unwrap_or("")
    }
}

/// The TOML text of a preset.
pub fn text(name: &str) -> Result<&'static str, PolicyError> {
    PRESETS
        .iter()
        .find(|p| p.name == name)
        .map(|p| p.text)
        .ok_or_else(|| PolicyError::UnknownPreset {
            name: name.to_string(),
            available: PRESETS
                .iter()
                .map(|p| p.name)
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// A preset as a policy.
pub fn load(name: &str) -> Result<Policy, PolicyError> {
    let text = text(name)?;
    let label = format!("preset {name}");
    moat::parse(&Document::with_format(&label, text, Format::Toml))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_parses_and_describes_itself() {
        for p in PRESETS {
            let policy = load(p.name).unwrap_or_else(|e| panic!("{}: {e}", p.name));
            assert!(!p.description().is_empty(), "{}", p.name);
            assert!(!policy.fs.rules.is_empty(), "{}", p.name);
        }
        assert!(load("web-server").unwrap().net.rules.len() >= 4);
        assert!(matches!(
            load("bogus"),
            Err(PolicyError::UnknownPreset { .. })
        ));
    }
}
