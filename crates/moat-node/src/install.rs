//! The procedure: `install` and `uninstall`, each one transaction over the node's files.
//!
//! install: (1) read the node's effective containerd configuration and work out the edit;
//! (2) copy the binaries and write moat-runtime's configuration; (3) write the containerd
//! edit, then prove it: `config dump` must show every old setting unchanged plus the
//! `moat` handler, and a second containerd started on it (own root, state and sockets)
//! must load the CRI plugin; (4) the CRI-O drop-in, checked by `crio config`; (5) restart
//! what changed and wait until it serves the CRI plugin again. Any failure puts every file
//! back (and restarts the runtime again if it had been restarted). Nothing changed means
//! nothing restarted.

use crate::containerd::{self, Containerd};
use crate::containerd_config::{self as cfg, Layout, HANDLER};
use crate::files::Transaction;
use crate::host::Host;
use crate::runtime_file::{self, BINARIES};
use crate::{crio, NodeError};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

/// Which container runtime(s) to configure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtimes {
    /// Whatever is on the node.
    Auto,
    /// containerd only.
    Containerd,
    /// CRI-O only.
    Crio,
}

/// How the node's container runtime is restarted after its configuration changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Restart {
    /// `systemctl restart <service>` on the host.
    Systemd,
    /// This shell command (run with `sh -c`, `MOAT_RESTART_SERVICE` naming the service).
    Command(String),
    /// Not at all: the operator restarts it (the new handler works from then on).
    Skip,
}

/// Everything the procedure needs. Paths are the node's (host paths).
#[derive(Debug, Clone)]
pub struct Settings {
    /// The node's root.
    pub host: Host,
    /// Which runtimes to configure.
    pub runtimes: Runtimes,
    /// containerd's main configuration file.
    pub containerd_config: PathBuf,
    /// The CRI-O drop-in moat-node owns.
    pub crio_dropin: PathBuf,
    /// Where the binaries go.
    pub bin_dir: PathBuf,
    /// Where the binaries come from (a path of this process, not the host's).
    pub from: PathBuf,
    /// moat-runtime's configuration file.
    pub moat_config: PathBuf,
    /// The real runtime moat-runtime hands containers to; found on the node when unset.
    pub runc: Option<PathBuf>,
    /// `without_policy` in moat-runtime's configuration.
    pub without_policy: crate::runtime_file::WithoutPolicy,
    /// moat-node's own directory (journal, lock, trial runs).
    pub work_dir: PathBuf,
    /// How to restart the runtime.
    pub restart: Restart,
    /// How long a restarted runtime has to come back.
    pub timeout: Duration,
    /// `uninstall`: leave the binaries (running containers' shims still call moat-runtime
    /// to stop them).
    pub keep_binaries: bool,
}

fn say(line: impl AsRef<str>) {
    println!("moat-node: {}", line.as_ref());
}

/// A prepared containerd change: the file, its new text, and what to prove it against.
struct ContainerdChange<'h> {
    cd: Containerd<'h>,
    old: toml::Table,
    file: PathBuf,
    text: Option<String>,
    binary: String,
    address: String,
    base_binary: Option<String>,
}

/// Works out the containerd edit without writing anything.
fn plan_containerd<'h>(s: &'h Settings, install: bool) -> Result<ContainerdChange<'h>, NodeError> {
    let cd = Containerd::detect(&s.host, s.containerd_config.clone())?;
    say(format!(
        "containerd {} (config {})",
        cd.version,
        s.containerd_config.display()
    ));
    let (_, old) = cd.dump()?;
    let eff = containerd::effective(&old)?;
    let binary = s.bin_dir.join("moat-runtime").display().to_string();
    let files = cd.load_order()?;
    let mut owner = if install {
        cd.owner(files)?
    } else {
        match cd.moat_owner(files) {
            Some(o) => o,
            None => {
                return Ok(ContainerdChange {
                    address: eff.address.clone(),
                    base_binary: eff.base_binary(),
                    cd,
                    old,
                    file: s.containerd_config.clone(),
                    text: None,
                    binary,
                })
            }
        }
    };
    let file = owner.file.path.clone();
    let before = owner.file.doc.to_string();
    let doc = &mut owner.file.doc;
    if install {
        if !owner.file.exists {
            doc.insert(
                "version",
                toml_edit::value(if owner.layout == Layout::V3 { 3 } else { 2 }),
            );
        }
        // containerd 1.x replaces its built-in runtimes with the file's: a file that
        // relied on the default runc must name it, or the CRI plugin fails to load.
        let names_runc = cfg::runtimes(doc, owner.layout).is_some_and(|r| r.contains_key("runc"));
        if cd.major == 1 && !names_runc {
            if let Some(runc) = eff.runtimes.get("runc").and_then(toml::Value::as_table) {
                cfg::set_runtime(doc, owner.layout, "runc", cfg::explicit_runc(runc), &file)?;
            }
        }
        let base = eff.base_runtime().map(|(_, t)| t);
        cfg::set_runtime(
            doc,
            owner.layout,
            HANDLER,
            cfg::moat_entry(base, &binary),
            &file,
        )?;
    } else {
        cfg::remove_runtime(doc, owner.layout, HANDLER, false);
        cfg::remove_runtime(doc, owner.layout, "runc", true);
    }
    let after = doc.to_string();
    Ok(ContainerdChange {
        address: eff.address.clone(),
        base_binary: eff.base_binary(),
        cd,
        old,
        file,
        text: (after != before || !owner.file.exists).then_some(after),
        binary,
    })
}

impl ContainerdChange<'_> {
    /// Proves the configuration now on disk: the dump shows every old setting plus (or
    /// minus) the handler, and a trial containerd loads the CRI plugin.
    fn prove(&self, install: bool, work: &Path) -> Result<(), NodeError> {
        let (text, new) = self.cd.dump()?;
        let problems = if install {
            cfg::check_install(&self.old, &new, &self.binary)
        } else {
            cfg::check_uninstall(&self.old, &new)
        };
        if !problems.is_empty() {
            return Err(NodeError::Verify(problems));
        }
        say("containerd config dump: every setting of the node kept");
        self.cd.trial(&text, work)?;
        say("a trial containerd on the new configuration loaded the CRI plugin");
        Ok(())
    }
}

/// Holds moat-node's lock for the run: two installers at once would interleave their
/// transactions.
struct Lock {
    _file: std::fs::File,
}

fn lock(dir: &Path) -> Result<Lock, NodeError> {
    let path = dir.join("lock");
    let io = |source| crate::files::FileError {
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(|source| crate::files::FileError {
        path: dir.to_path_buf(),
        source,
    })?;
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io)?;
    // SAFETY: flock on a descriptor we own.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(NodeError::File(io(std::io::Error::last_os_error())));
    }
    Ok(Lock { _file: f })
}

/// The real runtime for moat-runtime's configuration: as given, else the binary the
/// node's runc handler names, else `runc` on the host's `PATH`.
fn node_runc(s: &Settings, from_handler: Option<String>) -> Result<String, NodeError> {
    if let Some(r) = &s.runc {
        return Ok(r.display().to_string());
    }
    if let Some(b) = from_handler {
        if b.starts_with('/') {
            return Ok(b);
        }
        if let Some(p) = s.host.find_program(&b) {
            return Ok(p.display().to_string());
        }
    }
    let crio_runc = PathBuf::from("/usr/libexec/crio/runc");
    if let Some(f) = s
        .host
        .find_program("runc")
        .or_else(|| crate::host::is_executable(&s.host.path(&crio_runc)).then_some(crio_runc))
    {
        return Ok(f.display().to_string());
    }
    Err(NodeError::Refused(
        "no runc on this node (looked on the host's PATH and in /usr/libexec/crio); name it with --runc".into(),
    ))
}

fn restart(s: &Settings, service: &str) -> Result<(), NodeError> {
    let status = match &s.restart {
        Restart::Skip => return Ok(()),
        Restart::Systemd => {
            if s.host.find_program("systemctl").is_none() {
                return Err(NodeError::Restart(format!(
                    "no systemctl on this node: restart {service} with --restart-command, or --no-restart and by hand"
                )));
            }
            s.host
                .command("systemctl")
                .args(["restart", service])
                .stdin(Stdio::null())
                .status()
        }
        Restart::Command(c) => std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(c)
            .env("MOAT_RESTART_SERVICE", service)
            .env("MOAT_HOST_ROOT", s.host.root())
            .stdin(Stdio::null())
            .status(),
    };
    match status {
        Ok(st) if st.success() => {
            say(format!("restarted {service}"));
            Ok(())
        }
        Ok(st) => Err(NodeError::Restart(format!("restarting {service}: {st}"))),
        Err(e) => Err(NodeError::Restart(format!("restarting {service}: {e}"))),
    }
}

/// Waits for the restarted runtime. containerd: its socket answers with the CRI plugin
/// loaded. CRI-O: its socket is back.
fn wait_ready(
    s: &Settings,
    change: Option<&ContainerdChange>,
    service: &str,
) -> Result<(), NodeError> {
    if s.restart == Restart::Skip {
        return Ok(());
    }
    match (service, change) {
        ("containerd", Some(c)) => {
            c.cd.wait_ready(Path::new(&c.address), s.timeout)
                .map_err(NodeError::Restart)
        }
        _ => {
            let sock = s.host.path(Path::new("/var/run/crio/crio.sock"));
            let deadline = std::time::Instant::now() + s.timeout;
            while std::time::Instant::now() < deadline {
                if std::os::unix::net::UnixStream::connect(&sock).is_ok() {
                    return Ok(());
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(NodeError::Restart(format!(
                "CRI-O did not answer on {} within {:?}",
                sock.display(),
                s.timeout
            )))
        }
    }
}

/// What a run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Files written or removed.
    pub changed: bool,
    /// Services restarted.
    pub restarted: Vec<String>,
}

/// Installs (or with `install = false`, uninstalls) moat on the node.
pub fn run(s: &Settings, install: bool) -> Result<Outcome, NodeError> {
    let work = s.host.path(&s.work_dir);
    let _lock = lock(&work)?;
    let (mut tx, restored) = Transaction::begin(work.join("journal"))?;
    for r in restored {
        say(format!(
            "restored {} from a run that did not finish",
            r.display()
        ));
    }
    let (want_containerd, want_crio) = match s.runtimes {
        Runtimes::Auto => (
            s.host.find_program("containerd").is_some(),
            crio::present(&s.host),
        ),
        Runtimes::Containerd => (true, false),
        Runtimes::Crio => (false, true),
    };
    if want_crio && s.runtimes == Runtimes::Crio && !crio::present(&s.host) {
        return Err(NodeError::Refused(
            "CRI-O is not on this node (no crio on its PATH, no /etc/crio)".into(),
        ));
    }
    if !want_containerd && !want_crio {
        return Err(NodeError::Refused(
            "neither containerd nor CRI-O is on this node".into(),
        ));
    }
    let change = if want_containerd {
        Some(plan_containerd(s, install)?)
    } else {
        None
    };
    let result = apply(s, install, &mut tx, change.as_ref());
    match result {
        Ok(restarted) => {
            let changed = tx.changed();
            tx.commit()?;
            if !changed {
                say("already as wanted, nothing changed");
            } else if s.restart == Restart::Skip && !restarted.is_empty() {
                say(format!(
                    "done; restart {} on this node to {} the runtime handler moat",
                    restarted.join(" and "),
                    if install { "enable" } else { "remove" }
                ));
            }
            Ok(Outcome {
                changed,
                restarted: if s.restart == Restart::Skip {
                    Vec::new()
                } else {
                    restarted
                },
            })
        }
        Err((e, restarted)) => {
            let rolled = tx.rollback();
            say("put every file back as it was");
            for service in &restarted {
                if restart(s, service).is_ok() {
                    let _ = wait_ready(s, change.as_ref(), service);
                }
            }
            rolled?;
            Err(e)
        }
    }
}

/// The changes, in order; on failure, the error and the services already restarted.
fn apply(
    s: &Settings,
    install: bool,
    tx: &mut Transaction,
    change: Option<&ContainerdChange>,
) -> Result<Vec<String>, (NodeError, Vec<String>)> {
    let fail = |e: NodeError| (e, Vec::new());
    let mut services = Vec::new();
    if install {
        for b in BINARIES {
            let src = s.from.join(b);
            let bytes = std::fs::read(&src).map_err(|source| {
                fail(NodeError::File(crate::files::FileError {
                    path: src.clone(),
                    source,
                }))
            })?;
            if tx
                .write(&s.host.path(&s.bin_dir.join(b)), &bytes, 0o755)
                .map_err(|e| fail(e.into()))?
            {
                say(format!("installed {}", s.bin_dir.join(b).display()));
            }
        }
        let runc = node_runc(s, change.and_then(|c| c.base_binary.clone())).map_err(fail)?;
        let text = runtime_file::runtime_toml(
            &runc,
            &s.bin_dir.join("moat").display().to_string(),
            s.without_policy,
        );
        if tx
            .write(&s.host.path(&s.moat_config), text.as_bytes(), 0o644)
            .map_err(|e| fail(e.into()))?
        {
            say(format!(
                "wrote {} (runtime {runc})",
                s.moat_config.display()
            ));
        }
    }
    if let Some(c) = change {
        if let Some(text) = &c.text {
            tx.write(&s.host.path(&c.file), text.as_bytes(), 0o644)
                .map_err(|e| fail(e.into()))?;
            say(format!(
                "{} the runtime handler moat in {}",
                if install { "registered" } else { "removed" },
                c.file.display()
            ));
            c.prove(install, &s.work_dir).map_err(fail)?;
            services.push("containerd".to_string());
        }
    }
    if matches!(s.runtimes, Runtimes::Auto | Runtimes::Crio) && crio::present(&s.host) {
        let target = s.host.path(&s.crio_dropin);
        let changed = if install {
            let text = crio::dropin(&s.bin_dir.join("moat-runtime"));
            tx.write(&target, text.as_bytes(), 0o644)
        } else {
            tx.remove(&target)
        }
        .map_err(|e| fail(e.into()))?;
        if changed {
            crio::check(&s.host).map_err(fail)?;
            say(format!(
                "{} {}",
                if install { "wrote" } else { "removed" },
                s.crio_dropin.display()
            ));
            services.push("crio".to_string());
        }
    }
    let mut restarted = Vec::new();
    for service in &services {
        if s.restart == Restart::Skip {
            restarted.push(service.clone());
            continue;
        }
        restart(s, service).map_err(|e| (e, restarted.clone()))?;
        restarted.push(service.clone());
        wait_ready(s, change, service).map_err(|e| (e, restarted.clone()))?;
    }
    if !install {
        let config = s.host.path(&s.moat_config);
        let ours =
            std::fs::read_to_string(&config).is_ok_and(|t| t.starts_with(runtime_file::HEADER));
        if ours
            && tx
                .remove(&config)
                .map_err(|e| (e.into(), restarted.clone()))?
        {
            say(format!("removed {}", s.moat_config.display()));
        }
        if !s.keep_binaries {
            for b in BINARIES {
                let p = s.bin_dir.join(b);
                if tx
                    .remove(&s.host.path(&p))
                    .map_err(|e| (e.into(), restarted.clone()))?
                {
                    say(format!("removed {}", p.display()));
                }
            }
        }
    }
    Ok(restarted)
}
