//! Switching from landrun: moat started as `landrun` (the landrun personality) keeps
//! landrun's flags, defaults, exit codes and strictness with moat's enforcement underneath;
//! `moat run` accepts landrun's spellings as aliases. Every test has a control that shows
//! the difference it checks (moat's own behaviour, or the flag left out).

mod common;
use common::*;
use std::process::{Command, Stdio};

/// A `landrun` symlink to the moat under test, in the scratch directory.
fn landrun_link(s: &Scratch) -> std::path::PathBuf {
    let link = s.path("bin/landrun");
    if !link.exists() {
        std::fs::create_dir_all(s.path("bin")).unwrap();
        std::os::unix::fs::symlink(moat_bin(), &link).unwrap();
    }
    link
}

/// `landrun ARGS` (moat under landrun's name) in the scratch directory.
fn landrun_cmd(s: &Scratch) -> Command {
    let mut c = Command::new(landrun_link(s));
    c.current_dir(s.dir.path())
        .env_remove("MOAT_MAX_ABI")
        .env_remove("LANDRUN_LOG_LEVEL")
        .env("HOME", s.path("home"))
        .stdin(Stdio::null());
    c
}

fn landrun(s: &Scratch, args: &[&str]) -> Run {
    let mut c = landrun_cmd(s);
    c.args(args);
    output(c)
}

/// Whether this kernel is below the ABI landrun 0.1.18 targets without --best-effort.
fn below_landrun_target() -> bool {
    kernel_abi() < 9
}

#[test]
fn without_path_flags_everything_is_denied() {
    let s = Scratch::new();
    s.write("data.txt", "hello");
    let probe = probe_bin().to_string_lossy().into_owned();
    // The probe runs (--add-exec --ldd) but may read nothing: no default preset.
    let r = landrun(
        &s,
        &[
            "--best-effort",
            "--add-exec",
            "--ldd",
            "--",
            &probe,
            "read",
            "/etc/hostname",
            ";",
            "read",
            "data.txt",
        ],
    );
    assert_answers(&r, &["EACCES", "EACCES"]);
    // Control: a path flag grants exactly that path.
    let r = landrun(
        &s,
        &[
            "--best-effort",
            "--add-exec",
            "--ldd",
            "--ro",
            "/etc/hostname",
            "--",
            &probe,
            "read",
            "/etc/hostname",
            ";",
            "read",
            "data.txt",
        ],
    );
    assert_answers(&r, &["ok", "EACCES"]);
    // No flag at all: not even the command runs (landrun exits 1)...
    let r = landrun(&s, &["--best-effort", "--", "cat", "data.txt"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.starts_with("[landrun:error] "), "{}", r.stderr);
    // ...and the hint about moat's default preset, which landrun does not have, is absent.
    assert!(!r.stderr.contains("--preset default"), "{}", r.stderr);
    // Control: moat run with no flag applies its default preset, and cat reads the file.
    let r = s.run(&["run", "--", "cat", "data.txt"]);
    assert_eq!((r.code, r.stdout.as_str()), (0, "hello"), "{}", r.stderr);
}

#[test]
fn the_environment_holds_only_what_env_names() {
    let s = Scratch::new();
    let mut c = landrun_cmd(&s);
    c.env("MOAT_TEST_SECRET", "s3cret")
        .env("MOAT_TEST_PASSED", "p")
        .args(["--best-effort", "--rox", "/", "--", "/usr/bin/env"]);
    let r = output(c);
    assert_eq!((r.code, r.stdout.as_str()), (0, ""), "{}", r.stderr);
    let mut c = landrun_cmd(&s);
    c.env("MOAT_TEST_SECRET", "s3cret")
        .env("MOAT_TEST_PASSED", "p")
        .args([
            "--best-effort",
            "--rox",
            "/",
            "--env",
            "MOAT_TEST_PASSED,MOAT_TEST_SET=v",
            "--env",
            "MOAT_TEST_UNSET_XYZ",
            "--",
            "/usr/bin/env",
        ]);
    let r = output(c);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let mut lines = r.lines();
    lines.sort();
    assert_eq!(lines, ["MOAT_TEST_PASSED=p", "MOAT_TEST_SET=v"]);
    // Control: moat run passes the whole environment.
    let mut c = s.moat();
    c.env("MOAT_TEST_SECRET", "s3cret")
        .args(["run", "--rox", "/", "--", "/usr/bin/env"]);
    let r = output(c);
    assert!(r.stdout.contains("MOAT_TEST_SECRET=s3cret"), "{}", r.stdout);
}

#[test]
fn landruns_own_failures_exit_1_where_moat_run_uses_125_126_127() {
    let s = Scratch::new();
    let sys = ["--rox", "/usr,/lib,/lib64,/bin"];
    let cases: &[(&[&str], i32)] = &[
        // Missing command.
        (&["--log-level", "error"], 125),
        // Command not found.
        (&["--", "/nonexistent/landrun-binary-xyz"], 127),
        // A path that does not exist.
        (&["--ro", "/nonexistent/path", "--", "true"], 125),
        // Exec denied (true is under /usr, but only /etc is granted).
        (&["--ro", "/etc", "--", "/usr/bin/true"], 126),
        // Unknown flag.
        (&["--no-such-flag", "--", "true"], 125),
    ];
    for (args, moat_code) in cases {
        let mut l = vec!["--best-effort"];
        let mut m = vec!["run"];
        if args.contains(&"--") && !args.contains(&"--ro") {
            l.extend(sys);
            m.extend(sys);
        }
        l.extend(*args);
        m.extend(*args);
        let r = landrun(&s, &l);
        assert_eq!(r.code, 1, "landrun {l:?}: {}", r.stderr);
        assert!(r.stderr.starts_with("[landrun:error] "), "{}", r.stderr);
        // Control: moat run gives the same failure its own status.
        let r = s.run(&m);
        assert_eq!(r.code, *moat_code, "moat {m:?}: {}", r.stderr);
    }
    // The command's own status passes through unchanged.
    let mut l = vec!["--best-effort"];
    l.extend(sys);
    l.extend(["--", "sh", "-c", "exit 7"]);
    assert_eq!(landrun(&s, &l).code, 7);
}

#[test]
fn without_best_effort_landrun_requires_abi_9() {
    let s = Scratch::new();
    let line = ["--rox", "/usr,/lib,/lib64,/bin", "--", "true"];
    let r = landrun(&s, &line);
    if below_landrun_target() {
        assert_eq!(r.code, 1, "{}", r.stderr);
        assert!(r.stderr.contains("ABI 9"), "{}", r.stderr);
        assert!(r.stderr.contains("--best-effort"), "{}", r.stderr);
    } else {
        assert_eq!(r.code, 0, "{}", r.stderr);
    }
    // Control: with --best-effort it runs with what this kernel enforces...
    let mut be = vec!["--best-effort"];
    be.extend(line);
    let r = landrun(&s, &be);
    assert_eq!(r.code, 0, "{}", r.stderr);
    // ...and moat run is strict only about what cannot be enforced.
    let mut m = vec!["run"];
    m.extend(line);
    assert_eq!(s.run(&m).code, 0);
    // With every domain unrestricted there is nothing to enforce: strict runs too.
    let r = landrun(
        &s,
        &[
            "--unrestricted-filesystem",
            "--unrestricted-network",
            "--unrestricted-scoped",
            "--",
            "true",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
}

#[test]
fn landrun_command_line_syntax() {
    let s = Scratch::new();
    s.write("a/x.txt", "x");
    s.write("b/y.txt", "y");
    // Single-dash flags, `=` values, comma lists, and a command without `--`.
    let r = landrun(
        &s,
        &[
            "-best-effort",
            "--rox=/usr",
            "-ro",
            "/lib,/lib64,a",
            "--ro=b",
            "cat",
            "a/x.txt",
            "b/y.txt",
        ],
    );
    assert_eq!((r.code, r.stdout.as_str()), (0, "xy"), "{}", r.stderr);
    // Control: leave b out and cat cannot read it.
    let r = landrun(
        &s,
        &[
            "-best-effort",
            "--rox=/usr",
            "-ro",
            "/lib,/lib64,a",
            "cat",
            "b/y.txt",
        ],
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    // --help and --version answer and exit 0; the version names landrun's release.
    let r = landrun(&s, &["--help"]);
    assert_eq!(r.code, 0);
    assert!(r.stdout.contains("--best-effort"), "{}", r.stdout);
    let r = landrun(&s, &["--version"]);
    assert_eq!(r.code, 0);
    assert!(
        r.stdout.starts_with("landrun version 0.1.18"),
        "{}",
        r.stdout
    );
    // The log level is accepted from the flag and from LANDRUN_LOG_LEVEL, any value.
    for level in ["debug", "info", "error", "loud"] {
        let mut c = landrun_cmd(&s);
        c.env("LANDRUN_LOG_LEVEL", level)
            .args(["--best-effort", "--rox", "/usr", "--ro", "/lib,/lib64,a"])
            .args(["--log-level", level, "--", "cat", "a/x.txt"]);
        let r = output(c);
        assert_eq!(r.code, 0, "{level}: {}", r.stderr);
    }
}

#[test]
fn relative_add_exec_and_ignored_unix_paths() {
    let s = Scratch::new();
    s.write("exec/test.sh", "#!/bin/sh\necho run\n");
    s.write("exec/test2.sh", "#!/bin/sh\necho run2\n");
    for f in ["exec/test.sh", "exec/test2.sh"] {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(s.path(f), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let base = [
        "--best-effort",
        "--rox",
        "/usr,/bin",
        "--ro",
        "/lib,/lib64",
        "--rox",
        "exec/test.sh",
    ];
    // Only test.sh is executable; --add-exec adds the relative command itself.
    let mut denied = base.to_vec();
    denied.extend(["--", "exec/test2.sh"]);
    assert_eq!(landrun(&s, &denied).code, 1);
    let mut allowed = base.to_vec();
    allowed.extend(["--add-exec", "--", "exec/test2.sh"]);
    let r = landrun(&s, &allowed);
    assert_eq!((r.code, r.stdout.as_str()), (0, "run2\n"), "{}", r.stderr);
    // --unix paths are ignored, missing or not, once the filesystem is unrestricted...
    let r = landrun(
        &s,
        &[
            "--best-effort",
            "--unrestricted-filesystem",
            "--unix",
            "/nonexistent/x.sock",
            "--",
            "true",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    // ...and a missing one fails otherwise.
    let r = landrun(
        &s,
        &[
            "--best-effort",
            "--rox",
            "/usr,/bin,/lib,/lib64",
            "--unix",
            "/nonexistent/x.sock",
            "--",
            "true",
        ],
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    // --ignore-missing skips it.
    let r = landrun(
        &s,
        &[
            "--best-effort",
            "--ignore-missing",
            "--rox",
            "/usr,/bin,/lib,/lib64",
            "--unix",
            "/nonexistent/x.sock",
            "--",
            "true",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
}

/// moat's protections beyond landrun's still apply under its name: the socket filter of a
/// restricted network and the terminal-injection block.
#[test]
fn moats_stronger_enforcement_still_applies() {
    let s = Scratch::new();
    let probe = probe_bin().to_string_lossy().into_owned();
    let base = ["--best-effort", "--add-exec", "--ldd"];
    let mut sealed = base.to_vec();
    sealed.extend([
        "--",
        &probe,
        "socket-udp",
        ";",
        "socket-raw",
        ";",
        "tiocsti",
        "0",
        "x",
    ]);
    let r = landrun(&s, &sealed);
    assert_answers(&r, &["EACCES", "EACCES", "EACCES"]);
    // Controls: outside any sandbox the terminal ioctl reaches the kernel (stdin is not a
    // terminal here: ENOTTY, not the filter's EACCES)...
    let mut direct = Command::new(probe_bin());
    direct.args(["tiocsti", "0", "x"]).stdin(Stdio::null());
    assert_answers(&output(direct), &["ENOTTY"]);
    // ...and with the network unrestricted UDP sockets open (landrun restricts only TCP).
    let mut open = base.to_vec();
    open.extend(["--unrestricted-network", "--", &probe, "socket-udp"]);
    assert_answers(&landrun(&s, &open), &["ok"]);
}

#[test]
fn unrestricted_scoped_lifts_both_scopes() {
    if !require_abi(6) {
        return;
    }
    let s = Scratch::new();
    let mut outside = Command::new("/bin/sleep").arg("30").spawn().unwrap();
    let pid = outside.id().to_string();
    let ops = ["signal", pid.as_str(), "0"];
    let scoped = probe(&s, &[], &ops);
    let alias = probe(&s, &["--unrestricted-scoped"], &ops);
    let landrun_scoped = {
        let probe = probe_bin().to_string_lossy().into_owned();
        let mut args = vec![
            "--best-effort",
            "--add-exec",
            "--ldd",
            "--unrestricted-scoped",
        ];
        args.extend(["--", &probe, "signal", &pid, "0"]);
        landrun(&s, &args)
    };
    let _ = outside.kill();
    let _ = outside.wait();
    assert_answers(&scoped, &["EPERM"]);
    assert_answers(&alias, &["ok"]);
    assert_answers(&landrun_scoped, &["ok"]);
    // Both scopes, as `moat check` shows.
    let c = s.run(&["check", "--rox", "/usr", "--unrestricted-scoped"]);
    assert!(c.stdout.contains("scopes: none"), "{}", c.stdout);
    let c = s.run(&["check", "--rox", "/usr"]);
    assert!(!c.stdout.contains("scopes: none"), "{}", c.stdout);
}

#[test]
fn moat_run_takes_landruns_spellings() {
    let s = Scratch::new();
    // The audit flags are moat's, under landrun's names.
    let audit = |flags: &[&str]| {
        let mut args = vec!["check", "--rox", "/usr"];
        args.extend(flags);
        let r = s.run(&args);
        assert_eq!(r.code, 0, "{}", r.stderr);
        r.stdout
            .lines()
            .find(|l| l.trim_start().starts_with("audit:"))
            .unwrap_or_default()
            .to_string()
    };
    let pairs = [
        ("--log-disable-originating", "--log-same-exec-off"),
        ("--log-enable-subprocesses", "--log-new-exec-on"),
        ("--log-disable-subdomains", "--log-subdomains-off"),
    ];
    let none = audit(&[]);
    for (landrun_name, moat_name) in pairs {
        let a = audit(&[landrun_name]);
        assert_eq!(a, audit(&[moat_name]), "{landrun_name}");
        assert_ne!(a, none, "{landrun_name} changed nothing");
    }
    // --log-level is accepted and changes nothing in what moat prints; a bad level is
    // refused like any bad value (125).
    let line = [
        "--rox",
        "/usr,/lib,/lib64,/bin",
        "--",
        "sh",
        "-c",
        "echo ok",
    ];
    let plain = s.run(&[&["run"][..], &line].concat());
    for level in ["error", "info", "debug", "DEBUG"] {
        let r = s.run(&[&["run", "--log-level", level][..], &line].concat());
        assert_eq!(
            (r.code, &r.stdout, &r.stderr),
            (0, &plain.stdout, &plain.stderr)
        );
    }
    let r = s.run(&[&["run", "--log-level", "loud"][..], &line].concat());
    assert_eq!(r.code, 125, "{}", r.stderr);
    assert!(r.stderr.contains("loud"), "{}", r.stderr);
    // moat run keeps its own defaults and exit codes under landrun's spellings.
    let r = s.run(&["run", "--log-level", "debug", "--", "/nonexistent/xyz"]);
    assert_eq!(r.code, 127, "{}", r.stderr);
}

#[test]
fn install_landrun_link() {
    let s = Scratch::new();
    let dir = s.mkdir("links");
    let r = s.run(&["install-landrun-link", &dir]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let link = s.path("links/landrun");
    assert_eq!(
        std::fs::read_link(&link).unwrap(),
        moat_bin().canonicalize().unwrap()
    );
    let out = output({
        let mut c = Command::new(&link);
        c.arg("--version");
        c
    });
    assert!(out.stdout.starts_with("landrun version"), "{}", out.stdout);
    // Again: nothing to do.
    assert_eq!(s.run(&["install-landrun-link", &dir]).code, 0);
    // Another file of that name is left alone unless --force.
    std::fs::remove_file(&link).unwrap();
    s.write("links/landrun", "#!/bin/sh\n");
    let r = s.run(&["install-landrun-link", &dir]);
    assert_eq!(r.code, 125, "{}", r.stderr);
    assert_eq!(std::fs::read_to_string(&link).unwrap(), "#!/bin/sh\n");
    let r = s.run(&["install-landrun-link", "--force", &dir]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(std::fs::read_link(&link).is_ok());
    // Without a directory: next to the moat binary that runs (here a copy).
    let copy = s.path("copy/moat");
    std::fs::create_dir_all(s.path("copy")).unwrap();
    std::fs::copy(moat_bin(), &copy).unwrap();
    // Other tests of this binary spawn processes meanwhile: one forked while the copy was
    // open for writing holds it until its exec, and exec of the copy fails with ETXTBSY.
    let mut tries = 0;
    let r = loop {
        match Command::new(&copy).arg("install-landrun-link").output() {
            Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy && tries < 100 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            other => {
                let o = other.expect("spawn the copy");
                break Run {
                    code: o.status.code().unwrap_or(-1),
                    stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
                    stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
                };
            }
        }
    };
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(std::fs::read_link(s.path("copy/landrun")).unwrap(), copy);
    // A directory that does not exist is refused.
    let r = s.run(&["install-landrun-link", &s.p("nowhere")]);
    assert_eq!(r.code, 125, "{}", r.stderr);
}
