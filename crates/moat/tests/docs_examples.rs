//! Every `moat` command shown in README.md and docs/ that needs no cluster runs as written
//! (in a scratch directory with the files the examples name): a flag renamed or a
//! subcommand changed fails here, not for the reader. `moat run` examples are checked with
//! `moat check` and the same words, which builds and plans the same policy on this kernel
//! without starting servers, builds or the programs the examples only stand for.

mod common;

use common::*;
use std::path::Path;

/// The `moat ...` lines of the shell blocks of a Markdown file, comments removed, with
/// their line numbers.
fn examples(file: &Path) -> Vec<(usize, String)> {
    let text = std::fs::read_to_string(file).unwrap();
    let mut out = Vec::new();
    let mut shell = false;
    for (i, line) in text.lines().enumerate() {
        if let Some(lang) = line.strip_prefix("```") {
            shell = !shell && matches!(lang.trim(), "sh" | "bash" | "shell");
            continue;
        }
        let line = line.trim();
        let line = line.strip_prefix("sudo ").unwrap_or(line);
        if !shell || !line.starts_with("moat ") {
            continue;
        }
        // A comment starts at ` #` in these examples (none has `#` inside quotes).
        let command = line.split(" # ").next().unwrap_or(line).trim_end();
        out.push((i + 1, command.to_string()));
    }
    out
}

#[test]
fn every_example_in_the_docs_runs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut files = vec![root.join("README.md")];
    let mut docs: Vec<_> = std::fs::read_dir(root.join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    files.extend(docs);

    let s = Scratch::new();
    // What the examples name.
    let policy =
        "[filesystem]\nread_exec = [\"/usr\", \"/lib\", \"/lib64\", \"/bin\"]\nread = [\"/etc\"]\n";
    for name in ["app.toml", "policy.toml", "a.toml", "b.toml"] {
        s.write(name, policy);
    }
    s.write(
        "app.json",
        "{\"ruleset\": [{\"handledAccessFs\": [\"v1.all\"]}], \"pathBeneath\": [{\"allowedAccess\": [\"v1.read_execute\"], \"parent\": [\"/usr\"]}]}\n",
    );
    s.write("app", "#!/bin/sh\nexit 0\n");
    std::fs::set_permissions(
        s.path("app"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    s.write("app.py", "print('hello')\n");
    s.mkdir("home/.ssh");
    // For `moat install-landrun-link ~/bin` (docs/compatibility.md).
    s.mkdir("home/bin");
    // Programs the examples only stand for, where this machine may lack them.
    s.mkdir("stand-ins");
    for name in ["nginx", "psql", "make"] {
        let path = s.write(&format!("stand-ins/{name}"), "#!/bin/sh\nexit 0\n");
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
    }
    s.mkdir("man1");
    let bin = moat_bin();
    let bin_dir = bin.parent().unwrap().display().to_string();

    let mut ran = 0;
    for file in &files {
        let shown = file
            .strip_prefix(&root)
            .unwrap_or(file)
            .display()
            .to_string();
        for (line, command) in examples(file) {
            // Companion binaries (webhook, k8s, watchdog) are tested in their crates.
            if ["moat webhook", "moat k8s", "moat watchdog"]
                .iter()
                .any(|c| command.starts_with(c))
            {
                continue;
            }
            let script = command
                .replacen("moat run ", "moat check ", 1)
                // How the command runs, not what the policy is: check has no such flag.
                .replacen(" --explain", "", 1)
                .replace("/etc/bash_completion.d/moat", "moat.bash")
                .replace("/usr/local/share/man/man1", "man1");
            let mut c = std::process::Command::new("/bin/sh");
            c.args(["-c", &script])
                .current_dir(s.dir.path())
                .env("HOME", s.path("home"))
                .env(
                    "PATH",
                    format!(
                        "{bin_dir}:{}:{}",
                        std::env::var("PATH").unwrap_or_default(),
                        s.p("stand-ins")
                    ),
                );
            let r = output(c);
            assert_eq!(
                r.code, 0,
                "{shown}:{line}: `{command}` (as `{script}`):\n{}{}",
                r.stdout, r.stderr
            );
            ran += 1;
        }
    }
    // The README's tour alone has more than a dozen.
    assert!(ran > 20, "only {ran} examples found");
}
