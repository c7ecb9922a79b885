//! `moat run --private-tmp`: a temporary directory of the sandbox's own, named by TMPDIR,
//! TMP and TEMP, gone when the sandbox's last process has ended.

mod common;

use common::*;
use std::path::Path;
use std::time::Duration;

/// Whether `f` holds within three seconds.
fn within_3s(f: impl Fn() -> bool) -> bool {
    for _ in 0..300 {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    f()
}

fn wait_gone(path: &Path) -> bool {
    within_3s(|| !path.exists())
}

/// Starts a sandbox with a private tmp that runs `script` (which may use `$READY`, a file
/// it writes its TMPDIR into) and returns it with that TMPDIR once written.
fn start_holding(s: &Scratch, script: &str) -> (std::process::Child, String) {
    let ready = s.path("ready");
    let mut c = s.moat();
    c.env("READY", &ready)
        .args(["run", "--private-tmp", "--rw"])
        .arg(s.dir.path())
        .args(["--rox", "/usr,/lib,/lib64,/bin", "--", "sh", "-c", script]);
    let child = c.spawn().unwrap();
    assert!(within_3s(
        || std::fs::read_to_string(&ready).is_ok_and(|t| t.ends_with('\n'))
    ));
    let tmp = std::fs::read_to_string(&ready).unwrap().trim().to_string();
    (child, tmp)
}

/// The directory's root (`<base>/moat-run.<pid>.<random>`) from the path the sandbox got.
fn root_of(tmp: &str) -> std::path::PathBuf {
    Path::new(tmp).parent().unwrap().to_path_buf()
}

#[test]
fn the_sandbox_writes_its_own_tmp_and_nothing_else_of_tmp() {
    let s = Scratch::new();
    let other = s.mkdir("shared-tmp");
    let script = format!(
        "echo \"$TMPDIR $TMP $TEMP\"; echo data > \"$TMPDIR/f\" && cat \"$TMPDIR/f\"; \
         echo x > {other}/planted && echo planted"
    );
    // Control: without the sandbox, the shared directory takes the file.
    let r = s.shell(&script);
    assert!(r.stdout.contains("planted"), "{}", r.stdout);
    std::fs::remove_file(format!("{other}/planted")).unwrap();

    let r = s.run(&["run", "--private-tmp", "--", "sh", "-c", &script]);
    let lines = r.lines();
    let tmp = lines[0].split(' ').next().unwrap().to_string();
    assert_eq!(lines[0], format!("{tmp} {tmp} {tmp}"));
    assert_eq!(lines[1], "data", "{}", r.stderr);
    assert!(!r.stdout.contains("planted"), "{}", r.stdout);
    assert!(!Path::new(&format!("{other}/planted")).exists());
    assert!(wait_gone(&root_of(&tmp)), "{tmp} left behind");
}

#[test]
fn it_stays_while_a_process_of_the_sandbox_lives_and_goes_after() {
    let s = Scratch::new();
    let marker = s.path("late-write");
    let script = format!(
        // The background process lets go of stdout, so that the output ends with `sh`.
        "echo $TMPDIR; (sleep 1; echo late > $TMPDIR/late && cat $TMPDIR/late; touch {}) > /dev/null 2>&1 &",
        marker.display()
    );
    let r = s.run(&[
        "run",
        "--private-tmp",
        "--rw",
        s.dir.path().to_str().unwrap(),
        "--rox",
        "/usr,/lib,/lib64,/bin",
        "--rw",
        "/dev/null",
        "--",
        "sh",
        "-c",
        &script,
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let tmp = r.lines()[0].to_string();
    // The command has ended; its background process still uses the directory.
    assert!(Path::new(&tmp).exists());
    assert!(
        within_3s(|| marker.exists()),
        "the background process could not write"
    );
    assert!(wait_gone(&root_of(&tmp)), "{tmp} left behind");
}

#[test]
fn another_sandbox_cannot_reach_it() {
    let s = Scratch::new();
    let (mut child, tmp) = start_holding(
        &s,
        "echo secret > $TMPDIR/s; echo $TMPDIR > $READY; sleep 2",
    );
    // Control: outside any sandbox, the secret is there to read.
    assert_eq!(
        std::fs::read_to_string(format!("{tmp}/s")).unwrap(),
        "secret\n"
    );
    let r = s.run(&["run", "--private-tmp", "--", "cat", &format!("{tmp}/s")]);
    assert_ne!(r.code, 0, "{}", r.stdout);
    assert!(r.stderr.contains("Permission denied"), "{}", r.stderr);
    let _ = child.wait();
    assert!(wait_gone(&root_of(&tmp)));
}

/// A supervisor killed with SIGKILL cannot remove the directory: the next sandbox that
/// uses the same place removes it once its lock is free and it is older than a minute.
#[test]
fn a_directory_left_by_a_killed_supervisor_goes_with_the_next_sandbox() {
    let s = Scratch::new();
    let (mut child, tmp) = start_holding(&s, "echo $TMPDIR > $READY; sleep 30");
    let root = root_of(&tmp);
    let name = root.file_name().unwrap().to_str().unwrap().to_string();
    let pid: i32 = name.split('.').nth(1).unwrap().parse().unwrap();
    // The supervisor: the moat-supervise process that holds this directory's lock.
    let lock = root.with_file_name(format!("{name}.lock"));
    let mut killed = 0;
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(p) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let holds = std::fs::read_dir(format!("/proc/{p}/fd"))
            .map(|fds| {
                fds.flatten()
                    .any(|f| std::fs::read_link(f.path()).is_ok_and(|l| l == lock))
            })
            .unwrap_or(false);
        let comm = std::fs::read_to_string(format!("/proc/{p}/comm")).unwrap_or_default();
        if holds && comm.trim() == "moat-supervise" {
            // SAFETY: plain kill of a process found above.
            unsafe { libc::kill(p, libc::SIGKILL) };
            killed += 1;
        }
    }
    assert_eq!(killed, 1, "the supervisor of moat-run pid {pid}");
    // SAFETY: plain kill of the child.
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    let _ = child.wait();
    std::thread::sleep(Duration::from_millis(200));
    assert!(root.exists(), "nobody removes it after SIGKILL");

    // Older than a minute: the next sandbox in the same place removes it.
    let old = std::time::SystemTime::now() - Duration::from_secs(120);
    let f = std::fs::File::options().write(true).open(&lock).unwrap();
    f.set_modified(old).unwrap();
    let mut c = s.moat();
    c.args(["run", "--private-tmp", "--", "true"]);
    assert_eq!(output(c).code, 0);
    assert!(!root.exists(), "{} still there", root.display());
}

#[test]
fn explain_removes_it_too() {
    let s = Scratch::new();
    let r = s.run(&[
        "run",
        "--explain",
        "--private-tmp",
        "--",
        "sh",
        "-c",
        "echo $TMPDIR; touch $TMPDIR/x",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let tmp = r.lines()[0].to_string();
    assert!(wait_gone(&root_of(&tmp)), "{tmp} left behind");
}
