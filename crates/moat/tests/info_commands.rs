//! `moat status`, `moat check`, `moat presets` and `--help`.

mod common;
use common::*;

#[test]
fn status_reports_the_kernel_abi_in_text_and_json() {
    let s = Scratch::new();
    let kernel = kernel_abi();
    let r = s.run(&["status"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains(&format!("Landlock ABI {kernel}")),
        "{}",
        r.stdout
    );
    let r = s.run(&["status", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).expect("status --json is JSON");
    assert_eq!(v["landlock"]["kernel_abi"], kernel);
    assert_eq!(v["landlock"]["effective_abi"], kernel);
    let features = v["features"].as_array().unwrap();
    assert_eq!(features.len(), 10);
    for f in features {
        let abi = f["abi"].as_i64().unwrap();
        assert_eq!(f["enforceable"].as_bool().unwrap(), abi <= kernel, "{f}");
    }
    // The cap shows in status too.
    let mut c = s.moat();
    c.env("MOAT_MAX_ABI", "4").args(["status", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&output(c).stdout).unwrap();
    assert_eq!(v["landlock"]["effective_abi"], 4.min(kernel));
    assert_eq!(v["landlock"]["cap"], 4);
}

#[test]
fn check_shows_what_is_enforced_and_what_is_dropped() {
    let s = Scratch::new();
    let r = s.run(&[
        "check",
        "--rox",
        "/usr",
        "--ro",
        "/etc",
        "--bind-tcp",
        "8080",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("allow /usr: execute,read_file,read_dir"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("allow bind_tcp: 8080"), "{}", r.stdout);
    assert!(r.stdout.contains("dropped: nothing"), "{}", r.stdout);
    // A bind port allowed: listen() is left to moat's supervisor, which the report names,
    // and nothing is left unenforced.
    assert!(
        r.stdout
            .contains("listen(): only on internet sockets bound to ports 8080"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("verdict: runs fully enforced"),
        "{}",
        r.stdout
    );
    let r = s.run(&["check", "--rox", "/usr", "--ro", "/etc"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("listen(): refused"), "{}", r.stdout);
    assert!(
        r.stdout.contains("socket(AF_UNIX): refused"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("verdict: runs fully enforced"),
        "{}",
        r.stdout
    );

    let mut c = s.moat();
    c.env("MOAT_MAX_ABI", "3").args(["check", "--rox", "/usr"]);
    let r = output(c);
    assert_eq!(r.code, 125);
    assert!(
        r.stdout
            .contains("dropped (asked for, not enforceable here):"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("restrict `bind_tcp`"), "{}", r.stdout);
    assert!(r.stdout.contains("strict mode refuses"), "{}", r.stdout);

    let mut c = s.moat();
    c.env("MOAT_MAX_ABI", "3")
        .args(["check", "--best-effort", "--rox", "/usr"]);
    let r = output(c);
    assert_eq!(r.code, 0);
    assert!(
        r.stdout.contains("runs in best-effort mode"),
        "{}",
        r.stdout
    );

    // An invalid policy is reported with its position.
    let bad = s.write(
        "p.json",
        "{\n  \"network\": {\"bind_tcp\": [\"80-70\"]}\n}\n",
    );
    let r = s.run(&["check", "--policy", &bad]);
    assert_eq!(r.code, 125);
    assert!(r.stderr.contains("p.json:2:"), "{}", r.stderr);
    assert!(r.stderr.contains("network.bind_tcp"), "{}", r.stderr);
    assert!(r.stderr.contains("ends before it starts"), "{}", r.stderr);
}

#[test]
fn presets_list_and_print() {
    let s = Scratch::new();
    let r = s.run(&["presets"]);
    for name in [
        "default",
        "minimal",
        "shell",
        "network-client",
        "web-server",
    ] {
        assert!(
            r.stdout.lines().any(|l| l.starts_with(name)),
            "{name}: {}",
            r.stdout
        );
    }
    let r = s.run(&["presets", "web-server"]);
    assert!(r.stdout.contains("bind_tcp"), "{}", r.stdout);
    // What `presets NAME` prints is a policy moat reads back.
    let f = s.write("ws.toml", &r.stdout);
    let r = s.run(&["check", "--policy", &f]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = s.run(&["presets", "nope"]);
    assert_eq!(r.code, 125);
    assert!(r.stderr.contains("unknown preset `nope`"), "{}", r.stderr);
}

#[test]
fn help_and_usage_errors() {
    let s = Scratch::new();
    let r = s.run(&["run", "--help"]);
    assert_eq!(r.code, 0);
    for flag in [
        "--ro",
        "--rox",
        "--rw",
        "--rwx",
        "--bind-tcp",
        "--connect-tcp",
        "--best-effort",
        "--ldd",
        "--add-exec",
        "--env",
        "--clear-env",
        "--policy",
        "--preset",
        "--preserve-fd",
        "--unrestricted-network",
        "--unrestricted-filesystem",
    ] {
        assert!(r.stdout.contains(flag), "{flag} missing from run --help");
    }
    let r = s.run(&["run", "--no-such-flag", "--", "true"]);
    assert_eq!(r.code, 125);
    let r = s.run(&["run"]);
    assert_eq!(r.code, 125);
    assert!(
        r.stderr
            .contains("Usage: moat run [OPTIONS] [--] <COMMAND>..."),
        "{}",
        r.stderr
    );
    let r = s.run(&["run", "--unscoped", "everything", "--", "true"]);
    assert_eq!(r.code, 125);
    assert!(r.stderr.contains("unknown scope"), "{}", r.stderr);
    // One error style, clap's errors included; "did you mean" for subcommands, values and
    // the flags moat rejects itself.
    for (args, tip) in [
        (&["chek"][..], "'check'"),
        (&["completions", "zssh"][..], "'zsh'"),
        (
            &["run", "--rooo", "/x", "--", "true"][..],
            "did you mean `--ro`?",
        ),
        (&["run", "--bind-tpc", "80", "--", "true"][..], "--bind-tcp"),
    ] {
        let r = s.run(args);
        assert_eq!(r.code, 125, "{args:?}");
        assert!(r.stderr.starts_with("moat: "), "{args:?}: {}", r.stderr);
        assert!(!r.stderr.contains("error:"), "{args:?}: {}", r.stderr);
        assert!(r.stderr.contains(tip), "{args:?}: {}", r.stderr);
    }
    // What `status --json` prints is documented where users look.
    let r = s.run(&["status", "--help"]);
    for key in ["kernel_abi", "effective_abi", "features", "beyond_landlock"] {
        assert!(r.stdout.contains(key), "{key}: {}", r.stdout);
    }
}

#[test]
fn policy_convert_round_trips_and_warns() {
    let s = Scratch::new();
    let d = s.mkdir("d");
    let src = s.write(
        "p.toml",
        &format!("[filesystem]\nread_exec = [\"/usr\"]\nwrite = [\"{d}\"]\n[network]\nbind_tcp = [8080]\n"),
    );
    for to in ["moat", "landlockconfig", "oci", "oci1111"] {
        let out = s.p(&format!("out-{to}"));
        let r = s.run(&["policy", "convert", "--to", to, "-o", &out, &src]);
        assert_eq!(r.code, 0, "{to}: {}", r.stderr);
        // What was written is a policy moat reads back.
        let r = s.run(&["check", "--best-effort", "--policy", &out]);
        assert_eq!(r.code, 0, "{to}: {}", r.stderr);
        assert!(r.stdout.contains("/usr"), "{to}: {}", r.stdout);
    }
    // Converting to moat's own dialect is exact; to OCI it warns about what is lost.
    let r = s.run(&["policy", "convert", "--to", "moat", "--exact", &src]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.is_empty(), "{}", r.stderr);
    let r = s.run(&["policy", "convert", "--to", "oci", &src]);
    assert_eq!(r.code, 0);
    assert!(r.stderr.contains("moat: warning:"), "{}", r.stderr);
    let r = s.run(&["policy", "convert", "--to", "oci", "--exact", &src]);
    assert_eq!(r.code, 125);
    let r = s.run(&["policy", "convert", &s.p("missing.toml")]);
    assert_eq!(r.code, 125);
    assert!(r.stderr.contains("missing.toml"), "{}", r.stderr);
}

/// Completions and manual pages come from the command-line definition: every flag of
/// `moat run` is in both.
#[test]
fn completions_and_manual_pages_cover_the_command_line() {
    let s = Scratch::new();
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let r = s.run(&["completions", shell]);
        assert_eq!(r.code, 0, "{shell}: {}", r.stderr);
        for flag in ["rox", "explain", "bind-tcp", "preset"] {
            assert!(r.stdout.contains(flag), "{shell}: no {flag}");
        }
    }
    let r = s.run(&["completions", "tcsh"]);
    assert_eq!(r.code, 125, "{}", r.stderr);
    assert!(r.stderr.contains("possible values"), "{}", r.stderr);

    let r = s.run(&["man"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.starts_with(".ie") && r.stdout.contains(".TH moat 1"));
    let dir = s.mkdir("man1");
    let r = s.run(&["man", "--dir", &dir]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let run = std::fs::read_to_string(format!("{dir}/moat-run.1")).unwrap();
    assert!(run.contains(".TH moat-run 1"), "{run}");
    assert!(
        run.contains("\\-\\-rox") && run.contains("\\-\\-explain"),
        "{run}"
    );
    for page in [
        "moat",
        "moat-check",
        "moat-status",
        "moat-record",
        "moat-policy",
    ] {
        assert!(
            std::path::Path::new(&format!("{dir}/{page}.1")).exists(),
            "{page}"
        );
    }
    let r = s.run(&["man", "--dir", "/no/such/dir"]);
    assert_eq!(r.code, 125);
    assert!(r.stderr.contains("/no/such/dir"), "{}", r.stderr);
}

/// What a user installing moat or building its image relies on: the licence files
/// Cargo.toml names, and a build context without target/.
#[test]
fn licences_and_the_image_build_context() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let cargo = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    assert!(cargo.contains("license = \"MIT OR Apache-2.0\""));
    let mit = std::fs::read_to_string(root.join("LICENSE-MIT")).unwrap();
    assert!(mit.starts_with("MIT License"));
    let apache = std::fs::read_to_string(root.join("LICENSE-APACHE")).unwrap();
    assert!(apache.contains("Apache License") && apache.contains("Version 2.0"));
    let ignore = std::fs::read_to_string(root.join(".containerignore")).unwrap();
    assert!(ignore.lines().any(|l| l == "target/"), "{ignore}");
}

/// Path and port flags beside a policy file add grants and change nothing else it says.
#[test]
fn flags_beside_a_policy_file_only_add_grants() {
    let s = Scratch::new();
    let file = s.write(
        "p.toml",
        "compat = \"best-effort\"\n[filesystem]\nread_exec = [\"/usr\"]\n[scopes]\nsignal = false\n",
    );
    let r = s.run(&[
        "check",
        "--policy",
        &file,
        "--ro",
        "/etc",
        "--bind-tcp",
        "8080",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("allow /etc: read_file,read_dir"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("mode: best-effort"), "{}", r.stdout);
    assert!(
        r.stdout.contains("scopes: abstract_unix_socket (no"),
        "the file's signal = false is kept: {}",
        r.stdout
    );
    // A flag that names the setting changes it.
    let r = s.run(&["check", "--policy", &file, "--ro", "/etc", "--strict"]);
    assert!(r.stdout.contains("mode: strict"), "{}", r.stdout);
    // Alone, the flags are the whole policy, scopes on.
    let r = s.run(&["check", "--ro", "/etc"]);
    assert!(
        r.stdout.contains("scopes: abstract_unix_socket,signal"),
        "{}",
        r.stdout
    );
}
