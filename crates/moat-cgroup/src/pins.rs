//! One container's programs and maps: loaded, attached to its cgroup, pinned under
//! `<bpffs>/moat/<container id>/`, read back by the exporter and removed at delete.
//!
//! Pins: `info` (an array of one JSON value: the container, its cgroup and its Kubernetes
//! names; bpffs holds no regular files), `traffic` and `other` (the counters), `denied`
//! (refusals per UDP operation), and each program under its hook's name. Programs are
//! attached with `BPF_PROG_ATTACH` (allow-multi), so the cgroup holds them: they keep
//! counting and deciding as long as the cgroup lives, whatever happens to the pins, and
//! they go away with the cgroup when the runtime deletes it.

use crate::programs::{self, Direction, UdpRules, COUNTER_SIZE, OPERATIONS, TRAFFIC_ENTRIES};
use crate::sys::{self, AttachType, MapType, ProgType};
use crate::Error;
use serde::{Deserialize, Serialize};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

/// Where bpffs is mounted (and mounted by moat-runtime when it is not).
pub const BPFFS: &str = "/sys/fs/bpf";
/// moat's directory in it.
pub const DEFAULT_ROOT: &str = "/sys/fs/bpf/moat";
/// Size of the `info` value.
const INFO_SIZE: u32 = 4096;

/// What moat records about a container beside its maps.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Info {
    /// The runtime's container id.
    pub container_id: String,
    /// Its cgroup v2 directory: when it no longer exists, the container is gone.
    pub cgroup: PathBuf,
    /// Kubernetes namespace, from the CRI annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Pod name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    /// Container name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
}

/// The pin directory of container `id` under `root`; ids that could climb out are refused.
pub fn dir(root: &Path, id: &str) -> Result<PathBuf, Error> {
    let ok = !id.is_empty()
        && id != "."
        && id != ".."
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_+-.".contains(&b));
    if !ok {
        return Err(Error::BadId(id.to_string()));
    }
    Ok(root.join(id))
}

/// Makes sure bpffs is mounted at [`BPFFS`], mounting it when it is not.
pub fn ensure_bpffs() -> Result<(), Error> {
    let path = PathBuf::from(BPFFS);
    let fail = |source| Error::Bpffs {
        path: path.clone(),
        source,
    };
    match sys::is_bpffs(&path) {
        Ok(true) => return Ok(()),
        Ok(false) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(&path).map_err(fail)?
        }
        Err(e) => return Err(fail(e)),
    }
    sys::mount_bpffs(&path).map_err(fail)
}

/// A container being set up: its pin directory and its open cgroup.
pub struct Setup {
    dir: PathBuf,
    cgroup_path: PathBuf,
    cgroup: OwnedFd,
}

fn map(kind: MapType, key: u32, value: u32, entries: u32, name: &str) -> Result<OwnedFd, Error> {
    let flags = match kind {
        MapType::PercpuHash => sys::F_NO_PREALLOC,
        MapType::Array | MapType::PercpuArray => 0,
    };
    sys::map_create(kind, key, value, entries, flags, name).map_err(|source| Error::Map {
        what: name.to_string(),
        source,
    })
}

fn pin(fd: &OwnedFd, path: PathBuf) -> Result<(), Error> {
    sys::obj_pin(fd, &path).map_err(|source| Error::Pin { path, source })
}

impl Setup {
    /// Prepares container `info.container_id`: creates its cgroup directory (runc uses an
    /// existing one, so the programs are in place before the first process runs), replaces
    /// any pins left by an earlier container of the same id, and records `info`.
    pub fn begin(root: &Path, info: &Info) -> Result<Setup, Error> {
        let dir = dir(root, &info.container_id)?;
        remove(&dir)?;
        std::fs::create_dir_all(&dir).map_err(|source| Error::Pin {
            path: dir.clone(),
            source,
        })?;
        std::fs::create_dir_all(&info.cgroup).map_err(|source| Error::Io {
            what: format!("create cgroup `{}`", info.cgroup.display()),
            source,
        })?;
        let cgroup = std::fs::File::open(&info.cgroup)
            .map(OwnedFd::from)
            .map_err(|source| Error::Io {
                what: format!("open cgroup `{}`", info.cgroup.display()),
                source,
            })?;
        let text = serde_json::to_vec(info).map_err(|e| Error::Info {
            path: dir.join("info"),
            message: e.to_string(),
        })?;
        if text.len() > INFO_SIZE as usize {
            return Err(Error::Info {
                path: dir.join("info"),
                message: format!("longer than {INFO_SIZE} bytes"),
            });
        }
        let m = map(MapType::Array, 4, INFO_SIZE, 1, "moat_info")?;
        let mut value = vec![0u8; INFO_SIZE as usize];
        value[..text.len()].copy_from_slice(&text);
        sys::map_update(&m, &0u32.to_ne_bytes(), &value).map_err(|source| Error::Map {
            what: "moat_info".into(),
            source,
        })?;
        pin(&m, dir.join("info"))?;
        Ok(Setup {
            dir,
            cgroup_path: info.cgroup.clone(),
            cgroup,
        })
    }

    fn load_attach(
        &self,
        kind: ProgType,
        hook: AttachType,
        insns: &[crate::insn::Insn],
        name: &str,
    ) -> Result<(), Error> {
        let prog =
            sys::prog_load(kind, hook, insns, name).map_err(|(source, log)| Error::Load {
                what: name.to_string(),
                source,
                log,
            })?;
        sys::prog_attach(&self.cgroup, &prog, hook).map_err(|source| Error::Attach {
            what: name.to_string(),
            cgroup: self.cgroup_path.clone(),
            source,
        })?;
        pin(&prog, self.dir.join(name))
    }

    /// Counts the container's traffic.
    pub fn counters(&self) -> Result<(), Error> {
        let traffic = map(
            MapType::PercpuHash,
            4,
            COUNTER_SIZE,
            TRAFFIC_ENTRIES,
            "moat_traffic",
        )?;
        let other = map(MapType::PercpuArray, 4, COUNTER_SIZE, 2, "moat_other")?;
        pin(&traffic, self.dir.join("traffic"))?;
        pin(&other, self.dir.join("other"))?;
        for (dir, hook, name) in [
            (Direction::Receive, AttachType::Ingress, "count_ingress"),
            (Direction::Transmit, AttachType::Egress, "count_egress"),
        ] {
            let p = programs::counter(dir, traffic.as_raw_fd(), other.as_raw_fd());
            self.load_attach(ProgType::CgroupSkb, hook, &p, name)?;
        }
        Ok(())
    }

    /// Enforces `rules` on the container's UDP sockets.
    pub fn udp(&self, rules: UdpRules) -> Result<(), Error> {
        let rules = rules.normalized();
        if rules.bind.len() > programs::MAX_RANGES || rules.connect.len() > programs::MAX_RANGES {
            return Err(Error::TooManyRanges);
        }
        let denied = map(MapType::Array, 4, 8, OPERATIONS.len() as u32, "moat_denied")?;
        pin(&denied, self.dir.join("denied"))?;
        for (slot, (hook, name)) in OPERATIONS.iter().enumerate() {
            let p = programs::udp_ports(*hook, slot as u32, &rules, denied.as_raw_fd());
            self.load_attach(ProgType::CgroupSockAddr, *hook, &p, &format!("udp_{name}"))?;
        }
        Ok(())
    }
}

/// Removes container pins (a missing directory is fine). The programs stay attached to
/// the cgroup while it exists.
pub fn remove(dir: &Path) -> Result<(), Error> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(Error::Pin {
            path: dir.to_path_buf(),
            source,
        }),
    }
}

/// Bytes and packets.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Count {
    /// Bytes (IP packets, headers included).
    pub bytes: u64,
    /// Packets.
    pub packets: u64,
}

impl Count {
    fn add_percpu(&mut self, value: &[u8]) {
        for cpu in value.chunks_exact(COUNTER_SIZE as usize) {
            let (b, p) = cpu.split_at(8);
            let n = |x: &[u8]| u64::from_ne_bytes(x.try_into().unwrap_or([0; 8]));
            self.bytes = self.bytes.wrapping_add(n(b));
            self.packets = self.packets.wrapping_add(n(p));
        }
    }
}

/// What one container's pins say.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// The container.
    pub info: Info,
    /// (direction, local port or `None` for "other", count).
    pub traffic: Vec<(Direction, Option<u16>, Count)>,
    /// Refusals per UDP operation name.
    pub denied: Vec<(&'static str, u64)>,
}

/// Opens the map pinned as `name` in `dir` (`None` when there is none), after checking it
/// has the shape this code reads: the kernel writes a whole value (per CPU, for per-CPU
/// maps) into a lookup's buffer, so a map pinned by another version of moat with larger
/// values must not be read with buffers sized for these.
fn open(dir: &Path, name: &str, shape: (MapType, u32, u32)) -> Result<Option<OwnedFd>, Error> {
    let path = dir.join(name);
    let fd = match sys::obj_get(&path) {
        Ok(fd) => fd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(Error::Pin { path, source }),
    };
    let found = sys::map_shape(&fd).map_err(|source| Error::Pin {
        path: path.clone(),
        source,
    })?;
    let want = (shape.0 as u32, shape.1, shape.2);
    if found != want {
        return Err(Error::Info {
            path,
            message: format!(
                "map of type {}, key {} and value {} bytes, where this moat writes type {}, \
                 key {} and value {} bytes (moat-runtime and moat-exporter of different versions?)",
                found.0, found.1, found.2, want.0, want.1, want.2
            ),
        });
    }
    Ok(Some(fd))
}

/// Reads the container description pinned in `dir`.
pub fn read_info(dir: &Path) -> Result<Info, Error> {
    let info_path = dir.join("info");
    let bad = |message: String| Error::Info {
        path: info_path.clone(),
        message,
    };
    let info_map =
        open(dir, "info", (MapType::Array, 4, INFO_SIZE))?.ok_or_else(|| bad("missing".into()))?;
    let mut value = vec![0u8; INFO_SIZE as usize];
    sys::map_lookup(&info_map, &0u32.to_ne_bytes(), &mut value).map_err(lookup_err("info"))?;
    let end = value.iter().position(|&b| b == 0).unwrap_or(value.len());
    serde_json::from_slice(&value[..end]).map_err(|e| bad(e.to_string()))
}

fn lookup_err(what: &str) -> impl FnOnce(std::io::Error) -> Error {
    let what = what.to_string();
    move |source| Error::Map { what, source }
}

/// Reads the pins of one container directory.
pub fn read(dir: &Path, cpus: sys::PossibleCpus) -> Result<Snapshot, Error> {
    let mut snap = Snapshot {
        info: read_info(dir)?,
        ..Snapshot::default()
    };
    let percpu = vec![0u8; COUNTER_SIZE as usize * cpus.count()];
    if let Some(traffic) = open(dir, "traffic", (MapType::PercpuHash, 4, COUNTER_SIZE))? {
        let mut key = [0u8; 4];
        let mut prev: Option<[u8; 4]> = None;
        while sys::map_next_key(&traffic, prev.as_ref().map(|k| &k[..]), &mut key)
            .map_err(lookup_err("traffic"))?
        {
            let mut v = percpu.clone();
            if sys::map_lookup(&traffic, &key, &mut v).map_err(lookup_err("traffic"))? {
                let k = u32::from_ne_bytes(key);
                let dir = if k >> 16 == 0 {
                    Direction::Receive
                } else {
                    Direction::Transmit
                };
                let mut c = Count::default();
                c.add_percpu(&v);
                snap.traffic.push((dir, Some(k as u16), c));
            }
            prev = Some(key);
        }
    }
    if let Some(other) = open(dir, "other", (MapType::PercpuArray, 4, COUNTER_SIZE))? {
        for (i, d) in [Direction::Receive, Direction::Transmit]
            .into_iter()
            .enumerate()
        {
            let mut v = percpu.clone();
            if sys::map_lookup(&other, &(i as u32).to_ne_bytes(), &mut v)
                .map_err(lookup_err("other"))?
            {
                let mut c = Count::default();
                c.add_percpu(&v);
                snap.traffic.push((d, None, c));
            }
        }
    }
    if let Some(denied) = open(dir, "denied", (MapType::Array, 4, 8))? {
        for (i, (_, name)) in OPERATIONS.iter().enumerate() {
            let mut v = [0u8; 8];
            if sys::map_lookup(&denied, &(i as u32).to_ne_bytes(), &mut v)
                .map_err(lookup_err("denied"))?
            {
                snap.denied.push((name, u64::from_ne_bytes(v)));
            }
        }
    }
    Ok(snap)
}

/// Reads every container under `root`, removing the pins of containers whose cgroup no
/// longer exists (the runtime deleted them without moat-runtime's `delete`); cgroups are
/// looked for under `host` (`/`, or where the host's root is mounted in the exporter's
/// container). A directory that cannot be read is reported and skipped.
pub fn scan(root: &Path, host: &Path, cpus: sys::PossibleCpus) -> (Vec<Snapshot>, Vec<Error>) {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    let entries = match std::fs::read_dir(root) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return (out, errors),
        Err(source) => {
            errors.push(Error::Io {
                what: format!("list `{}`", root.display()),
                source,
            });
            return (out, errors);
        }
    };
    for e in entries.flatten() {
        let dir = e.path();
        match read(&dir, cpus) {
            Ok(s)
                if !host
                    .join(s.info.cgroup.strip_prefix("/").unwrap_or(&s.info.cgroup))
                    .exists() =>
            {
                if let Err(e) = remove(&dir) {
                    errors.push(e);
                }
            }
            Ok(s) => out.push(s),
            Err(e) => errors.push(e),
        }
    }
    out.sort_by(|a, b| a.info.container_id.cmp(&b.info.container_id));
    (out, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_cannot_climb() {
        let r = Path::new("/sys/fs/bpf/moat");
        assert_eq!(dir(r, "abc-1.2").unwrap(), r.join("abc-1.2"));
        for bad in ["", ".", "..", "a/b", "../x", "a b"] {
            assert!(dir(r, bad).is_err(), "{bad}");
        }
    }
}
