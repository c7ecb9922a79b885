//! `moat record` on real programs: the recorded policy replays the same run under `moat
//! run --policy`, denies what the program never did, and names nothing it did not touch.

mod common;

use common::*;
use std::path::Path;
use std::process::Command;

fn have(cmd: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(cmd).is_file()))
}

/// Records `cmd` in `s` into `<s>/policy.toml` and returns the policy text.
fn record(s: &Scratch, cmd: &[&str]) -> String {
    let mut args = vec!["record", "-o", "policy.toml", "--"];
    args.extend_from_slice(cmd);
    let r = s.run(&args);
    assert_eq!(
        r.code, 0,
        "record failed\nstdout: {}\nstderr: {}",
        r.stdout, r.stderr
    );
    std::fs::read_to_string(s.path("policy.toml")).expect("policy written")
}

/// Replays `cmd` under the recorded policy.
fn replay(s: &Scratch, cmd: &[&str]) -> Run {
    let mut args = vec!["run", "--policy", "policy.toml", "--"];
    args.extend_from_slice(cmd);
    s.run(&args)
}

/// Every path the policy names, from moat's own reading of it.
fn rule_paths(s: &Scratch) -> Vec<String> {
    let r = s.run(&["policy", "convert", "--to", "landlockconfig", "policy.toml"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).expect("landlockconfig JSON");
    v["pathBeneath"]
        .as_array()
        .map(|rules| {
            rules
                .iter()
                .flat_map(|r| r["parent"].as_array().cloned().unwrap_or_default())
                .filter_map(|p| p.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The recorded policy names only what the program touched: its scratch directory (never
/// a parent of it), the system's programs, libraries and configuration, and the kernel's
/// per-process files.
fn assert_only_touched(s: &Scratch, extra: &[&str]) {
    let scratch = std::fs::canonicalize(s.dir.path()).unwrap();
    let system = [
        "/usr", "/lib", "/lib64", "/bin", "/etc", "/proc", "/dev", "/sys",
    ];
    for p in rule_paths(s) {
        let path = Path::new(&p);
        let ok = path.starts_with(&scratch)
            || system
                .iter()
                .any(|d| path.starts_with(d) && path != Path::new("/"))
            || extra.iter().any(|d| path.starts_with(d));
        assert!(
            ok,
            "the policy names `{p}`, which the program did not touch"
        );
    }
}

/// Works in `work/` (which exists), reads `data/`, appends to `logs/app.log`, cleans
/// `work/tmp`. Landlock rules name objects that exist when the sandbox is made, so what a
/// run creates is allowed beneath the nearest directory that existed before it: `work/`.
const SCRIPT: &str = r#"#!/bin/sh
set -e
mkdir -p work/out/sub
cat data/in.txt > work/out/sub/copy.txt
echo "$(wc -l < data/in.txt) lines" >> logs/app.log
ls data > work/out/listing.txt
rm work/tmp/old.txt
mv work/out/listing.txt work/out/sub/listing.txt
echo done
"#;

fn script_inputs(s: &Scratch) {
    let _ = std::fs::remove_dir_all(s.path("work/out"));
    s.write("data/in.txt", "one\ntwo\n");
    s.write("data/other.txt", "keep\n");
    s.write("logs/app.log", "start\n");
    s.write("logs/other.log", "keep\n");
    s.write("work/tmp/old.txt", "stale\n");
}

#[test]
fn a_shell_script_touching_several_directories_replays() {
    let s = Scratch::new();
    s.mkdir("home");
    let script = s.write("run.sh", SCRIPT);
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    script_inputs(&s);
    let policy = record(&s, &["./run.sh"]);
    assert!(policy.contains("[[filesystem.rule]]"), "{policy}");

    script_inputs(&s);
    let r = replay(&s, &["./run.sh"]);
    assert_eq!(r.code, 0, "replay failed\n{}\npolicy:\n{policy}", r.stderr);
    assert_eq!(r.stdout, "done\n");
    assert_eq!(
        std::fs::read_to_string(s.path("work/out/sub/copy.txt")).unwrap(),
        "one\ntwo\n"
    );
    assert!(!s.path("work/tmp/old.txt").exists());

    // Writes the script never made are denied: the input it only read, another log, the
    // home directory, its own script.
    for (what, script) in [
        ("write its input", "echo x >> data/in.txt"),
        ("remove an input", "rm data/other.txt"),
        ("create in its input directory", "echo x > data/new.txt"),
        ("write another log", "echo x >> logs/other.log"),
        ("write the home directory", "echo x > home/x"),
        ("rewrite the script", "echo x >> run.sh"),
    ] {
        let r = s.run(&[
            "run",
            "--policy",
            "policy.toml",
            "--",
            "/bin/sh",
            "-c",
            script,
        ]);
        assert_ne!(
            r.code, 0,
            "{what}: allowed by the recorded policy\n{policy}"
        );
    }
    assert!(s.path("data/other.txt").exists());
    assert_only_touched(&s, &[]);
}

#[test]
fn python_writing_a_file_and_listening_replays() {
    // Debian's interpreter, not whatever a version manager put first on PATH.
    let python = "/usr/bin/python3";
    assert!(
        Path::new(python).exists(),
        "python3 is needed (scripts/test.sh installs it)"
    );
    let s = Scratch::new();
    let port = free_port();
    s.write(
        "app.py",
        "import json, socket, sys\n\
         with open('result.json', 'w') as f:\n    json.dump({'ok': True}, f)\n\
         s = socket.socket()\n\
         s.bind(('127.0.0.1', int(sys.argv[1])))\n\
         s.listen()\n\
         print('listening')\n",
    );
    let port_s = port.to_string();
    let policy = record(&s, &[python, "app.py", &port_s]);
    assert!(policy.contains(&format!("bind_tcp = [{port}]")), "{policy}");
    std::fs::remove_file(s.path("result.json")).unwrap();

    let r = replay(&s, &[python, "app.py", &port_s]);
    assert_eq!(r.code, 0, "replay failed\n{}\npolicy:\n{policy}", r.stderr);
    assert_eq!(r.stdout, "listening\n");
    assert!(s.path("result.json").exists());

    // Another port, and a file outside its directory, are denied.
    let other = free_port().to_string();
    let r = replay(&s, &[python, "app.py", &other]);
    assert_ne!(r.code, 0, "bind on another port allowed");
    assert!(r.stderr.contains("PermissionError"), "{}", r.stderr);
    let r = replay(&s, &[python, "-c", "open('/tmp/moat-record-escape', 'w')"]);
    assert_ne!(r.code, 0, "write outside allowed");
    assert_only_touched(&s, &[]);
}

#[test]
fn curl_connecting_to_a_local_server_replays() {
    if !have("curl") {
        panic!("curl is needed (scripts/test.sh installs it)");
    }
    let (server, port) = listener();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for mut c in server.incoming().flatten() {
            let mut buf = [0u8; 1024];
            let _ = c.read(&mut buf);
            let _ = c.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 6\r\n\r\nhello\n");
        }
    });
    let s = Scratch::new();
    let url = format!("http://127.0.0.1:{port}/");
    let policy = record(&s, &["curl", "-s", &url]);
    assert!(
        policy.contains(&format!("connect_tcp = [{port}]")),
        "{policy}"
    );
    let r = replay(&s, &["curl", "-s", &url]);
    assert_eq!(r.code, 0, "replay failed\n{}\npolicy:\n{policy}", r.stderr);
    assert_eq!(r.stdout, "hello\n");
    // Another port is refused by the kernel (curl: couldn't connect, exit 7).
    let (_other, other_port) = listener();
    let r = replay(
        &s,
        &["curl", "-s", &format!("http://127.0.0.1:{other_port}/")],
    );
    assert_eq!(r.code, 7, "connect to another port: {}", r.stderr);
    assert_only_touched(&s, &[]);
}

#[test]
fn git_in_a_scratch_repository_replays() {
    if !have("git") {
        panic!("git is needed (scripts/test.sh installs it)");
    }
    let s = Scratch::new();
    s.mkdir("home");
    s.mkdir("work");
    let script = s.write(
        "git.sh",
        "#!/bin/sh\nset -e\nmkdir work/repo\ncd work/repo\ngit init -q\necho x > f\ngit add f\n\
         git -c user.name=moat -c user.email=moat@example.org commit -qm first\n\
         git log --oneline | wc -l\n",
    );
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let policy = record(&s, &["./git.sh"]);
    std::fs::remove_dir_all(s.path("work/repo")).unwrap();
    let r = replay(&s, &["./git.sh"]);
    assert_eq!(r.code, 0, "replay failed\n{}\npolicy:\n{policy}", r.stderr);
    assert_eq!(r.stdout.trim(), "1");
    // git may not write the home directory it only read.
    let r = s.run(&[
        "run",
        "--policy",
        "policy.toml",
        "--",
        "git",
        "config",
        "--global",
        "user.name",
        "x",
    ]);
    assert_ne!(r.code, 0, "git wrote its global config");
    // Where git's files are installed differs between machines: allow its prefix.
    let git = Command::new("sh")
        .args(["-c", "command -v git"])
        .output()
        .unwrap();
    let git = String::from_utf8_lossy(&git.stdout).trim().to_string();
    let prefix = Path::new(&git)
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .to_path_buf();
    assert_only_touched(&s, &[prefix.to_str().unwrap()]);
}

#[test]
fn verbose_record_says_what_each_call_used_in_words() {
    let s = Scratch::new();
    let r = s.run(&["record", "-v", "--", "cat", "/etc/hostname"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("openat: read_file on /etc/hostname"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("Fs {"), "{}", r.stderr);
}

#[test]
fn merge_extends_a_policy_and_replays_both_runs() {
    let s = Scratch::new();
    s.write("a.txt", "a\n");
    s.write("b.txt", "b\n");
    record(&s, &["cat", "a.txt"]);
    let r = s.run(&[
        "record",
        "--merge",
        "policy.toml",
        "-o",
        "policy.toml",
        "--",
        "cat",
        "b.txt",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    for f in ["a.txt", "b.txt"] {
        let r = replay(&s, &["cat", f]);
        assert_eq!(r.code, 0, "{f}: {}", r.stderr);
    }
    // Merging the same run again and again changes nothing: the policy stays minimal.
    let rules = |text: &str| text.lines().filter(|l| l.starts_with("  \"")).count();
    let before = std::fs::read_to_string(s.path("policy.toml")).unwrap();
    for _ in 0..2 {
        let r = s.run(&[
            "record",
            "--merge",
            "policy.toml",
            "-o",
            "policy.toml",
            "--",
            "cat",
            "b.txt",
        ]);
        assert_eq!(r.code, 0, "{}", r.stderr);
    }
    let after = std::fs::read_to_string(s.path("policy.toml")).unwrap();
    assert_eq!(rules(&after), rules(&before), "{before}\n---\n{after}");
    assert_eq!(after, before);
    // A broken base policy is refused before anything runs.
    s.write("broken.toml", "[filesystem\n");
    let r = s.run(&["record", "--merge", "broken.toml", "--", "cat", "a.txt"]);
    assert_eq!(r.code, 125);
    assert!(r.stderr.contains("broken.toml"), "{}", r.stderr);
    assert!(r.stdout.is_empty(), "the command ran: {}", r.stdout);
}

#[test]
fn records_without_root_and_follows_threads() {
    if !is_root() {
        eprintln!("SKIP: dropping to another user needs root");
        return;
    }
    let s = Scratch::new();
    s.write("t.txt", "from a thread\n");
    s.write(
        "threads.py",
        "import threading\n\
         out = []\n\
         t = threading.Thread(target=lambda: out.append(open('t.txt').read()))\n\
         t.start(); t.join()\n\
         print(out[0], end='')\n",
    );
    // Everyone may use the scratch directory; moat runs as nobody.
    std::fs::set_permissions(
        s.dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(moat_bin())
        .args(["record", "--", "/usr/bin/python3", "threads.py"])
        .current_dir(s.dir.path())
        .env("HOME", "/nonexistent")
        .output()
        .expect("setpriv");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "record as nobody failed: {stderr}");
    assert!(stdout.starts_with("from a thread\n"), "{stdout}");
    let t = std::fs::canonicalize(s.path("t.txt")).unwrap();
    assert!(
        stdout.contains(&format!("{:?}", t.to_string_lossy())),
        "the thread's read is in the policy:\n{stdout}"
    );
}

#[test]
fn the_command_status_and_missing_commands() {
    let s = Scratch::new();
    let r = s.run(&["record", "--", "sh", "-c", "exit 3"]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(r.stdout.contains("version = 1"), "{}", r.stdout);
    let r = s.run(&["record", "--", "no-such-program-anywhere"]);
    assert_eq!(r.code, 127, "{}", r.stderr);
}

/// A recorded program that signals a daemon it started itself (reparented, so outside its
/// process tree but inside its sandbox) keeps the signal scope on, and replays; one that
/// signals a process it did not start turns it off (the control).
#[test]
fn the_signal_scope_goes_only_for_processes_outside_the_run() {
    let s = Scratch::new();
    let own = "(sleep 30 & echo $! > daemon.pid); sleep 0.2; kill $(cat daemon.pid)";
    let policy = record(&s, &["sh", "-c", own]);
    assert!(!policy.contains("signal = false"), "{policy}");
    let r = replay(&s, &["sh", "-c", own]);
    assert_eq!(r.code, 0, "{}", r.stderr);

    // Control: a process the run did not start.
    let mut outside = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    let kill = format!("kill {}", outside.id());
    let policy = record(&s, &["sh", "-c", &kill]);
    let _ = outside.wait();
    assert!(policy.contains("signal = false"), "{policy}");
}

/// Reading several files of /etc folds into a rule on /etc, which must not reach the
/// password hashes the run never read: they become exceptions. `--fold-secrets` is the
/// control that shows the fold alone would hand them over.
#[test]
fn a_fold_does_not_reach_secrets_the_run_did_not_read() {
    if !is_root() {
        eprintln!("SKIP: /etc/shadow is readable only as root, which the leak needs");
        return;
    }
    let s = Scratch::new();
    let read = [
        "tar",
        "-czf",
        "etc.tgz",
        "/etc/hostname",
        "/etc/hosts",
        "/etc/passwd",
        "/etc/group",
        "/etc/os-release",
    ];
    let policy = record(&s, &read);
    assert!(policy.contains("\"/etc\""), "folded into /etc: {policy}");
    assert!(policy.contains("\"/etc/shadow\""), "{policy}");
    assert_eq!(replay(&s, &read).code, 0);
    let leak = ["tar", "-czf", "etc.tgz", "/etc/shadow"];
    let r = replay(&s, &leak);
    assert_ne!(r.code, 0, "{}", r.stdout);
    assert!(r.stderr.contains("Permission denied"), "{}", r.stderr);

    // Control: the same recording with --fold-secrets reads them.
    let mut args = vec!["record", "--fold-secrets", "-o", "policy.toml", "--"];
    args.extend_from_slice(&read);
    assert_eq!(s.run(&args).code, 0);
    let r = replay(&s, &leak);
    assert_eq!(r.code, 0, "{}", r.stderr);
}

/// A C build writes compiler temporaries: recorded with a private temporary directory,
/// the policy says `private_tmp = true` and grants nothing on /tmp, so the replayed build
/// cannot plant a file in another directory of /tmp (the control shows it can without).
#[test]
fn a_c_build_records_a_private_tmp_and_no_right_on_tmp() {
    let s = Scratch::new();
    s.write(
        "hello.c",
        "#include <stdio.h>\nint main(void) { puts(\"hi\"); return 0; }\n",
    );
    // -save-temps=obj would keep them here: plain cc writes /tmp/cc*.s and friends.
    s.write("Makefile", "hello: hello.c\n\tcc -o hello hello.c\n");
    let shared = tempfile::Builder::new()
        .prefix("moat-shared-tmp-")
        .tempdir_in("/tmp")
        .unwrap();
    let plant = format!("{}/planted", shared.path().display());
    let policy = record(&s, &["make"]);
    assert!(policy.contains("private_tmp = true"), "{policy}");
    assert!(!policy.contains("\"/tmp\""), "{policy}");
    std::fs::remove_file(s.path("hello")).unwrap();
    let r = replay(&s, &["make"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(s.path("hello").exists());
    // Control: outside the sandbox the shared directory takes a file.
    let r = s.shell(&format!("echo x > {plant}"));
    assert_eq!(r.code, 0, "{}", r.stderr);
    std::fs::remove_file(&plant).unwrap();
    let r = replay(&s, &["sh", "-c", &format!("echo x > {plant}")]);
    assert_ne!(r.code, 0);
    assert!(!Path::new(&plant).exists());
    // `--shared-tmp` records the old way: rights on /tmp.
    let r = s.run(&[
        "record",
        "--shared-tmp",
        "-o",
        "shared.toml",
        "--",
        "make",
        "-B",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let shared_policy = std::fs::read_to_string(s.path("shared.toml")).unwrap();
    assert!(shared_policy.contains("\"/tmp\""), "{shared_policy}");
}

/// node reads its own control group's memory limit: recorded in one cgroup, replayed from
/// another, the rule on the first group's file is optional and the replay runs. Control:
/// the same policy with that rule required refuses to start (exit 125).
#[test]
fn a_recording_replays_from_another_cgroup() {
    if !is_root() {
        eprintln!("SKIP: making control groups needs root");
        return;
    }
    let memory = Path::new("/sys/fs/cgroup/memory");
    if !memory.join("cgroup.procs").exists() {
        eprintln!("SKIP: no cgroup v1 memory hierarchy at /sys/fs/cgroup/memory");
        return;
    }
    let s = Scratch::new();
    let groups: Vec<std::path::PathBuf> = ["rec", "replay"]
        .iter()
        .map(|n| memory.join(format!("moat-test-{}-{n}", std::process::id())))
        .collect();
    for g in &groups {
        std::fs::create_dir_all(g).unwrap();
    }
    let in_group = |g: &Path, args: &str| {
        let line = format!(
            "echo $$ > {}/cgroup.procs && exec {} {args}",
            g.display(),
            moat_bin().display()
        );
        let mut c = Command::new("sh");
        c.args(["-c", &line]).current_dir(s.dir.path());
        output(c)
    };
    let program = "-- node -e 'console.log(require(\"os\").totalmem() > 0)'";
    let r = in_group(&groups[0], &format!("record -o policy.toml {program}"));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let policy = std::fs::read_to_string(s.path("policy.toml")).unwrap();
    let own = format!("{}/memory.limit_in_bytes", groups[0].display());
    assert!(
        policy.contains(&format!("{{ path = \"{own}\", optional = true }}")),
        "{policy}"
    );

    // Another session: the recording's group is gone, the replay runs in another one.
    std::fs::remove_dir(&groups[0]).unwrap();
    let r = in_group(&groups[1], &format!("run --policy policy.toml {program}"));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout, "true\n");

    // Control: required, the rule on the other group's file stops the replay.
    std::fs::write(
        s.path("required.toml"),
        policy.replace(", optional = true }", ", optional = false }"),
    )
    .unwrap();
    let r = in_group(&groups[1], &format!("run --policy required.toml {program}"));
    // The group is empty once its processes have ended.
    let _ = std::fs::remove_dir(&groups[1]);
    assert_eq!(r.code, 125, "{}", r.stderr);
    assert!(r.stderr.contains("does not exist"), "{}", r.stderr);
}
