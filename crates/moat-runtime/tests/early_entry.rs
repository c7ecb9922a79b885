//! The pass-through before libc (`moat_runtime::early`): it must do exactly what the full
//! path does, and it must not call into the C library, which has not started when it runs.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn moat_runtime() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_moat-runtime"))
}

/// A fake `runc` that reports what it was started with: argv (argv[0] included: a script
/// cannot see it, the kernel puts the script's path there), the environment, and its
/// blocked and ignored signals. Compiled with the C compiler scripts/test.sh installs.
fn fake_runc(dir: &Path) {
    let src = dir.join("runc.c");
    std::fs::write(
        &src,
        r#"#include <stdio.h>
#include <string.h>
extern char **environ;
int main(int argc, char **argv) {
    for (int i = 0; i < argc; i++) printf("arg=%s\n", argv[i]);
    for (char **e = environ; *e; e++) printf("env=%s\n", *e);
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "SigBlk", 6) || !strncmp(line, "SigIgn", 6)) fputs(line, stdout);
    return 0;
}
"#,
    )
    .unwrap();
    let st = Command::new("cc")
        .arg("-o")
        .arg(dir.join("runc"))
        .arg(&src)
        .status()
        .expect("cc (installed by scripts/test.sh)");
    assert!(st.success());
}

/// Runs moat-runtime with `args` and a clean environment whose PATH finds the fake runc
/// and whose configuration file is empty unless `extra_env` names one (the machine's own
/// /etc/moat/runtime.toml must not decide a test); SIGPIPE ignored going in, which both
/// paths must undo.
fn run(dir: &Path, args: &[&str], extra_env: &[(&str, &str)]) -> String {
    let empty = dir.join("empty.toml");
    if !empty.exists() {
        std::fs::write(&empty, "").unwrap();
    }
    let mut script = String::from("trap '' PIPE; exec \"$0\" \"$@\"");
    script.push('\n');
    let mut c = Command::new("/bin/sh");
    c.arg("-c")
        .arg(&script)
        .arg(moat_runtime())
        .args(args)
        .env_clear()
        .env(
            "PATH",
            format!("/nonexistent:{}:/usr/bin:/bin", dir.display()),
        )
        .env("SOME", "value")
        .env("MOAT_RUNTIME_CONFIG", &empty);
    for (k, v) in extra_env {
        c.env(k, v);
    }
    let o = c.output().unwrap();
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

#[test]
fn the_early_pass_through_does_what_the_full_path_does() {
    let d = tempfile::tempdir().unwrap();
    fake_runc(d.path());
    for args in [
        &["state", "abc"][..],
        &[
            "--root",
            "/run/x",
            "--log",
            "/l",
            "--log-format",
            "json",
            "delete",
            "--force",
            "abc",
        ],
        &["-root=/r", "--systemd-cgroup", "--", "kill", "abc", "KILL"],
        &["--debug", "ps", "--format", "json", "abc"],
        &["list", "-q"],
    ] {
        let fast = run(d.path(), args, &[]);
        // `--moat-runtime runc` names the same runtime and forces the full path.
        let mut full_args = vec!["--moat-runtime", "runc"];
        full_args.extend_from_slice(args);
        let full = run(d.path(), &full_args, &[]);
        assert_eq!(fast, full, "{args:?}");
        assert!(fast.starts_with("arg=runc\n"), "{fast}");
        let ignored = fast
            .lines()
            .find_map(|l| l.strip_prefix("SigIgn:\t"))
            .and_then(|h| u64::from_str_radix(h.trim(), 16).ok())
            .expect("SigIgn");
        assert_eq!(
            ignored & (1 << (libc::SIGPIPE - 1)),
            0,
            "SIGPIPE reset: {fast}"
        );
        for a in args {
            assert!(fast.contains(&format!("arg={a}\n")), "{a}: {fast}");
        }
    }
    // The runtime named by the environment or by a configuration file the early path
    // reads (what the node installer writes), by name or by path: the same as the full
    // path with `--moat-runtime` naming it.
    let fake = d.path().join("runc");
    let fake = fake.to_str().unwrap();
    let config = d.path().join("runtime.toml");
    let config_env = [("MOAT_RUNTIME_CONFIG", config.to_str().unwrap())];
    for (file, env, runtime) in [
        (None, &[("MOAT_RUNTIME", "runc")][..], "runc"),
        (None, &[("MOAT_RUNTIME", fake)][..], fake),
        (
            Some(format!(
                "runtime = \"{fake}\"\nlauncher = \"/opt/moat/bin/moat\"\nwithout_policy = \"refuse\"\n"
            )),
            &config_env[..],
            fake,
        ),
        (
            Some("# by name\nruntime = 'runc'\n".to_string()),
            &config_env[..],
            "runc",
        ),
        (
            Some("ports_from_spec = true\n".to_string()),
            &config_env[..],
            "runc",
        ),
        // Beyond what the early reader reads (a quoted key, CRLF): the full path, same answer.
        (
            Some(format!("\"runtime\" = \"{fake}\"\r\n")),
            &config_env[..],
            fake,
        ),
    ] {
        if let Some(text) = &file {
            std::fs::write(&config, text).unwrap();
        }
        let args = ["--root", "/r", "state", "abc"];
        let fast = run(d.path(), &args, env);
        let mut full_args = vec!["--moat-runtime", runtime];
        full_args.extend_from_slice(&args);
        let full = run(d.path(), &full_args, env);
        assert_eq!(fast, full, "{file:?} {env:?}");
        assert!(fast.starts_with(&format!("arg={runtime}\n")), "{fast}");
    }
    // A file the full parser refuses fails the same way on both paths.
    std::fs::write(&config, "runtime = 3\n").unwrap();
    let o = Command::new(moat_runtime())
        .args(["state", "abc"])
        .env("MOAT_RUNTIME_CONFIG", &config)
        .env_remove("MOAT_RUNTIME")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("`runtime` must be a string"));
}

/// The test above, again, on a machine whose /etc/moat/runtime.toml names another runtime
/// and launcher (as docs/containers.md tells users to write): in a mount namespace of its
/// own, /etc overlaid so the file exists there only.
#[test]
fn a_machine_configuration_decides_no_test() {
    // SAFETY: no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIP: a mount namespace with an overlaid /etc needs root");
        return;
    }
    let d = tempfile::tempdir().unwrap();
    for sub in ["upper/moat", "work"] {
        std::fs::create_dir_all(d.path().join(sub)).unwrap();
    }
    std::fs::write(
        d.path().join("upper/moat/runtime.toml"),
        "runtime = \"/nonexistent/runc\"\nlauncher = \"/nonexistent/moat\"\nports_from_spec = true\n",
    )
    .unwrap();
    let script = format!(
        "mount --make-rprivate / && \
         mount -t overlay overlay -o lowerdir=/etc,upperdir={d}/upper,workdir={d}/work /etc && \
         test -f /etc/moat/runtime.toml && exec \"$0\" --exact \
         the_early_pass_through_does_what_the_full_path_does --test-threads 1",
        d = d.path().display()
    );
    let o = Command::new("unshare")
        .args(["--mount", "sh", "-c", &script])
        .arg(std::env::current_exe().unwrap())
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success() && out.contains("1 passed"),
        "{out}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Every function reachable from `pass_through` by direct calls, in the test build of the
/// binary (unoptimised: where a move can become a `memcpy` call), by `objdump`.
#[test]
fn the_early_pass_through_calls_nothing_of_libc() {
    let out = Command::new("objdump")
        .args(["-d", "--no-show-raw-insn"])
        .arg(moat_runtime())
        .output()
        .expect("objdump (binutils, installed with gcc by scripts/test.sh)");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    // Function name -> its call targets.
    let mut calls: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    let mut current = String::new();
    for line in text.lines() {
        if let Some(name) = line
            .strip_suffix(">:")
            .and_then(|l| l.split_once(" <"))
            .map(|(_, n)| n.to_string())
        {
            current = name;
            calls.entry(current.clone()).or_default();
        } else if let Some((_, rest)) = line.split_once("\tcall") {
            let target = match rest.split_once('<') {
                Some((_, t)) => t.trim_end_matches('>').to_string(),
                None => format!("indirect:{}", rest.trim()),
            };
            calls.entry(current.clone()).or_default().push(target);
        }
    }
    // Mangled names: each monomorphised function is its own symbol.
    let root = calls
        .keys()
        .find(|k| k.contains("5early12pass_through"))
        .expect("moat_runtime::early::pass_through in the binary")
        .clone();
    let mut seen = BTreeSet::new();
    let mut todo = vec![root];
    let mut bad = Vec::new();
    while let Some(f) = todo.pop() {
        if !seen.insert(f.clone()) {
            continue;
        }
        for t in calls.get(&f).into_iter().flatten() {
            // A panic (and the unwinding it starts) is a bug that crashes either way; its
            // machinery is not followed.
            if t.contains("9panicking") || t == "_Unwind_Resume" {
                continue;
            }
            let rust = t.starts_with("_ZN") && !t.contains("@plt");
            if !rust {
                bad.push(format!("{f} calls {t}"));
            } else {
                todo.push(t.clone());
            }
        }
    }
    assert!(bad.is_empty(), "{bad:#?}");
    assert!(seen.len() > 3, "{seen:?}");
}
