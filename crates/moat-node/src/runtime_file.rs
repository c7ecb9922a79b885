//! What moat-node puts on the node for moat-runtime itself: the two binaries and
//! `/etc/moat/runtime.toml`.

/// The first line of the configuration file moat-node writes; `uninstall` removes only a
/// file that starts with it.
pub const HEADER: &str = "# Written by moat-node";

/// The binaries moat-node installs, from the image's directory into the node's.
pub const BINARIES: &[&str] = &["moat", "moat-runtime"];

/// What moat-runtime does on this node with a Kubernetes container that names no policy
/// (`without_policy` in its configuration).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum WithoutPolicy {
    /// Confine it to binding the TCP ports its Pod declares.
    #[default]
    Ports,
    /// Refuse to start it.
    Refuse,
}

impl WithoutPolicy {
    /// The configuration file's value.
    pub fn name(self) -> &'static str {
        match self {
            WithoutPolicy::Ports => "ports",
            WithoutPolicy::Refuse => "refuse",
        }
    }
}

/// moat-runtime's configuration file: the node's runc, the launcher, and what a pod
/// container without a policy gets. The form (plain `key = "value"` lines, comments) is the
/// one moat-runtime's early pass-through reads without a TOML parser, so that installed
/// nodes keep it (docs/containers.md).
pub fn runtime_toml(runc: &str, launcher: &str, without_policy: WithoutPolicy) -> String {
    let s = |v: &str| toml::Value::String(v.to_string()).to_string();
    format!(
        "{HEADER} (moat's node installer): moat-runtime's configuration on this node.\n\
         # The real runtime moat-runtime hands containers to, and the launcher it mounts into\n\
         # confined ones. Keep plain `key = \"value\"` lines: moat-runtime's early pass-through\n\
         # reads this file without a TOML parser (docs/containers.md).\n\
         runtime = {}\nlauncher = {}\n\
         # A pod container under the moat handler that names no policy: \"ports\" (bind only\n\
         # its declared containerPorts) or \"refuse\". Never run unconfined.\n\
         without_policy = {}\n",
        s(runc),
        s(launcher),
        s(without_policy.name())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_says_what_a_container_without_policy_gets() {
        for (w, line) in [
            (WithoutPolicy::Ports, "without_policy = \"ports\"\n"),
            (WithoutPolicy::Refuse, "without_policy = \"refuse\"\n"),
        ] {
            let t = runtime_toml("/usr/sbin/runc", "/opt/moat/bin/moat", w);
            assert!(t.starts_with(HEADER));
            assert!(t.ends_with(line), "{t}");
            // Plain lines only: moat-runtime's early reader is sure of them.
            assert!(t.lines().all(|l| l.is_ascii() && !l.contains('\r')));
            let table: toml::Table = toml::from_str(&t).unwrap();
            assert_eq!(table["without_policy"].as_str(), Some(w.name()));
        }
    }
}
