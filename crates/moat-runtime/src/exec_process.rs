//! Confining `runc exec`: a process started in a confined container gets the same launcher
//! and policy as its entrypoint, whether it is described by a `--process` JSON file (what
//! podman, containerd and CRI-O pass) or by trailing arguments.

use crate::cli::{CommandOptions, ProcessArg};
use crate::config::prefix_args;
use crate::error::RuntimeError;
use crate::inject::{launcher_prefix, BUNDLE_DIR, POLICY_FILE};
use crate::policy_source::CONFINED_ANNOTATION;
use std::ffi::OsString;
use std::os::fd::RawFd;
use std::path::Path;

/// Whether the container described by `runtime state` output was confined by moat-runtime:
/// its `moat.dev/confined` annotation, or the policy it left in the bundle.
pub fn is_confined(state: &serde_json::Value) -> bool {
    let annotated = state
        .get("annotations")
        .and_then(|a| a.get(CONFINED_ANNOTATION))
        .and_then(|v| v.as_str())
        == Some("true");
    annotated
        || state
            .get("bundle")
            .and_then(|b| b.as_str())
            .is_some_and(|b| Path::new(b).join(BUNDLE_DIR).join(POLICY_FILE).exists())
}

/// A process JSON with the launcher put in front of its `args`.
pub fn rewrite_process_json(text: &[u8], extra_fds: u32) -> Result<Vec<u8>, RuntimeError> {
    let mut v: serde_json::Value = serde_json::from_slice(text)
        .map_err(|e| RuntimeError::Exec(format!("the --process file is not valid JSON: {e}")))?;
    let obj = v
        .as_object_mut()
        .ok_or_else(|| RuntimeError::Exec("the --process file is not a JSON object".into()))?;
    prefix_args(obj, &launcher_prefix(extra_fds, false)).ok_or_else(|| {
        RuntimeError::Exec("the --process file's `args` is missing, empty or not strings".into())
    })?;
    Ok(serde_json::to_vec(&v).unwrap_or_default())
}

/// Rewrites an `exec` subcommand's arguments (`rest`) so the new process starts under the
/// launcher. A `--process` file is replaced by `process_path` (the rewritten copy);
/// otherwise the launcher goes between the container id and the command.
pub fn rewrite_args(
    rest: &[OsString],
    opts: &CommandOptions,
    process_path: Option<&Path>,
    extra_fds: u32,
) -> Result<Vec<OsString>, RuntimeError> {
    let mut out = rest.to_vec();
    match (&opts.process, process_path) {
        (Some((_, at)), Some(new)) => {
            match *at {
                ProcessArg::Inline(i) => {
                    let mut s = OsString::from("--process=");
                    s.push(new);
                    out[i] = s;
                }
                ProcessArg::Separate(i) => out[i] = new.into(),
            }
            Ok(out)
        }
        (Some(_), None) => Err(RuntimeError::Exec("no rewritten --process file".into())),
        (None, _) => {
            let id = opts
                .first_positional
                .ok_or_else(|| RuntimeError::Exec("no container id".into()))?;
            if id + 1 >= out.len() {
                return Err(RuntimeError::Exec(
                    "no command given after the container id".into(),
                ));
            }
            let prefix = launcher_prefix(extra_fds, false)
                .into_iter()
                .map(OsString::from);
            out.splice(id + 1..id + 1, prefix);
            Ok(out)
        }
    }
}

/// Puts `bytes` in an anonymous memory file kept open (without close-on-exec) at a
/// descriptor of at least `min_fd`, and returns the descriptor. The real runtime reads it
/// as `/proc/self/fd/N`; nothing is left on disk.
pub fn memfd(bytes: &[u8], min_fd: RawFd) -> std::io::Result<RawFd> {
    use std::io::Write;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    // SAFETY: the name is a valid NUL-terminated string; flags are plain integers.
    let fd = unsafe { libc::memfd_create(c"moat-exec-process".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd was just created and is owned by nothing else.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut file = std::fs::File::from(owned);
    file.write_all(bytes)?;
    // SAFETY: F_DUPFD takes an integer; the new descriptor has close-on-exec clear.
    let high = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_DUPFD, min_fd) };
    if high < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(high)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::parse_options;

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn process_json_gets_the_launcher() {
        let out = rewrite_process_json(br#"{"args":["sh"],"env":["A=1"],"x":true}"#, 1).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["args"][0], "/.moat/moat");
        assert_eq!(v["args"][5], "3");
        assert_eq!(v["args"][7], "sh");
        assert_eq!(v["x"], true);
        assert!(rewrite_process_json(b"{", 0).is_err());
        assert!(rewrite_process_json(br#"{"args":[]}"#, 0).is_err());
    }

    #[test]
    fn trailing_args_get_the_launcher_after_the_id() {
        let rest = os(&["-t", "--cwd", "/", "cid", "sh", "-c", "x"]);
        let o = parse_options("exec", &rest).unwrap();
        let out = rewrite_args(&rest, &o, None, 0).unwrap();
        assert_eq!(
            out,
            os(&[
                "-t",
                "--cwd",
                "/",
                "cid",
                "/.moat/moat",
                "run",
                "--policy",
                "/.moat/policy.json",
                "--",
                "sh",
                "-c",
                "x"
            ])
        );
        let rest = os(&["cid"]);
        let o = parse_options("exec", &rest).unwrap();
        assert!(rewrite_args(&rest, &o, None, 0).is_err());
    }

    #[test]
    fn process_file_is_replaced() {
        let rest = os(&["--process=/p.json", "cid"]);
        let o = parse_options("exec", &rest).unwrap();
        let out = rewrite_args(&rest, &o, Some(Path::new("/proc/self/fd/9")), 0).unwrap();
        assert_eq!(out, os(&["--process=/proc/self/fd/9", "cid"]));
    }
}
