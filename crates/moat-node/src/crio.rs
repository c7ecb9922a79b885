//! CRI-O: a drop-in in `/etc/crio/crio.conf.d`. CRI-O applies each drop-in over its main
//! file key by key, so a drop-in that adds `[crio.runtime.runtimes.moat]` keeps every other
//! runtime and setting. CRI-O passes every pod and container annotation to the runtime:
//! no annotation list is needed.

use crate::host::Host;
use crate::NodeError;
use std::path::Path;
use std::process::Stdio;

/// The drop-in: the handler `moat` running moat-runtime as an OCI runtime.
pub fn dropin(runtime_path: &Path) -> String {
    let path = toml::Value::String(runtime_path.display().to_string());
    format!(
        "{} (moat's node installer): the runtime handler `moat`.\n\
         [crio.runtime.runtimes.moat]\n\
         runtime_path = {path}\n\
         runtime_type = \"oci\"\n\
         runtime_root = \"/run/moat-runtime\"\n",
        crate::runtime_file::HEADER
    )
}

/// Whether CRI-O is on the node.
pub fn present(host: &Host) -> bool {
    host.find_program("crio").is_some() || host.path(Path::new("/etc/crio")).is_dir()
}

/// Asks CRI-O to read its configuration (`crio config`), drop-ins included, when its
/// binary is on the node.
pub fn check(host: &Host) -> Result<(), NodeError> {
    if host.find_program("crio").is_none() {
        return Ok(());
    }
    let out = host
        .command("crio")
        .arg("config")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| NodeError::Command {
            what: "crio config".into(),
            message: e.to_string(),
        })?;
    if !out.status.success() {
        return Err(NodeError::Command {
            what: "crio config".into(),
            message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(())
}
