//! What moat-node puts on the node for moat-runtime itself: the two binaries and
//! `/etc/moat/runtime.toml`.

/// The first line of the configuration file moat-node writes; `uninstall` removes only a
/// file that starts with it.
pub const HEADER: &str = "# Written by moat-node";

/// The binaries moat-node installs, from the image's directory into the node's.
pub const BINARIES: &[&str] = &["moat", "moat-runtime"];

/// moat-runtime's configuration file: the node's runc and the launcher. The form (plain
/// `key = "value"` lines, comments) is the one moat-runtime's early pass-through reads
/// without a TOML parser, so that installed nodes keep it (docs/containers.md).
pub fn runtime_toml(runc: &str, launcher: &str, ports_from_spec: bool) -> String {
    let s = |v: &str| toml::Value::String(v.to_string()).to_string();
    let mut t = format!(
        "{HEADER} (moat's node installer): moat-runtime's configuration on this node.\n\
         # The real runtime moat-runtime hands containers to, and the launcher it mounts into\n\
         # confined ones. Keep plain `key = \"value\"` lines: moat-runtime's early pass-through\n\
         # reads this file without a TOML parser (docs/containers.md).\n\
         runtime = {}\nlauncher = {}\n",
        s(runc),
        s(launcher)
    );
    if ports_from_spec {
        t.push_str("ports_from_spec = true\n");
    }
    t
}
