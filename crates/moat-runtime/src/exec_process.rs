//! Confining `runc exec`: a process started in a confined container gets the same launcher
//! and policy as its entrypoint, whether it is described by a `--process` JSON file (what
//! podman, containerd and CRI-O pass) or by trailing arguments. Whether the container is
//! confined, and with what, comes from moat-runtime's record in the container's bundle
//! ([`crate::prepared`]), never from the container's annotations or `process.args`, which
//! the pod wrote.

use crate::cli::{CommandOptions, ProcessArg};
use crate::config::{prefix_args, Config};
use crate::error::RuntimeError;
use crate::inject::{
    launcher_prefix, BUNDLE_DIR, LAUNCHER_DEST, ORIGINAL_CONFIG, POLICY_FILE_FLAG, POLICY_TEXT_FLAG,
};
use crate::prepared::{Launch, Prepared};
use std::ffi::OsString;
use std::os::fd::RawFd;
use std::path::Path;

/// The arguments to put in front of a new process.
fn prefix(launch: &Launch, extra_fds: u32) -> Vec<String> {
    launcher_prefix(launch, extra_fds, false)
}

/// The launcher's policy in a config.json prepared by a moat-runtime from before the
/// record existed (`process.args` starting `/.moat/moat run --policy-text POLICY`), or
/// `None`. Read only when the bundle holds the original config.json that moat-runtime
/// moved aside, which proves moat-runtime wrote those first arguments.
pub fn legacy_launch(config: &serde_json::Value) -> Option<Launch> {
    let args = config.get("process")?.get("args")?.as_array()?;
    let arg = |i: usize| args.get(i).and_then(|a| a.as_str());
    if arg(0)? != LAUNCHER_DEST || arg(1)? != "run" {
        return None;
    }
    let flag = arg(2)?;
    if flag != POLICY_TEXT_FLAG && flag != POLICY_FILE_FLAG {
        return None;
    }
    Some(Launch {
        flag: flag.into(),
        value: arg(3)?.into(),
        max_abi: None,
    })
}

/// The launcher settings of the container described by `runtime state` output, or `None`
/// when moat-runtime did not confine it (its bundle holds no record). The bundle is the one
/// the runtime's own state names. A confined container whose policy cannot be read is an
/// error: the new process must not start unconfined.
pub fn container_policy(state: &serde_json::Value) -> Result<Option<Launch>, RuntimeError> {
    let Some(bundle) = state.get("bundle").and_then(|b| b.as_str()).map(Path::new) else {
        return Err(RuntimeError::Exec(
            "the runtime's state names no bundle: moat-runtime cannot tell whether the container is confined".into(),
        ));
    };
    if let Some(record) = Prepared::read(bundle)? {
        return Ok(Some(record.launch));
    }
    if !bundle.join(BUNDLE_DIR).join(ORIGINAL_CONFIG).exists() {
        return Ok(None);
    }
    let config = Config::read(bundle)?;
    legacy_launch(&config.value).map(Some).ok_or_else(|| {
        RuntimeError::Exec(format!(
            "the container is confined, but `{}` does not start it under the launcher with a policy",
            config.path.display()
        ))
    })
}

/// A process JSON with the launcher put in front of its `args`.
pub fn rewrite_process_json(
    text: &[u8],
    policy: &Launch,
    extra_fds: u32,
) -> Result<Vec<u8>, RuntimeError> {
    let mut v: serde_json::Value = serde_json::from_slice(text)
        .map_err(|e| RuntimeError::Exec(format!("the --process file is not valid JSON: {e}")))?;
    let obj = v
        .as_object_mut()
        .ok_or_else(|| RuntimeError::Exec("the --process file is not a JSON object".into()))?;
    prefix_args(obj, &prefix(policy, extra_fds)).ok_or_else(|| {
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
    policy: &Launch,
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
            let prefix = prefix(policy, extra_fds).into_iter().map(OsString::from);
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

    /// A policy with a quote, a newline and a non-ASCII path, as moat-runtime writes it.
    const POLICY: &str = "{\"filesystem\":{\"read\":[\"/a \\\"b\\\"\\n\u{e9}\"]}}";

    fn policy() -> Launch {
        Launch {
            flag: POLICY_TEXT_FLAG.into(),
            value: POLICY.into(),
            max_abi: None,
        }
    }

    #[test]
    fn process_json_gets_the_launcher() {
        let out = rewrite_process_json(br#"{"args":["sh"],"env":["A=1"],"x":true}"#, &policy(), 1)
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["args"][0], "/.moat/moat");
        assert_eq!(v["args"][2], "--from-runtime");
        assert_eq!(v["args"][3], "--policy-text");
        assert_eq!(v["args"][4], POLICY);
        assert_eq!(v["args"][6], "3");
        assert_eq!(v["args"][8], "sh");
        assert_eq!(v["x"], true);
        assert!(rewrite_process_json(b"{", &policy(), 0).is_err());
        assert!(rewrite_process_json(br#"{"args":[]}"#, &policy(), 0).is_err());
    }

    #[test]
    fn trailing_args_get_the_launcher_after_the_id() {
        let rest = os(&["-t", "--cwd", "/", "cid", "sh", "-c", "x"]);
        let o = parse_options("exec", &rest).unwrap();
        let out = rewrite_args(&rest, &o, None, &policy(), 0).unwrap();
        assert_eq!(
            out,
            os(&[
                "-t",
                "--cwd",
                "/",
                "cid",
                "/.moat/moat",
                "run",
                "--from-runtime",
                "--policy-text",
                POLICY,
                "--",
                "sh",
                "-c",
                "x"
            ])
        );
        let rest = os(&["cid"]);
        let o = parse_options("exec", &rest).unwrap();
        assert!(rewrite_args(&rest, &o, None, &policy(), 0).is_err());
    }

    #[test]
    fn process_file_is_replaced() {
        let rest = os(&["--process=/p.json", "cid"]);
        let o = parse_options("exec", &rest).unwrap();
        let out =
            rewrite_args(&rest, &o, Some(Path::new("/proc/self/fd/9")), &policy(), 0).unwrap();
        assert_eq!(out, os(&["--process=/proc/self/fd/9", "cid"]));
    }

    #[test]
    fn the_policy_comes_from_the_record_never_from_the_pod() {
        let d = tempfile::tempdir().unwrap();
        let write = |args: serde_json::Value| {
            let c = serde_json::json!({"process": {"args": args},
                "annotations": {crate::policy_source::CONFINED_ANNOTATION: "true"}});
            std::fs::write(d.path().join("config.json"), c.to_string()).unwrap();
        };
        let state = serde_json::json!({
            "bundle": d.path(),
            "annotations": {crate::policy_source::CONFINED_ANNOTATION: "true"},
        });
        // What a pod writes: the marker annotation and an allow-all launcher line of its
        // own. No record: not confined by moat (and the policy is not read from there).
        write(serde_json::json!([
            "/.moat/moat",
            "run",
            "--policy-text",
            "{\"filesystem\":{\"unrestricted\":true}}",
            "--",
            "sh"
        ]));
        assert_eq!(container_policy(&state).unwrap(), None);
        // moat-runtime's record decides, whatever config.json says.
        std::fs::create_dir(d.path().join(BUNDLE_DIR)).unwrap();
        let record = Prepared {
            launch: Launch {
                max_abi: Some(4),
                ..policy()
            },
            config: crate::prepared::FileId::of(&d.path().join("config.json")).unwrap(),
        };
        std::fs::write(crate::prepared::path(d.path()), record.to_json()).unwrap();
        assert_eq!(
            container_policy(&state).unwrap(),
            Some(record.launch.clone())
        );
        // A damaged record: fail closed.
        std::fs::write(crate::prepared::path(d.path()), "{").unwrap();
        assert!(container_policy(&state).is_err());
        std::fs::remove_file(crate::prepared::path(d.path())).unwrap();
        // A bundle prepared by an older moat-runtime (the original kept, no record): the
        // launcher line it wrote.
        std::fs::write(d.path().join(BUNDLE_DIR).join(ORIGINAL_CONFIG), "{}").unwrap();
        write(serde_json::json!([
            "/.moat/moat",
            "run",
            "--policy-text",
            POLICY,
            "--",
            "sh"
        ]));
        assert_eq!(container_policy(&state).unwrap(), Some(policy()));
        write(serde_json::json!(["sh"]));
        assert!(container_policy(&state).is_err());
        // No bundle named: fail closed.
        assert!(container_policy(&serde_json::json!({})).is_err());
    }
}
