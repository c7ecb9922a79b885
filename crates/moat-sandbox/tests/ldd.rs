//! Tests of `moat_sandbox::ldd` against the real system: binaries on this machine,
//! programs built here with `cc`, scripts, and malformed files. Where `ldd` exists, the
//! results are compared with its output (running `ldd` from a test is fine; the library
//! itself never runs anything).

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use moat_sandbox::ldd::{dependencies, Dependencies, LddError, LddOptions};

/// A directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("moat-ldd-test-{}-{n}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.0.join(rel)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn canon(p: impl AsRef<Path>) -> PathBuf {
    std::fs::canonicalize(p.as_ref())
        .unwrap_or_else(|e| panic!("canonicalize {}: {e}", p.as_ref().display()))
}

fn deps(p: impl AsRef<Path>) -> Dependencies {
    let p = p.as_ref();
    dependencies(p, &LddOptions::default())
        .unwrap_or_else(|e| panic!("dependencies({}): {e}", p.display()))
}

fn has_tool(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn lib_names(d: &Dependencies) -> BTreeSet<String> {
    d.libraries
        .iter()
        .filter_map(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .collect()
}

fn write_exec(path: &Path, text: &str) {
    std::fs::write(path, text).expect("write script");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

/// Compiles C `source` with `cc` and `args`; `None` (test skipped) without a compiler.
fn cc(dir: &TempDir, source: &str, out: &str, args: &[&str]) -> Option<PathBuf> {
    if !has_tool("cc") {
        eprintln!("no cc: skipping");
        return None;
    }
    let src = dir.path(&format!("{out}.c"));
    std::fs::write(&src, source).expect("write C source");
    let out = dir.path(out);
    let status = Command::new("cc")
        .arg(&src)
        .arg("-o")
        .arg(&out)
        .args(args)
        .status()
        .expect("run cc");
    assert!(status.success(), "cc failed for {}", out.display());
    Some(out)
}

/// What `ldd` reports, canonicalised: every file it maps (libraries and ld.so) and the
/// names it could not find.
struct LddReport {
    files: BTreeSet<PathBuf>,
    missing: BTreeSet<String>,
}

fn run_ldd(program: &Path, library_path: Option<&OsStr>) -> Option<LddReport> {
    let mut cmd = Command::new("ldd");
    cmd.arg(program).env_remove("LD_LIBRARY_PATH");
    if let Some(lp) = library_path {
        cmd.env("LD_LIBRARY_PATH", lp);
    }
    let out = cmd.output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut report = LddReport {
        files: BTreeSet::new(),
        missing: BTreeSet::new(),
    };
    for line in text.lines() {
        let line = line.trim();
        if let Some((name, rest)) = line.split_once(" => ") {
            if rest.trim() == "not found" {
                report.missing.insert(name.to_owned());
            } else if let Some((path, _)) = rest.rsplit_once(" (") {
                if !path.is_empty() {
                    report.files.insert(canon(path));
                }
            }
        } else if let Some((path, _)) = line.rsplit_once(" (") {
            // ld.so, or a DT_NEEDED given as a path; a bare name is the vDSO.
            if path.contains('/') {
                report.files.insert(canon(path));
            }
        }
    }
    Some(report)
}

/// Checks `dependencies` against `ldd` for one ELF program.
fn compare_with_ldd(program: &Path, opts: &LddOptions, library_path: Option<&OsStr>) {
    // ldd runs `ld.so --list PATH`, where $ORIGIN of the program comes from PATH as
    // given; a real exec takes it from /proc/self/exe, the canonical path (e.g. for
    // /usr/bin/jar -> /etc/alternatives/jar -> .../jvm/.../bin/jar with RPATH $ORIGIN).
    let Some(mut expected) = run_ldd(&canon(program), library_path) else {
        eprintln!("ldd gave nothing for {}: skipped", program.display());
        return;
    };
    let got = dependencies(program, opts)
        .unwrap_or_else(|e| panic!("dependencies({}): {e}", program.display()));
    // ldd lists ld.so among the libraries; we list it as the interpreter.
    if let Some(interp) = got.interpreters.last() {
        assert!(
            expected.files.remove(interp),
            "ldd does not list the interpreter {} of {}",
            interp.display(),
            program.display()
        );
        assert!(!got.libraries.contains(interp), "ld.so twice: {got:#?}");
    }
    let got_libs: BTreeSet<PathBuf> = got.libraries.iter().cloned().collect();
    assert_eq!(got_libs.len(), got.libraries.len(), "duplicates: {got:#?}");
    assert_eq!(
        got_libs,
        expected.files,
        "libraries of {}",
        program.display()
    );
    let got_missing: BTreeSet<String> = got.unresolved.iter().cloned().collect();
    assert_eq!(
        got_missing,
        expected.missing,
        "unresolved of {}",
        program.display()
    );
}

fn is_elf(path: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && &magic == b"\x7fELF"
}

#[test]
fn bin_ls_resolves() {
    let d = deps("/bin/ls");
    assert_eq!(d.program, canon("/bin/ls"));
    assert_eq!(d.interpreters, vec![canon("/lib64/ld-linux-x86-64.so.2")]);
    let names = lib_names(&d);
    assert!(names.contains("libc.so.6"), "{d:#?}");
    assert!(names.contains("libselinux.so.1"), "{d:#?}");
    assert!(d.unresolved.is_empty(), "{d:#?}");
    // ld.so is the interpreter, not also a library.
    assert!(!d.libraries.contains(&d.interpreters[0]));
    for lib in &d.libraries {
        assert!(lib.is_absolute() && lib.is_file(), "{}", lib.display());
        assert_eq!(&canon(lib), lib);
    }
}

#[test]
fn python3_resolves() {
    let mut pythons = vec![PathBuf::from("/usr/bin/python3")];
    if let Ok(entries) = std::fs::read_dir("/root/.pyenv/versions") {
        for e in entries.flatten() {
            pythons.push(e.path().join("bin/python3"));
            pythons.push(e.path().join("bin/python"));
        }
    }
    let mut checked = 0;
    for py in pythons.iter().filter(|p| p.exists()) {
        let d = deps(py);
        if is_elf(&canon(py)) {
            assert!(!d.interpreters.is_empty(), "{}: {d:#?}", py.display());
            assert!(d.unresolved.is_empty(), "{}: {d:#?}", py.display());
        }
        checked += 1;
    }
    assert!(checked > 0, "no python3 found");
}

#[test]
fn matches_ldd_for_system_binaries() {
    if !has_tool("ldd") {
        eprintln!("no ldd: skipping");
        return;
    }
    let mut programs: Vec<PathBuf> = [
        "/bin/ls",
        "/bin/bash",
        "/bin/sh",
        "/usr/bin/python3",
        "/usr/bin/git",
        "/usr/bin/ssh",
        "/usr/bin/curl",
        "/usr/bin/perl",
        "/usr/bin/openssl",
        "/usr/bin/gcc",
        "/usr/bin/gpg",
        "/usr/bin/tar",
    ]
    .iter()
    .map(PathBuf::from)
    .collect();
    if let Ok(entries) = std::fs::read_dir("/root/.pyenv/versions") {
        programs.extend(entries.flatten().map(|e| e.path().join("bin/python3")));
    }
    for program in programs.iter().filter(|p| p.exists() && is_elf(p)) {
        compare_with_ldd(program, &LddOptions::default(), None);
    }
}

/// Every ELF executable in /usr/bin (or the `:`-separated directories in
/// `MOAT_LDD_TEST_DIRS`) against `ldd`: slow, so opt-in.
#[test]
fn matches_ldd_for_all_of_usr_bin() {
    let dirs = std::env::var_os("MOAT_LDD_TEST_DIRS").unwrap_or_else(|| "/usr/bin".into());
    let mut entries: Vec<PathBuf> = std::env::split_paths(&dirs)
        .filter_map(|d| std::fs::read_dir(d).ok())
        .flat_map(|rd| rd.flatten().map(|e| e.path()))
        .filter(|p| p.is_file() && is_elf(p))
        .collect();
    entries.sort();
    let mut checked = 0;
    for program in entries {
        // Files without PT_INTERP (shared libraries) are only compared when
        // MOAT_LDD_TEST_LIBS is set.
        let Ok(d) = dependencies(&program, &LddOptions::default()) else {
            continue;
        };
        if d.interpreters.is_empty() && std::env::var_os("MOAT_LDD_TEST_LIBS").is_none() {
            continue;
        }
        compare_with_ldd(&program, &LddOptions::default(), None);
        checked += 1;
    }
    eprintln!("{checked} programs matched ldd");
}

#[test]
fn static_binary_has_no_dependencies() {
    let dir = TempDir::new("static");
    let main = "int main(void) { return 0; }\n";
    let Some(exe) = cc(&dir, main, "static", &["-static"]) else {
        return;
    };
    let d = deps(&exe);
    assert_eq!(d.program, canon(&exe));
    assert!(d.interpreters.is_empty(), "{d:#?}");
    assert!(d.libraries.is_empty(), "{d:#?}");
    assert!(d.unresolved.is_empty(), "{d:#?}");
    if let Some(exe) = cc(&dir, main, "static-pie", &["-static-pie"]) {
        let d = deps(&exe);
        assert!(
            d.interpreters.is_empty() && d.libraries.is_empty(),
            "{d:#?}"
        );
    }
}

#[test]
fn shell_script_reports_its_interpreter() {
    let dir = TempDir::new("script");
    let script = dir.path("hello.sh");
    write_exec(&script, "#!/bin/sh\necho hello\n");
    let d = deps(&script);
    assert_eq!(d.program, canon(&script));
    assert_eq!(d.interpreters[0], canon("/bin/sh"));
    // /bin/sh (dash) is itself dynamically linked: its ld.so and libc come along.
    assert_eq!(
        d.interpreters.get(1),
        Some(&canon("/lib64/ld-linux-x86-64.so.2"))
    );
    assert!(lib_names(&d).contains("libc.so.6"), "{d:#?}");

    // Arguments and blanks on the #! line.
    let with_args = dir.path("args.sh");
    write_exec(&with_args, "#!  /bin/sh -eu\nexit 0\n");
    assert_eq!(deps(&with_args).interpreters[0], canon("/bin/sh"));

    // A script whose interpreter is another script.
    let nested = dir.path("nested");
    write_exec(&nested, &format!("#!{}\n", script.display()));
    let d = deps(&nested);
    assert_eq!(d.interpreters[0], canon(&script));
    assert_eq!(d.interpreters[1], canon("/bin/sh"));

    // A loop of scripts ends in an error.
    let a = dir.path("a");
    let b = dir.path("b");
    write_exec(&a, &format!("#!{}\n", b.display()));
    write_exec(&b, &format!("#!{}\n", a.display()));
    assert!(matches!(
        dependencies(&a, &LddOptions::default()),
        Err(LddError::ScriptTooDeep { .. })
    ));

    // Missing interpreter, empty #! line.
    let missing = dir.path("missing.sh");
    write_exec(&missing, "#!/nonexistent/interp\n");
    assert!(matches!(
        dependencies(&missing, &LddOptions::default()),
        Err(LddError::Io { .. })
    ));
    let empty = dir.path("empty.sh");
    write_exec(&empty, "#!\n");
    assert!(matches!(
        dependencies(&empty, &LddOptions::default()),
        Err(LddError::BadScript { .. })
    ));
}

#[test]
fn malformed_programs_are_errors() {
    let dir = TempDir::new("malformed");
    let opts = LddOptions::default();
    let ls = std::fs::read("/bin/ls").expect("read /bin/ls");

    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("garbage", b"this is not an executable at all\n".to_vec()),
        ("binary-garbage", (0..=255u8).cycle().take(10_000).collect()),
        ("magic-only", b"\x7fELF".to_vec()),
        ("header-only", ls[..64].to_vec()),
        ("truncated-phdrs", ls[..100].to_vec()),
        ("truncated-4k", ls[..4096].to_vec()),
        ("truncated-half", ls[..ls.len() / 2].to_vec()),
    ];
    for (name, bytes) in cases {
        let path = dir.path(name);
        std::fs::write(&path, &bytes).expect("write case");
        let r = dependencies(&path, &opts);
        assert!(r.is_err(), "{name}: {r:?}");
    }

    // Huge e_phnum / bogus offsets in an otherwise valid header.
    let mut huge_phnum = ls.clone();
    huge_phnum[56..58].copy_from_slice(&u16::MAX.to_le_bytes());
    let mut far_phoff = ls.clone();
    far_phoff[32..40].copy_from_slice(&(u64::MAX - 8).to_le_bytes());
    let mut bad_phentsize = ls.clone();
    bad_phentsize[54..56].copy_from_slice(&7u16.to_le_bytes());
    let mut relocatable = ls.clone();
    relocatable[16..18].copy_from_slice(&1u16.to_le_bytes());
    for (name, bytes) in [
        ("huge-phnum", huge_phnum),
        ("far-phoff", far_phoff),
        ("bad-phentsize", bad_phentsize),
        ("relocatable", relocatable),
    ] {
        let path = dir.path(name);
        std::fs::write(&path, &bytes).expect("write case");
        let r = dependencies(&path, &opts);
        assert!(r.is_err(), "{name}: {r:?}");
    }

    assert!(matches!(
        dependencies(Path::new("/nonexistent/program"), &opts),
        Err(LddError::Io { .. })
    ));
    assert!(dependencies(Path::new("/"), &opts).is_err());
    assert!(dependencies(Path::new("/dev/null"), &opts).is_err());
    // A FIFO must be refused, not block the caller.
    let fifo = dir.path("fifo");
    if Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .is_ok_and(|s| s.success())
    {
        assert!(dependencies(&fifo, &opts).is_err());
    }
}

const LIB_SRC: &str = "int which(void) { return WHICH; }\n";
const MAIN_SRC: &str = "int which(void);\nint main(void) { return which(); }\n";

/// Builds `dir/<sub>/libwhich.so` returning `which`.
fn build_lib(dir: &TempDir, sub: &str, which: u32, extra: &[&str]) -> Option<PathBuf> {
    std::fs::create_dir_all(dir.path(sub)).expect("mkdir");
    let define = format!("-DWHICH={which}");
    let mut args = vec!["-shared", "-fPIC", define.as_str()];
    args.extend_from_slice(extra);
    cc(dir, LIB_SRC, &format!("{sub}/libwhich.so"), &args)
}

#[test]
fn rpath_runpath_and_library_path_order() {
    let dir = TempDir::new("paths");
    let Some(lib_a) = build_lib(&dir, "a", 1, &[]) else {
        return;
    };
    let lib_b = build_lib(&dir, "b", 2, &[]).expect("lib b");
    let a = dir.path("a");
    let b = dir.path("b");
    let link = |name: &str, flags: &[&str]| {
        let mut args = vec![
            "-L".to_owned(),
            a.display().to_string(),
            "-lwhich".to_owned(),
        ];
        args.extend(flags.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        cc(&dir, MAIN_SRC, name, &args).expect("link")
    };
    let rpath_exe = link(
        "rpath",
        &["-Wl,--disable-new-dtags", "-Wl,-rpath,$ORIGIN/a"],
    );
    let runpath_exe = link(
        "runpath",
        &["-Wl,--enable-new-dtags", "-Wl,-rpath,$ORIGIN/a"],
    );
    let bare_exe = link("bare", &[]);

    let with_lp = LddOptions {
        library_path: vec![b.clone()],
        ..LddOptions::default()
    };
    // DT_RPATH comes before LD_LIBRARY_PATH.
    let d = dependencies(&rpath_exe, &with_lp).expect("rpath");
    assert!(d.libraries.contains(&canon(&lib_a)), "{d:#?}");
    assert!(!d.libraries.contains(&canon(&lib_b)), "{d:#?}");
    // LD_LIBRARY_PATH comes before DT_RUNPATH.
    let d = dependencies(&runpath_exe, &with_lp).expect("runpath");
    assert!(d.libraries.contains(&canon(&lib_b)), "{d:#?}");
    assert!(!d.libraries.contains(&canon(&lib_a)), "{d:#?}");
    // Without LD_LIBRARY_PATH, $ORIGIN/a is used by both.
    for exe in [&rpath_exe, &runpath_exe] {
        assert!(deps(exe).libraries.contains(&canon(&lib_a)));
    }
    // No search path at all: unresolved.
    let d = deps(&bare_exe);
    assert_eq!(d.unresolved, vec!["libwhich.so".to_owned()], "{d:#?}");
    let d = dependencies(&bare_exe, &with_lp).expect("bare with LD_LIBRARY_PATH");
    assert!(d.libraries.contains(&canon(&lib_b)) && d.unresolved.is_empty());

    if has_tool("ldd") {
        for exe in [&rpath_exe, &runpath_exe, &bare_exe] {
            compare_with_ldd(exe, &LddOptions::default(), None);
            compare_with_ldd(exe, &with_lp, Some(b.as_os_str()));
        }
    }
}

#[test]
fn wrong_machine_library_is_skipped() {
    let dir = TempDir::new("machine");
    let Some(_) = build_lib(&dir, "good", 1, &[]) else {
        return;
    };
    // A copy claiming to be AArch64, first on the search path.
    std::fs::create_dir_all(dir.path("bad")).expect("mkdir");
    let mut bytes = std::fs::read(dir.path("good/libwhich.so")).expect("read lib");
    bytes[18..20].copy_from_slice(&183u16.to_le_bytes());
    std::fs::write(dir.path("bad/libwhich.so"), &bytes).expect("write bad lib");
    // And a garbage file with the right name, second.
    std::fs::create_dir_all(dir.path("junk")).expect("mkdir");
    std::fs::write(dir.path("junk/libwhich.so"), b"junk").expect("write junk");
    let good = dir.path("good");
    let exe = cc(
        &dir,
        MAIN_SRC,
        "exe",
        &["-L", &good.display().to_string(), "-lwhich"],
    )
    .expect("link");
    let opts = LddOptions {
        library_path: vec![dir.path("bad"), dir.path("junk"), good.clone()],
        ..LddOptions::default()
    };
    let d = dependencies(&exe, &opts).expect("deps");
    assert!(
        d.libraries.contains(&canon(good.join("libwhich.so"))),
        "{d:#?}"
    );
    assert!(d.unresolved.is_empty());
    if has_tool("ldd") {
        // ld.so stops at a non-ELF candidate ("file too short") where this module skips
        // it, so the comparison leaves the junk directory out.
        let opts = LddOptions {
            library_path: vec![dir.path("bad"), good.clone()],
            ..LddOptions::default()
        };
        let lp = std::env::join_paths(&opts.library_path).expect("join");
        compare_with_ldd(&exe, &opts, Some(&lp));
    }
}

#[test]
fn library_cycles_and_transitive_rpath() {
    let dir = TempDir::new("cycle");
    // libx needs liby and liby needs libx; the program finds both through its RPATH,
    // which (being DT_RPATH) also serves the libraries' own lookups.
    let src_x = "int y(void);\nint x(void) { return y() + 1; }\n";
    let src_y = "int x(void);\nint y(void) { return x != 0; }\n";
    let shared = ["-shared", "-fPIC", "-Wl,--no-as-needed"];
    let Some(_) = cc(&dir, src_x, "libx.so", &shared) else {
        return;
    };
    let d = dir.0.display().to_string();
    let with = |lib: &'static str| {
        let mut v: Vec<String> = shared.iter().map(|s| s.to_string()).collect();
        v.extend(["-L".to_owned(), d.clone(), lib.to_owned()]);
        v
    };
    let args_y = with("-lx");
    let args_y: Vec<&str> = args_y.iter().map(String::as_str).collect();
    cc(&dir, src_y, "liby.so", &args_y).expect("liby");
    let args_x = with("-ly");
    let args_x: Vec<&str> = args_x.iter().map(String::as_str).collect();
    cc(&dir, src_x, "libx.so", &args_x).expect("libx");
    std::fs::create_dir_all(dir.path("bin")).expect("mkdir");
    let main = "int x(void);\nint main(void) { return x(); }\n";
    let rpath_link = format!("-Wl,-rpath-link,{d}");
    let exe = cc(
        &dir,
        main,
        "bin/prog",
        &[
            "-L",
            &d,
            "-lx",
            &rpath_link,
            "-Wl,--disable-new-dtags",
            "-Wl,-rpath,${ORIGIN}/..",
        ],
    )
    .expect("link");
    let deps = deps(&exe);
    assert_eq!(
        lib_names(&deps),
        ["libc.so.6", "libx.so", "liby.so"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    );
    assert!(deps.unresolved.is_empty(), "{deps:#?}");
    if has_tool("ldd") {
        compare_with_ldd(&exe, &LddOptions::default(), None);
    }
}

#[test]
fn needed_with_a_slash_is_a_path() {
    let dir = TempDir::new("slash");
    let Some(lib) = build_lib(&dir, "l", 7, &[]) else {
        return;
    };
    // Linking against the file by path records the path in DT_NEEDED.
    let exe = cc(&dir, MAIN_SRC, "exe", &[&lib.display().to_string()]).expect("link");
    let d = deps(&exe);
    assert!(d.libraries.contains(&canon(&lib)), "{d:#?}");
    if has_tool("ldd") {
        compare_with_ldd(&exe, &LddOptions::default(), None);
    }
}

#[test]
fn root_prefix_is_honoured() {
    let dir = TempDir::new("root");
    // A tiny "sysroot": the real ld.so and libc, reached through symlinks inside it.
    let root = dir.path("root");
    let multi = root.join("usr/lib/x86_64-linux-gnu");
    std::fs::create_dir_all(&multi).expect("mkdir");
    std::fs::create_dir_all(root.join("usr/bin")).expect("mkdir");
    std::fs::create_dir_all(root.join("etc")).expect("mkdir");
    for name in ["ld-linux-x86-64.so.2", "libc.so.6"] {
        std::fs::copy(
            canon(Path::new("/lib/x86_64-linux-gnu").join(name)),
            multi.join(name),
        )
        .expect("copy lib");
    }
    std::os::unix::fs::symlink("usr/lib", root.join("lib")).expect("symlink");
    // An absolute symlink, which must be followed inside the root.
    std::fs::create_dir_all(root.join("lib64")).expect("mkdir");
    std::os::unix::fs::symlink(
        "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
        root.join("lib64/ld-linux-x86-64.so.2"),
    )
    .expect("symlink");
    let Some(exe) = cc(
        &dir,
        "int main(void){return 0;}\n",
        "root/usr/bin/prog",
        &[],
    ) else {
        return;
    };
    assert!(exe.starts_with(&root));
    let opts = LddOptions {
        root: Some(root.clone()),
        ..LddOptions::default()
    };
    let d = dependencies(Path::new("/usr/bin/prog"), &opts).expect("deps in root");
    assert_eq!(d.program, root.join("usr/bin/prog"));
    assert_eq!(d.interpreters, vec![multi.join("ld-linux-x86-64.so.2")]);
    assert_eq!(d.libraries, vec![multi.join("libc.so.6")]);
    assert!(d.unresolved.is_empty());
}
