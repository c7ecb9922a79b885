//! One container's programs and maps: attached to its cgroup, pinned under
//! `<bpffs>/moat/<container id>/`, read back by the exporter and removed at delete.
//!
//! Pins: `info` (an array of one JSON value: the container, its cgroup and its Kubernetes
//! names; bpffs holds no regular files), `traffic` (the counters), `denied` (refusals per
//! UDP operation), and each UDP program under its hook's name. The counting programs are
//! the node's, loaded once and pinned under `<bpffs>/moat/@node-<fingerprint>/` with the
//! map (`containers`) from each container's cgroup id to its `traffic` ([`Node`]).
//! Programs are attached with `BPF_PROG_ATTACH` (allow-multi), so the cgroup holds them:
//! they keep counting and deciding as long as the cgroup lives, whatever happens to the
//! pins, and they go away with the cgroup when the runtime deletes it.

use crate::programs::{
    self, Direction, UdpRules, CONTAINERS_ENTRIES, COUNTER_SIZE, OPERATIONS, TRAFFIC_ENTRIES,
    TRAFFIC_KEY_SIZE,
};
use crate::sys::{self, AttachType, MapType, ProgType};
use crate::Error;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Where bpffs is mounted (and mounted by moat-runtime when it is not).
pub const BPFFS: &str = "/sys/fs/bpf";
/// moat's directory in it.
pub const DEFAULT_ROOT: &str = "/sys/fs/bpf/moat";
/// The start of the name under which a container's pin directory holds the node's
/// `containers` map a second time, followed by the container's cgroup id in decimal: all
/// a forced `delete` needs to take the container out of the node's map without reading
/// anything (moat-runtime does it before libc starts).
pub const REGISTRY_PIN: &str = "registry-";
/// The registry pin's name for the container whose cgroup id is `id`.
fn registry_name(id: u64) -> String {
    format!("{REGISTRY_PIN}{id}")
}
/// Size of the `info` value.
const INFO_SIZE: u32 = 4096;

/// What moat records about a container beside its maps.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Info {
    /// The runtime's container id.
    pub container_id: String,
    /// Its cgroup v2 directory: when it no longer exists, the container is gone.
    pub cgroup: PathBuf,
    /// That cgroup's id (its inode number), the node map's key for the container; filled
    /// in by [`Setup::begin`].
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cgroup_id: u64,
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

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Names under the pin root that are not containers start with this (container ids
/// cannot, see [`dir`]).
const NODE_MARK: char = '@';

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
    root: PathBuf,
    dir: PathBuf,
    cgroup_path: PathBuf,
    cgroup: OwnedFd,
    cgroup_id: u64,
}

/// The node's counting programs and their maps, pinned once per node under
/// `<root>/@node-<fingerprint>/` (a moat with other programs uses other pins):
/// `containers` (a registered container's cgroup id -> the port pairs it has claimed)
/// and `traffic` (cgroup id, direction and port -> bytes and packets per CPU).
pub struct Node {
    containers: OwnedFd,
    traffic: OwnedFd,
    ingress: OwnedFd,
    egress: OwnedFd,
}

fn load(
    kind: ProgType,
    hook: AttachType,
    insns: &[crate::insn::Insn],
    name: &str,
) -> Result<OwnedFd, Error> {
    sys::prog_load(kind, hook, insns, name).map_err(|(source, log)| Error::Load {
        what: name.to_string(),
        source,
        log,
    })
}

impl Node {
    /// The node's pin directory under `root`.
    pub fn dir(root: &Path) -> PathBuf {
        root.join(format!(
            "{NODE_MARK}node-{:016x}",
            programs::node_fingerprint()
        ))
    }

    /// Opens the node's pins under `root`, loading and pinning them first when no moat
    /// has done so yet.
    pub fn open_or_create(root: &Path) -> Result<Node, Error> {
        let dir = Node::dir(root);
        if let Some(node) = Node::open(&dir)? {
            return Ok(node);
        }
        // Built aside and renamed into place: of two starts racing, one set is published
        // and the other removed, and a crash leaves no half set under the real name.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let tmp = root.join(format!("{NODE_MARK}new-{}-{nanos}", std::process::id()));
        let built = Node::build(&tmp);
        let published = built.and_then(|progs| match std::fs::rename(&tmp, &dir) {
            Ok(()) => {
                // Only the published set is held (best effort: without the holder,
                // starts are only slower).
                if let Some(holder) = Node::holder(root) {
                    for (prog, hook) in &progs {
                        let _ = sys::prog_attach(&holder, prog, *hook);
                    }
                }
                Ok(())
            }
            // Another start published first: use its set.
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOTEMPTY | libc::EEXIST)) => Ok(()),
            Err(source) => Err(Error::Pin {
                path: dir.clone(),
                source,
            }),
        });
        let _ = std::fs::remove_dir_all(&tmp);
        published?;
        Node::open(&dir)?.ok_or_else(|| Error::Pin {
            path: dir.join("containers"),
            source: std::io::ErrorKind::NotFound.into(),
        })
    }

    /// Loads and pins the maps and programs in `dir`; returns the programs and their hooks.
    fn build(dir: &Path) -> Result<Vec<(OwnedFd, AttachType)>, Error> {
        std::fs::create_dir_all(dir).map_err(|source| Error::Pin {
            path: dir.to_path_buf(),
            source,
        })?;
        let containers = map(MapType::Hash, 8, 8, CONTAINERS_ENTRIES, "moat_containers")?;
        let traffic = map(
            MapType::PercpuHash,
            TRAFFIC_KEY_SIZE,
            COUNTER_SIZE,
            TRAFFIC_ENTRIES,
            "moat_traffic",
        )?;
        pin(&containers, dir.join("containers"))?;
        pin(&traffic, dir.join("traffic"))?;
        let mut progs = Vec::new();
        for (d, hook, name) in [
            (Direction::Receive, AttachType::Ingress, "count_ingress"),
            (Direction::Transmit, AttachType::Egress, "count_egress"),
        ] {
            let insns = programs::counter(d, containers.as_raw_fd(), traffic.as_raw_fd());
            let prog = load(ProgType::CgroupSkb, hook, &insns, name)?;
            pin(&prog, dir.join(name))?;
            progs.push((prog, hook));
        }
        Ok(progs)
    }

    /// An empty cgroup that holds the node's programs, `<cgroup2>/<root name>.holder`
    /// (`moat.holder` for moat-runtime's pins).
    ///
    /// Why: the kernel runs cgroup-bpf hooks behind a static branch that is switched on
    /// while any program of the kind is attached anywhere, and switching it (patching
    /// kernel text on every CPU) took about 0.5 ms of a container's start and again of
    /// its release on this project's 2-vCPU VM whenever no other container with counters
    /// was running (docs/PERFORMANCE.md, cgroup-bpf). Left on, the cost is one check per
    /// packet of sockets in cgroups without programs. Nothing runs in the holder, so the
    /// programs count nothing there; `rmdir` of it is how they are let go.
    fn holder(root: &Path) -> Option<OwnedFd> {
        let name = format!("{}.holder", root.file_name()?.to_str()?);
        let path = crate::cgroup::cgroup2_mount().ok()?.join(name);
        match std::fs::create_dir(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(_) => return None,
        }
        std::fs::File::open(&path).ok().map(OwnedFd::from)
    }

    fn open(dir: &Path) -> Result<Option<Node>, Error> {
        let Some(containers) = Node::get(dir, "containers")? else {
            return Ok(None);
        };
        let need = |name: &str| {
            Node::get(dir, name)?.ok_or_else(|| Error::Pin {
                path: dir.join(name),
                source: std::io::ErrorKind::NotFound.into(),
            })
        };
        Ok(Some(Node {
            containers,
            traffic: need("traffic")?,
            ingress: need("count_ingress")?,
            egress: need("count_egress")?,
        }))
    }

    fn get(dir: &Path, name: &str) -> Result<Option<OwnedFd>, Error> {
        let path = dir.join(name);
        match sys::obj_get(&path) {
            Ok(fd) => Ok(Some(fd)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(Error::Pin { path, source }),
        }
    }

    /// Registers the container whose cgroup id is `id`: its entry first, then its two
    /// "other" keys (so that [`Node::prune`], which keeps the keys of registered
    /// containers, never takes them), all before any program runs for it.
    fn register(&self, id: u64, cpus_at_most: usize) -> Result<(), Error> {
        sys::map_update(&self.containers, &id.to_ne_bytes(), &0u64.to_ne_bytes())
            .map_err(lookup_err("moat_containers"))?;
        // An update reads one slot per possible CPU: a buffer with at least that many.
        let zero = vec![0u8; COUNTER_SIZE as usize * cpus_at_most];
        for d in [Direction::Receive, Direction::Transmit] {
            let key = programs::traffic_key(id, programs::other_key(d));
            sys::map_update(&self.traffic, &key, &zero).map_err(lookup_err("moat_traffic"))?;
        }
        Ok(())
    }

    /// Takes the container whose cgroup id is `id` out of the map it was registered in:
    /// the one its pin directory `pins` holds under its registry name (as the forced
    /// delete before libc does), else, for pins made before registry pins, this node's
    /// `containers` under `root` (nothing to do when it is not there, or the node has no
    /// pins); its counters go at the next [`Node::prune`].
    fn forget(root: &Path, pins: &Path, id: u64) -> Result<(), Error> {
        let registered_in = match Node::get(pins, &registry_name(id))? {
            Some(map) => Some(map),
            None => Node::get(&Node::dir(root), "containers")?,
        };
        let Some(containers) = registered_in else {
            return Ok(());
        };
        sys::map_delete(&containers, &id.to_ne_bytes())
            .map(drop)
            .map_err(lookup_err("moat_containers"))
    }

    /// Every registered container's counters by cgroup id; the counters of containers no
    /// longer registered are removed on the way.
    fn read_and_prune(&self, cpus: sys::PossibleCpus) -> Result<Counters, Error> {
        let mut out: Counters = HashMap::new();
        let mut gone: Vec<[u8; TRAFFIC_KEY_SIZE as usize]> = Vec::new();
        let mut registered: HashMap<u64, bool> = HashMap::new();
        let percpu = vec![0u8; COUNTER_SIZE as usize * cpus.count()];
        let mut key = [0u8; TRAFFIC_KEY_SIZE as usize];
        let mut prev: Option<[u8; TRAFFIC_KEY_SIZE as usize]> = None;
        while sys::map_next_key(&self.traffic, prev.as_ref().map(|k| &k[..]), &mut key)
            .map_err(lookup_err("moat_traffic"))?
        {
            prev = Some(key);
            let (id, dir, port) = programs::parse_traffic_key(&key);
            let is_registered = match registered.get(&id) {
                Some(r) => *r,
                None => {
                    let mut v = [0u8; 8];
                    let r = sys::map_lookup(&self.containers, &id.to_ne_bytes(), &mut v)
                        .map_err(lookup_err("moat_containers"))?;
                    registered.insert(id, r);
                    r
                }
            };
            if !is_registered {
                gone.push(key);
                continue;
            }
            let mut v = percpu.clone();
            if sys::map_lookup(&self.traffic, &key, &mut v).map_err(lookup_err("moat_traffic"))? {
                let mut c = Count::default();
                c.add_percpu(&v);
                out.entry(id).or_default().push((dir, port, c));
            }
        }
        // A key is taken out only if its container is still not registered now: one
        // registered since the lookup above keeps what it has inserted.
        for key in gone {
            let (id, ..) = programs::parse_traffic_key(&key);
            let mut v = [0u8; 8];
            let now = sys::map_lookup(&self.containers, &id.to_ne_bytes(), &mut v)
                .map_err(lookup_err("moat_containers"))?;
            if !now {
                sys::map_delete(&self.traffic, &key).map_err(lookup_err("moat_traffic"))?;
            }
        }
        Ok(out)
    }

    /// Removes the counters of containers no longer registered.
    pub fn prune(&self, cpus: sys::PossibleCpus) -> Result<(), Error> {
        self.read_and_prune(cpus).map(drop)
    }
}

/// Counters by cgroup id: (direction, local port or `None` for "other", count).
type Counters = HashMap<u64, Vec<(Direction, Option<u16>, Count)>>;

fn map(kind: MapType, key: u32, value: u32, entries: u32, name: &str) -> Result<OwnedFd, Error> {
    let flags = match kind {
        MapType::Hash | MapType::PercpuHash => sys::F_NO_PREALLOC,
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
        let opened = std::fs::File::open(&info.cgroup).and_then(|f| {
            let id = f.metadata()?.ino();
            Ok((OwnedFd::from(f), id))
        });
        let (cgroup, cgroup_id) = opened.map_err(|source| Error::Io {
            what: format!("open cgroup `{}`", info.cgroup.display()),
            source,
        })?;
        let info = Info {
            cgroup_id,
            ..info.clone()
        };
        let text = serde_json::to_vec(&info).map_err(|e| Error::Info {
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
            root: root.to_path_buf(),
            dir,
            cgroup_path: info.cgroup.clone(),
            cgroup,
            cgroup_id,
        })
    }

    fn attach(&self, prog: &OwnedFd, hook: AttachType, name: &str) -> Result<(), Error> {
        match sys::prog_attach(&self.cgroup, prog, hook) {
            Ok(()) => Ok(()),
            // The kernel refuses a program attached twice to one cgroup. A cgroup that
            // outlived an earlier container of the same id (moat-runtime stopped between
            // its attach and the runtime, or a cgroup the runtime could not remove) may
            // hold the node's program already: that is what was asked for.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) && self.holds(prog, hook) => Ok(()),
            Err(source) => Err(Error::Attach {
                what: name.to_string(),
                cgroup: self.cgroup_path.clone(),
                source,
            }),
        }
    }

    /// Whether `prog` is attached to the container's cgroup at `hook` already.
    fn holds(&self, prog: &OwnedFd, hook: AttachType) -> bool {
        match (sys::prog_id(prog), sys::prog_ids(&self.cgroup, hook)) {
            (Ok(id), Ok(ids)) => ids.contains(&id),
            _ => false,
        }
    }

    /// Counts the container's traffic: registers its cgroup id with the node's programs
    /// and attaches them to its cgroup.
    pub fn counters(&self) -> Result<(), Error> {
        let cpu_error = |source| Error::Io {
            what: "count the possible CPUs".into(),
            source,
        };
        let cpus_at_most = sys::cpus_upper_bound().map_err(cpu_error)?;
        let node = Node::open_or_create(&self.root)?;
        match node.register(self.cgroup_id, cpus_at_most) {
            // Full of the counters of containers deleted while no exporter ran: prune once
            // (reading the counters needs the exact count).
            Err(Error::Map { source, .. }) if source.raw_os_error() == Some(libc::E2BIG) => {
                node.prune(sys::PossibleCpus::get().map_err(cpu_error)?)?;
                node.register(self.cgroup_id, cpus_at_most)?;
            }
            r => r?,
        }
        pin(
            &node.containers,
            self.dir.join(registry_name(self.cgroup_id)),
        )?;
        self.attach(&node.ingress, AttachType::Ingress, "count_ingress")?;
        self.attach(&node.egress, AttachType::Egress, "count_egress")
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
            let name = format!("udp_{name}");
            let prog = load(ProgType::CgroupSockAddr, *hook, &p, &name)?;
            self.attach(&prog, *hook, &name)?;
            pin(&prog, self.dir.join(name))?;
        }
        Ok(())
    }
}

/// Removes container pins (a missing directory is fine) and the container's entry in the
/// node map. The programs stay attached to the cgroup while it exists (and count nothing
/// more for it).
pub fn remove(dir: &Path) -> Result<(), Error> {
    // Almost always so at a start (a new id): one system call instead of four.
    if std::fs::symlink_metadata(dir).is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound) {
        return Ok(());
    }
    remove_read(dir, read_info(dir).ok().as_ref())
}

/// [`remove`], with the pins' description already read (`None`: it could not be).
pub fn remove_read(dir: &Path, info: Option<&Info>) -> Result<(), Error> {
    // The node map's entry first: pins left without an entry are found by the exporter's
    // scan and removed then, an entry left without pins would never be.
    if let (Some(info), Some(root)) = (info, dir.parent()) {
        if info.cgroup_id != 0 {
            Node::forget(root, dir, info.cgroup_id)?;
        }
    }
    let fail = |source| Error::Pin {
        path: dir.to_path_buf(),
        source,
    };
    // A pin directory holds only pins: each unlinked, then the directory. Half the
    // system calls of `remove_dir_all`, on the path of every counted container's delete;
    // anything else inside (a directory) is left to it.
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(fail(e)),
    };
    for entry in entries {
        let entry = entry.map_err(fail)?;
        match std::fs::remove_file(entry.path()) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(_) => return std::fs::remove_dir_all(dir).map_err(fail),
        }
    }
    match std::fs::remove_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(_) => std::fs::remove_dir_all(dir).map_err(fail),
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

/// Reads the pins of one container directory and its counters in the node's maps.
pub fn read(dir: &Path, cpus: sys::PossibleCpus) -> Result<Snapshot, Error> {
    let node = node_counters(dir.parent(), cpus)?;
    read_with(dir, cpus, &node)
}

/// The counters in the node's maps under `root` (none when there is no node yet).
fn node_counters(root: Option<&Path>, cpus: sys::PossibleCpus) -> Result<Counters, Error> {
    let node = match root {
        Some(root) => Node::open(&Node::dir(root))?,
        None => None,
    };
    node.map_or_else(|| Ok(HashMap::new()), |n| n.read_and_prune(cpus))
}

fn read_with(dir: &Path, cpus: sys::PossibleCpus, node: &Counters) -> Result<Snapshot, Error> {
    let mut snap = Snapshot {
        info: read_info(dir)?,
        ..Snapshot::default()
    };
    if snap.info.cgroup_id != 0 {
        if let Some(t) = node.get(&snap.info.cgroup_id) {
            snap.traffic.extend_from_slice(t);
        }
    }
    let percpu = vec![0u8; COUNTER_SIZE as usize * cpus.count()];
    // Pins of a container started by a moat before the node programs: its own traffic
    // map (direction and port keys) and "other" in a map of its own.
    if let Some(traffic) = open(dir, "traffic", (MapType::PercpuHash, 4, COUNTER_SIZE))? {
        let mut key = [0u8; 4];
        let mut prev: Option<[u8; 4]> = None;
        while sys::map_next_key(&traffic, prev.as_ref().map(|k| &k[..]), &mut key)
            .map_err(lookup_err("traffic"))?
        {
            let mut v = percpu.clone();
            if sys::map_lookup(&traffic, &key, &mut v).map_err(lookup_err("traffic"))? {
                let (dir, port) = programs::parse_key(u32::from_ne_bytes(key));
                let mut c = Count::default();
                c.add_percpu(&v);
                snap.traffic.push((dir, port, c));
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
    let node = node_counters(Some(root), cpus).unwrap_or_else(|e| {
        errors.push(e);
        HashMap::new()
    });
    for e in entries.flatten() {
        if e.file_name().as_encoded_bytes().first() == Some(&(NODE_MARK as u8)) {
            continue;
        }
        let dir = e.path();
        match read_with(&dir, cpus, &node) {
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
