//! `moat run` behaviour around the kernel: the default policy, exit codes, fd hygiene,
//! environment, `--ldd`, policy files, and strict/best-effort at every ABI cap.

mod common;
use common::*;

#[test]
fn default_policy_runs_common_programs_and_denies_the_rest() {
    let s = Scratch::new();
    std::fs::create_dir_all(s.path("home")).unwrap();
    s.write("data.txt", "hello");
    // Common programs work: read /etc and the current directory.
    let r = s.run(&["run", "--", "cat", "/etc/hostname", "data.txt"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.ends_with("hello"));
    // Writing to $HOME, reading /root and binding a port are denied.
    let home = s.p("home");
    let probe = probe_bin();
    let pd = probe.parent().unwrap().to_string_lossy().into_owned();
    let r = probe_default(
        &s,
        &[
            "create",
            &format!("{home}/x"),
            ";",
            "list",
            "/root",
            ";",
            "bind-tcp",
            &free_port().to_string(),
            ";",
            "read",
            "/etc/hostname",
        ],
        &pd,
    );
    assert_answers(&r, &["EACCES", "EACCES", "EACCES", "ok"]);
    // And the shell in the default policy cannot write its current directory either.
    let r = s.run(&["run", "--", "sh", "-c", "echo x > data.txt"]);
    assert_ne!(r.code, 0);
    assert_eq!(
        std::fs::read_to_string(s.path("data.txt")).unwrap(),
        "hello"
    );
}

/// The default preset plus just the probe binary (it lives under target/, which the default
/// policy does not make executable).
fn probe_default(s: &Scratch, ops: &[&str], _probe_dir: &str) -> Run {
    let mut c = s.moat();
    c.args(["run", "--preset", "default", "--add-exec", "--"])
        .arg(probe_bin())
        .args(ops);
    output(c)
}

#[test]
fn exit_codes() {
    let s = Scratch::new();
    assert_eq!(s.run(&["run", "--", "sh", "-c", "exit 7"]).code, 7);
    let r = s.run(&["run", "--", "no-such-command-moat"]);
    assert_eq!(r.code, 127);
    assert!(r.stderr.contains("command not found"), "{}", r.stderr);
    let bad = s.write("bad.toml", "[filesystem]\nread = [1]\n");
    let r = s.run(&["run", "--policy", &bad, "--", "true"]);
    assert_eq!(r.code, 125);
    assert!(r.stderr.contains("bad.toml:2:"), "{}", r.stderr);
    // A denied execve: 126 with a message naming the path that lacks execute.
    let r = s.run(&[
        "run",
        "--ro",
        "/usr,/lib,/lib64,/bin,/etc",
        "--",
        "/bin/true",
    ]);
    assert_eq!(r.code, 126, "{}", r.stderr);
    assert!(r.stderr.contains("policy denies `execute`"), "{}", r.stderr);
    assert!(r.stderr.contains("/usr/bin/true"), "{}", r.stderr);
    assert!(r.stderr.contains("moat run --explain"), "{}", r.stderr);
    // A path flag replaced the default preset, which would have allowed the system
    // binary: the message says how to keep it.
    let tmp = s.mkdir("w");
    let r = s.run(&["run", "--rw", &tmp, "--", "touch", &format!("{tmp}/x")]);
    assert_eq!(r.code, 126, "{}", r.stderr);
    assert!(
        r.stderr.contains(
            "replace the default preset, which allows /usr/bin/touch: add --preset default"
        ),
        "{}",
        r.stderr
    );
    let r = s.run(&[
        "run",
        "--preset",
        "default",
        "--rw",
        &tmp,
        "--",
        "touch",
        &format!("{tmp}/x"),
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    // A binary the default preset does not allow either (the probe, under target/): no
    // such advice.
    let mut c = s.moat();
    c.args(["run", "--rw", &tmp, "--"])
        .arg(probe_bin())
        .arg("getpid");
    let r = output(c);
    assert_eq!(r.code, 126, "{}", r.stderr);
    assert!(!r.stderr.contains("--preset default"), "{}", r.stderr);
    // A missing rule path is a moat error naming the path and the flag.
    let r = s.run(&["run", "--ro", "/no/such/path", "--", "/bin/true"]);
    assert_eq!(r.code, 125);
    assert!(
        r.stderr.contains("/no/such/path") && r.stderr.contains("--ro"),
        "{}",
        r.stderr
    );
    let r = s.run(&[
        "run",
        "--ignore-missing",
        "--rox",
        "/usr,/lib,/lib64,/bin",
        "--ro",
        "/no/such/path",
        "--",
        "/bin/true",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    // Malformed flag values are moat errors that name the flag.
    let r = s.run(&["run", "--preserve-fd", "-1", "--", "true"]);
    assert_eq!(r.code, 125, "{}", r.stderr);
    assert!(r.stderr.contains("--preserve-fd"), "{}", r.stderr);
    let r = s.run(&["run", "--env", "=x", "--", "true"]);
    assert_eq!(r.code, 125, "{}", r.stderr);
    assert!(r.stderr.contains("--env"), "{}", r.stderr);
    // Ports out of range never wrap.
    let r = s.run(&["run", "--bind-tcp", "65536", "--", "true"]);
    assert_eq!(r.code, 125);
    assert!(r.stderr.contains("65536"), "{}", r.stderr);
    // A non-executable file is 126 without blaming the policy.
    let f = s.write("plain", "data");
    let r = s.run(&["run", "--unrestricted-filesystem", "--", &f]);
    assert_eq!(r.code, 126, "{}", r.stderr);
    assert!(!r.stderr.contains("policy"), "{}", r.stderr);
}

#[test]
fn denied_interpreter_is_named() {
    let s = Scratch::new();
    let dir = s.mkdir("bin");
    std::fs::copy("/bin/true", s.path("bin/t")).unwrap();
    // The program is executable, its ELF interpreter is only readable.
    let r = s.run(&[
        "run",
        "--rox",
        &dir,
        "--ro",
        "/usr,/lib,/lib64,/etc",
        "--",
        &format!("{dir}/t"),
    ]);
    assert_eq!(r.code, 126, "{}", r.stderr);
    assert!(r.stderr.contains("its interpreter"), "{}", r.stderr);
    assert!(r.stderr.contains("ld-linux"), "{}", r.stderr);
}

#[test]
fn no_supervisor_and_no_new_privs() {
    let s = Scratch::new();
    // The command replaces moat: same pid, so $$ of the shell is moat's pid.
    let mut c = s.moat();
    c.args([
        "run",
        "--",
        "sh",
        "-c",
        "grep NoNewPrivs /proc/$$/status; cat /proc/$$/comm",
    ]);
    let r = output(c);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("NoNewPrivs:\t1"), "{}", r.stdout);
    assert!(r.stdout.contains("sh"), "{}", r.stdout);
}

#[test]
fn inherited_descriptors_are_closed_unless_preserved() {
    let s = Scratch::new();
    let moat = moat_bin();
    let script = format!(
        "exec 7</etc/hostname 8</etc/hostname; {m} run --unrestricted-filesystem -- /bin/ls /proc/self/fd; echo ---; {m} run --unrestricted-filesystem --preserve-fd 8 -- /bin/ls /proc/self/fd",
        m = moat.display()
    );
    let r = s.shell(&script);
    let (first, second) = r.stdout.split_once("---").unwrap();
    let fds = |t: &str| t.split_whitespace().map(str::to_string).collect::<Vec<_>>();
    assert!(!fds(first).contains(&"7".to_string()), "{first}");
    assert!(!fds(first).contains(&"8".to_string()), "{first}");
    assert!(fds(second).contains(&"8".to_string()), "{second}");
    assert!(!fds(second).contains(&"7".to_string()), "{second}");
}

#[test]
fn listen_fds_are_kept_for_socket_activation() {
    let s = Scratch::new();
    let moat = moat_bin();
    // LISTEN_PID must name the process that receives the fds: moat itself (exec keeps it).
    let script = format!(
        "exec 3</etc/hostname 4</etc/hostname 8</etc/hostname; export LISTEN_FDS=2; exec sh -c 'LISTEN_PID=$$ exec {m} run --unrestricted-filesystem -- /bin/ls /proc/self/fd'",
        m = moat.display()
    );
    let r = s.shell(&script);
    let fds: Vec<&str> = r.stdout.split_whitespace().collect();
    assert!(fds.contains(&"4"), "{fds:?} {}", r.stderr);
    assert!(!fds.contains(&"8"), "{fds:?}");
}

#[test]
fn environment_flags() {
    let s = Scratch::new();
    let r = s.run(&[
        "run",
        "--clear-env",
        "--env",
        "FOO=bar",
        "--env",
        "PATH",
        "--",
        "/usr/bin/env",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let mut lines: Vec<&str> = r.stdout.lines().collect();
    lines.sort();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[0] == "FOO=bar" && lines[1].starts_with("PATH="),
        "{lines:?}"
    );
    let r = s.run(&["run", "--env", "MOAT_T=1", "--", "/usr/bin/env"]);
    assert!(
        r.stdout.contains("MOAT_T=1") && r.stdout.contains("HOME="),
        "{}",
        r.stdout
    );
}

#[test]
fn ldd_and_add_exec_make_a_minimal_sandbox() {
    let s = Scratch::new();
    // A relative command: --add-exec grants the file `moat run -- ./app` runs.
    s.write("app", "#!/bin/sh\necho from app\n");
    std::fs::set_permissions(
        s.path("app"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let mut c = s.moat();
    c.args([
        "run",
        "--ldd",
        "--add-exec",
        "--rox",
        "/bin/sh,/usr/bin/dash",
        "--",
        "./app",
    ])
    .current_dir(s.dir.path());
    let r = output(c);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout, "from app\n");
    // Only the binary, its interpreter and libraries: it runs, but /etc is not readable.
    let r = s.run(&[
        "run",
        "--ldd",
        "--add-exec",
        "--",
        "/bin/cat",
        "/etc/hostname",
    ]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("Permission denied"), "{}", r.stderr);
    let r = s.run(&[
        "run",
        "--ldd",
        "--add-exec",
        "--ro",
        "/etc/hostname",
        "--",
        "/bin/cat",
        "/etc/hostname",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    // Without --ldd the dynamic loader cannot even be mapped.
    let r = s.run(&["run", "--add-exec", "--", "/bin/cat", "/etc/hostname"]);
    assert_eq!(r.code, 126, "{}", r.stderr);
}

#[test]
fn policy_files_of_each_format_combine_with_flags() {
    let s = Scratch::new();
    let data = s.write("d/f", "x");
    let toml = s.write(
        "p.toml",
        &format!(
            "presets = [\"minimal\"]\n[filesystem]\nread = [\"{}\"]\n",
            s.p("d")
        ),
    );
    let json = s.write(
        "p.json",
        &format!("{{\"filesystem\": {{\"read\": [\"{}\"]}}}}", s.p("d")),
    );
    let yaml = s.write(
        "p.yaml",
        &format!("filesystem:\n  read: [\"{}\"]\n", s.p("d")),
    );
    for p in [&toml, &json, &yaml] {
        let r = probe(
            &s,
            &["--preset", "minimal", "--policy", p],
            &["read", &data, ";", "read", "/etc/hostname"],
        );
        assert_answers(&r, &["ok", "EACCES"]);
    }
    // Flags add to files: one ruleset.
    let r = probe(
        &s,
        &["--policy", &toml, "--ro", "/etc"],
        &["read", &data, ";", "read", "/etc/hostname"],
    );
    assert_answers(&r, &["ok", "ok"]);
}

#[test]
fn policy_text_confines_like_a_policy_file() {
    let s = Scratch::new();
    // A path with a space, a quote and a non-ASCII letter, written in JSON and TOML.
    let data = s.write("d \"\u{e9}\"/f", "x");
    let dir = s.p("d \"\u{e9}\"");
    let json = serde_json::json!({"filesystem": {"read": [dir]}}).to_string();
    let toml = format!(
        "presets = [\"minimal\"]\n[filesystem]\nread = [{}]\n",
        serde_json::Value::from(dir.clone())
    );
    for text in [&json, &toml] {
        let r = probe(
            &s,
            &["--preset", "minimal", "--policy-text", text],
            &["read", &data, ";", "read", "/etc/hostname"],
        );
        assert_answers(&r, &["ok", "EACCES"]);
    }
    // It combines with --policy and the other flags into one ruleset.
    let file = s.write("p.toml", "[filesystem]\nread = [\"/etc\"]\n");
    let r = probe(
        &s,
        &["--policy", &file, "--policy-text", &toml],
        &[
            "read",
            &data,
            ";",
            "read",
            "/etc/hostname",
            ";",
            "list",
            "/root",
        ],
    );
    assert_answers(&r, &["ok", "ok", "EACCES"]);
    // Malformed text: exit 125, the error names --policy-text, the line and the key.
    let r = s.run(&[
        "run",
        "--policy-text",
        "[filesystem]\nread = [1]\n",
        "--",
        "true",
    ]);
    assert_eq!(r.code, 125, "{}", r.stderr);
    assert!(r.stderr.contains("--policy-text:2:"), "{}", r.stderr);
    assert!(r.stderr.contains("filesystem.read"), "{}", r.stderr);
    let r = s.run(&["run", "--policy-text", "{\"filesystem\": {", "--", "true"]);
    assert_eq!(r.code, 125, "{}", r.stderr);
    assert!(r.stderr.contains("--policy-text"), "{}", r.stderr);
}

#[test]
fn strict_and_best_effort_at_every_abi_cap() {
    let s = Scratch::new();
    let kernel = kernel_abi();
    for cap in 0..=kernel {
        let capped = |args: &[&str]| {
            let mut c = s.moat();
            c.env("MOAT_MAX_ABI", cap.to_string()).args(args);
            output(c)
        };
        // The default policy needs scopes: ABI 6.
        let r = capped(&["run", "--", "/bin/true"]);
        if cap >= 6 {
            assert_eq!(r.code, 0, "cap {cap}: {}", r.stderr);
            assert!(r.stderr.is_empty(), "cap {cap}: {}", r.stderr);
        } else {
            assert_eq!(r.code, 125, "cap {cap}: {}", r.stderr);
            assert!(
                r.stderr.contains("cannot be applied as requested"),
                "cap {cap}: {}",
                r.stderr
            );
            assert!(
                r.stderr.contains("needs Landlock ABI 6"),
                "cap {cap}: {}",
                r.stderr
            );
            if cap < 4 {
                assert!(
                    r.stderr.contains("`bind_tcp`") && r.stderr.contains("needs Landlock ABI 4"),
                    "cap {cap}: {}",
                    r.stderr
                );
            }
            if cap < 3 {
                assert!(r.stderr.contains("`truncate`"), "cap {cap}: {}", r.stderr);
            }
            if cap == 0 {
                assert!(r.stderr.contains("`read_file`"), "cap {cap}: {}", r.stderr);
            }
        }
        let r = capped(&["run", "--best-effort", "--", "/bin/true"]);
        assert_eq!(r.code, 0, "cap {cap}: {}", r.stderr);
        assert_eq!(
            r.stderr.lines().count() > 0,
            cap < 6,
            "cap {cap}: {}",
            r.stderr
        );
        for line in r.stderr.lines() {
            assert!(
                line.starts_with("moat: best-effort: not enforced: "),
                "cap {cap}: {line}"
            );
        }

        // Filesystem only (network and scopes lifted): needs the ABI-3 baseline.
        let fs_only = [
            "run",
            "--unrestricted-network",
            "--unscoped",
            "signal,abstract-unix-socket",
            "--",
            "/bin/true",
        ];
        let r = capped(&fs_only);
        assert_eq!(r.code == 0, cap >= 3, "cap {cap}: {}", r.stderr);

        // Audit flags need ABI 7.
        let r = capped(&["run", "--log-new-exec-on", "--", "/bin/true"]);
        assert_eq!(r.code == 0, cap >= 7, "cap {cap}: {}", r.stderr);
    }
}

#[test]
fn best_effort_really_runs_with_what_the_capped_kernel_enforces() {
    let s = Scratch::new();
    let d = s.write("d/f", "x");
    let port = free_port().to_string();
    // At cap 3 TCP rules are dropped: binding any port works, but the filesystem holds.
    let mut c = s.moat();
    c.env("MOAT_MAX_ABI", "3")
        .args([
            "run",
            "--best-effort",
            "--rox",
            "/usr,/lib,/lib64,/bin",
            "--add-exec",
            "--ldd",
            "--",
        ])
        .arg(probe_bin())
        .args(["bind-tcp", &port, ";", "read", &d, ";", "socket-udp"]);
    let r = output(c);
    assert_answers(&r, &["ok", "EACCES", "EACCES"]);
    assert!(r.stderr.contains("`bind_tcp`"), "{}", r.stderr);
}

#[test]
fn udp_port_rules_need_abi_10() {
    let s = Scratch::new();
    let r = s.run(&[
        "run",
        "--preset",
        "default",
        "--connect-udp",
        "53",
        "--",
        "/bin/true",
    ]);
    if kernel_abi() >= 10 {
        assert_eq!(r.code, 0, "{}", r.stderr);
    } else {
        assert_eq!(r.code, 125, "{}", r.stderr);
        assert!(r.stderr.contains("needs Landlock ABI 10"), "{}", r.stderr);
        let r = s.run(&[
            "run",
            "--best-effort",
            "--preset",
            "default",
            "--connect-udp",
            "53",
            "--",
            "/bin/true",
        ]);
        assert_eq!(r.code, 0);
        assert!(r.stderr.contains("UDP stays fully open"), "{}", r.stderr);
    }
}

#[test]
fn bad_abi_cap_fails_closed() {
    let s = Scratch::new();
    let mut c = s.moat();
    c.env("MOAT_MAX_ABI", "seven")
        .args(["run", "--", "/bin/true"]);
    let r = output(c);
    assert_eq!(r.code, 125);
    assert!(r.stderr.contains("MOAT_MAX_ABI"), "{}", r.stderr);
}

#[test]
fn unrestricted_flags_lift_whole_domains() {
    let s = Scratch::new();
    let d = s.write("w/f", "x");
    let port = free_port().to_string();
    let r = probe(
        &s,
        &["--preset", "default", "--unrestricted-filesystem"],
        &["write", &d, ";", "bind-tcp", &port],
    );
    assert_answers(&r, &["ok", "EACCES"]);
    let r = probe(
        &s,
        &["--preset", "default", "--unrestricted-network"],
        &["write", &d, ";", "bind-tcp", &port],
    );
    assert_answers(&r, &["EACCES", "ok"]);
}

/// Read-only git works under the default preset for a user with a ~/.gitconfig, while the
/// credentials beside it stay unreadable. Control: without the preset's rule on the file,
/// git refuses to run at all.
#[test]
fn read_only_git_runs_under_the_default_preset() {
    let s = Scratch::new();
    let home = s.mkdir("home");
    s.write(
        "home/.gitconfig",
        "[user]\n\tname = t\n\temail = t@example.org\n",
    );
    s.write("home/.git-credentials", "https://u:secret@example.org\n");
    let repo = s.mkdir("repo");
    let git = |args: &[&str]| {
        let st = std::process::Command::new("git")
            .args(args)
            .current_dir(&repo)
            .env("HOME", &home)
            .status()
            .unwrap();
        assert!(st.success());
    };
    git(&["init", "-q", "."]);
    git(&["commit", "-q", "--allow-empty", "-m", "first"]);
    let run = |flags: &[&str], cmd: &[&str]| {
        let mut c = s.moat();
        c.arg("run").args(flags).arg("--").args(cmd);
        c.current_dir(&repo).env("HOME", &home);
        output(c)
    };
    let r = run(&[], &["git", "log", "--oneline"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("first"), "{}", r.stdout);
    // Without HOME (a service, `env -i`), the preset's rules on the files name nothing.
    let mut c = s.moat();
    c.args(["run", "--", "true"]).env_remove("HOME");
    let r = output(c);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let creds = format!("{home}/.git-credentials");
    let r = run(&[], &["cat", &creds]);
    assert_ne!(r.code, 0, "{}", r.stdout);
    // Control: the same system paths without the rule on ~/.gitconfig.
    let r = run(
        &[
            "--rox",
            "/usr,/lib,/lib64,/bin",
            "--ro",
            "/etc",
            "--rw",
            "/dev/null",
            "--ro",
            &repo,
        ],
        &["git", "log", "--oneline"],
    );
    assert_ne!(r.code, 0, "{}", r.stdout);
    assert!(r.stderr.contains(".gitconfig"), "{}", r.stderr);
}
