//! containerd's configuration, as data: where the CRI plugin's runtimes live in each
//! config version, the `moat` runtime entry derived from the node's own runc entry, the
//! edit of the file that owns the CRI section, the trial configuration, and the check that
//! every setting of the node survived. Pure functions; `containerd` runs them
//! against the node.
//!
//! Facts this rests on (containerd's `LoadConfig`/`mergeConfig`, v1.6.20, v1.7.x, v2.x):
//! - containerd 1.x merges an imported file by replacing each plugin section it defines
//!   whole, and decodes a plugin's section onto its defaults by replacing maps: a file
//!   that defines `containerd.runtimes.moat` alone loses the default `runc` runtime, and
//!   the CRI plugin then refuses to load (`default_runtime_name = "runc"` has no runtime).
//! - containerd 2.x merges imports deeply, and migrates each file to the newest version
//!   (3) before merging; version 3 keeps the runtimes under `io.containerd.cri.v1.runtime`.
//! - version 1 files (no `version` key, 1.x only) name plugins by their short id (`cri`).

use std::path::{Path, PathBuf};
use toml_edit::{Array, DocumentMut, Item, Table, TableLike, Value};

/// The annotations containerd must copy into a moat container's config.json: the policy
/// annotations of the pod, and the kubelet's container ports.
pub const POD_ANNOTATIONS: &[&str] = &["moat.dev/*", "container.moat.dev/*"];
/// See [`POD_ANNOTATIONS`].
pub const CONTAINER_ANNOTATIONS: &[&str] = &["io.kubernetes.container.ports"];

/// The name of the runtime handler moat registers.
pub const HANDLER: &str = "moat";

/// The shim every runc-compatible handler uses.
pub const RUNC_SHIM: &str = "io.containerd.runc.v2";

/// Written above the tables moat adds, so that `uninstall` finds what is its own.
pub const MARK: &str = "# moat-node:";

/// Why a configuration cannot be edited or judged.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Not TOML.
    #[error("{}: {message}", file.display())]
    Parse {
        /// The file (or the command whose output it is).
        file: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A key moat must go through holds something other than a table.
    #[error("{}: `{key}` is not a table; moat-node cannot add its runtime under it", file.display())]
    NotATable {
        /// The file.
        file: PathBuf,
        /// The dotted key.
        key: String,
    },
    /// A version containerd does not have.
    #[error("{}: config version {version} is not one containerd reads (1, 2 or 3)", file.display())]
    Version {
        /// The file.
        file: PathBuf,
        /// The version found.
        version: i64,
    },
    /// The node's effective configuration lacks something moat builds on.
    #[error("{0}")]
    Node(String),
}

/// A configuration file's version: where its CRI runtimes are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Version 1 (containerd 1.x): plugins by short id, `plugins.cri`.
    V1,
    /// Version 2 (containerd 1.x, read by 2.x): `plugins."io.containerd.grpc.v1.cri"`.
    V2,
    /// Version 3 (containerd 2.x): `plugins."io.containerd.cri.v1.runtime"`.
    V3,
}

impl Layout {
    /// The layout of config version `version` (0, no `version` key, is 1).
    pub fn from_version(version: i64, file: &Path) -> Result<Layout, ConfigError> {
        match version {
            0 | 1 => Ok(Layout::V1),
            2 => Ok(Layout::V2),
            3 => Ok(Layout::V3),
            _ => Err(ConfigError::Version {
                file: file.to_path_buf(),
                version,
            }),
        }
    }

    /// The key of the plugin holding `containerd.runtimes`.
    pub fn cri_plugin(self) -> &'static str {
        match self {
            Layout::V1 => "cri",
            Layout::V2 => "io.containerd.grpc.v1.cri",
            Layout::V3 => "io.containerd.cri.v1.runtime",
        }
    }

    /// The key path to the runtimes table.
    pub fn runtimes_path(self) -> [&'static str; 4] {
        ["plugins", self.cri_plugin(), "containerd", "runtimes"]
    }
}

/// The version a document declares (0 without a `version` key).
pub fn version_of(doc: &DocumentMut) -> i64 {
    doc.get("version")
        .and_then(Item::as_integer)
        .unwrap_or_default()
}

/// Parses a configuration file's text for editing.
pub fn parse(file: &Path, text: &str) -> Result<DocumentMut, ConfigError> {
    text.parse::<DocumentMut>().map_err(|e| ConfigError::Parse {
        file: file.to_path_buf(),
        message: e.to_string().trim_end().to_string(),
    })
}

/// Parses `containerd config dump` output (or any file) as plain data.
pub fn parse_data(file: &Path, text: &str) -> Result<toml::Table, ConfigError> {
    toml::from_str(text).map_err(|e| ConfigError::Parse {
        file: file.to_path_buf(),
        message: e.to_string().trim_end().to_string(),
    })
}

/// Whether a document defines the CRI plugin's section (`plugins.<cri>`), which in
/// containerd 1.x replaces the one of every file loaded before it.
pub fn defines_cri(doc: &DocumentMut, layout: Layout) -> bool {
    doc.get("plugins")
        .and_then(Item::as_table_like)
        .and_then(|p| p.get(layout.cri_plugin()))
        .is_some()
}

/// What the node's effective configuration (`containerd config dump`) says about its CRI
/// runtimes.
#[derive(Debug, Clone, PartialEq)]
pub struct Effective {
    /// The dump's version (2 from containerd 1.x, 3 from 2.x).
    pub version: i64,
    /// `default_runtime_name`.
    pub default_runtime: String,
    /// Every runtime, by name, as containerd decoded it.
    pub runtimes: toml::Table,
    /// The CRI plugin is in `disabled_plugins`.
    pub cri_disabled: bool,
    /// `grpc.address`: the socket the node's containerd serves.
    pub address: String,
}

impl Effective {
    /// Reads a dump.
    pub fn from_dump(dump: &toml::Table) -> Result<Effective, ConfigError> {
        let version = dump
            .get("version")
            .and_then(toml::Value::as_integer)
            .unwrap_or(2);
        let layout = if version >= 3 { Layout::V3 } else { Layout::V2 };
        let containerd = lookup(dump, &["plugins", layout.cri_plugin(), "containerd"])
            .and_then(toml::Value::as_table)
            .ok_or_else(|| {
                ConfigError::Node(format!(
                    "`containerd config dump` has no plugins.\"{}\".containerd section: is this containerd built without its CRI plugin?",
                    layout.cri_plugin()
                ))
            })?;
        let default_runtime = containerd
            .get("default_runtime_name")
            .and_then(toml::Value::as_str)
            .unwrap_or("runc")
            .to_string();
        let runtimes = containerd
            .get("runtimes")
            .and_then(toml::Value::as_table)
            .cloned()
            .unwrap_or_default();
        let cri_disabled = dump
            .get("disabled_plugins")
            .and_then(toml::Value::as_array)
            .is_some_and(|a| {
                a.iter().any(|p| {
                    matches!(
                        p.as_str(),
                        Some("io.containerd.grpc.v1.cri" | "cri" | "io.containerd.cri.v1.runtime")
                    )
                })
            });
        let address = lookup(dump, &["grpc", "address"])
            .and_then(toml::Value::as_str)
            .unwrap_or("/run/containerd/containerd.sock")
            .to_string();
        Ok(Effective {
            version,
            default_runtime,
            runtimes,
            cri_disabled,
            address,
        })
    }

    /// The runtime moat's handler copies its settings from: the default runtime when it is
    /// a runc shim (its cgroup driver, options and annotations are the node's choice for
    /// pods), else `runc`.
    pub fn base_runtime(&self) -> Option<(&str, &toml::Table)> {
        let runc_shim = |t: &toml::Table| {
            t.get("runtime_type").and_then(toml::Value::as_str) == Some(RUNC_SHIM)
        };
        let named = |n: &str| {
            self.runtimes
                .get(n)
                .and_then(toml::Value::as_table)
                .filter(|t| runc_shim(t))
        };
        if self.default_runtime != HANDLER {
            if let Some(t) = named(&self.default_runtime) {
                return self
                    .runtimes
                    .get_key_value(&self.default_runtime)
                    .map(|(k, _)| (k.as_str(), t));
            }
        }
        named("runc").map(|t| ("runc", t))
    }

    /// The real runtime binary the base runtime runs (`options.BinaryName`), if it names one.
    pub fn base_binary(&self) -> Option<String> {
        let (_, base) = self.base_runtime()?;
        lookup(base, &["options", "BinaryName"])
            .and_then(toml::Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    }
}

/// A value at a key path.
pub fn lookup<'a>(t: &'a toml::Table, path: &[&str]) -> Option<&'a toml::Value> {
    let (first, rest) = path.split_first()?;
    let v = t.get(*first)?;
    if rest.is_empty() {
        Some(v)
    } else {
        lookup(v.as_table()?, rest)
    }
}

/// Whether a decoded value is its type's zero (what containerd prints for unset fields).
fn is_zero(v: &toml::Value) -> bool {
    match v {
        toml::Value::String(s) => s.is_empty(),
        toml::Value::Integer(i) => *i == 0,
        toml::Value::Float(f) => *f == 0.0,
        toml::Value::Boolean(b) => !b,
        toml::Value::Array(a) => a.is_empty(),
        toml::Value::Table(t) => t.values().all(is_zero),
        toml::Value::Datetime(_) => false,
    }
}

fn edit_value(v: &toml::Value) -> Value {
    match v {
        toml::Value::String(s) => s.as_str().into(),
        toml::Value::Integer(i) => (*i).into(),
        toml::Value::Float(f) => (*f).into(),
        toml::Value::Boolean(b) => (*b).into(),
        toml::Value::Datetime(d) => d.to_string().into(),
        toml::Value::Array(a) => Value::Array(a.iter().map(edit_value).collect()),
        toml::Value::Table(t) => {
            let mut it = toml_edit::InlineTable::new();
            for (k, v) in t {
                it.insert(k, edit_value(v));
            }
            Value::InlineTable(it)
        }
    }
}

fn strings(list: impl IntoIterator<Item = String>) -> Array {
    list.into_iter().collect()
}

/// `base`'s list at `key` with `extra` added (each once, base's order first).
fn union(base: &toml::Table, key: &str, extra: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = base
        .get(key)
        .and_then(toml::Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    for e in extra {
        if !out.iter().any(|o| o == e) {
            out.push((*e).to_string());
        }
    }
    out
}

/// The `moat` runtime entry: the base runtime's settings as containerd decoded them (its
/// non-zero fields and options: cgroup driver, snapshotter, base spec, privileged device
/// handling, CNI directory, ...), the runc shim, moat-runtime as the binary, and moat's
/// annotations added to the base's.
pub fn moat_entry(base: Option<&toml::Table>, binary: &str) -> Table {
    let empty = toml::Table::new();
    let base = base.unwrap_or(&empty);
    let mut t = Table::new();
    t.insert("runtime_type", Item::Value(RUNC_SHIM.into()));
    t.insert(
        "pod_annotations",
        Item::Value(Value::Array(strings(union(
            base,
            "pod_annotations",
            POD_ANNOTATIONS,
        )))),
    );
    t.insert(
        "container_annotations",
        Item::Value(Value::Array(strings(union(
            base,
            "container_annotations",
            CONTAINER_ANNOTATIONS,
        )))),
    );
    for (k, v) in base {
        let ours = matches!(
            k.as_str(),
            "runtime_type" | "pod_annotations" | "container_annotations" | "options"
        );
        // Fields of the long-gone v1 shim (`runtime_engine`, `runtime_root`) mean nothing
        // to the runc shim; copying them would only carry noise.
        let legacy = matches!(k.as_str(), "runtime_engine" | "runtime_root");
        if !ours && !legacy && !is_zero(v) {
            t.insert(k, Item::Value(edit_value(v)));
        }
    }
    let mut options = Table::new();
    options.insert("BinaryName", Item::Value(binary.into()));
    let base_options = base.get("options").and_then(toml::Value::as_table);
    let systemd = base_options
        .and_then(|o| o.get("SystemdCgroup"))
        .and_then(toml::Value::as_bool)
        .unwrap_or(false);
    options.insert("SystemdCgroup", Item::Value(systemd.into()));
    for (k, v) in base_options.into_iter().flatten() {
        if !matches!(k.as_str(), "BinaryName" | "SystemdCgroup") && !is_zero(v) {
            options.insert(k, Item::Value(edit_value(v)));
        }
    }
    t.insert("options", Item::Table(options));
    t.decor_mut().set_prefix(format!(
        "\n{MARK} the runtime handler `moat` (moat-runtime in front of runc), with the\n{MARK} settings of the node's own runc handler.\n"
    ));
    t
}

/// The default `runc` runtime made explicit, exactly as containerd decoded it (every
/// option, so that `config dump` shows the same runc before and after): containerd 1.x
/// drops its built-in runtimes as soon as the file names one.
pub fn explicit_runc(effective_runc: &toml::Table) -> Table {
    let mut t = Table::new();
    for (k, v) in effective_runc {
        if k == "options" {
            continue;
        }
        if k == "runtime_type" || !is_zero(v) {
            t.insert(k, Item::Value(edit_value(v)));
        }
    }
    let mut options = Table::new();
    for (k, v) in effective_runc
        .get("options")
        .and_then(toml::Value::as_table)
        .into_iter()
        .flatten()
    {
        options.insert(k, Item::Value(edit_value(v)));
    }
    t.insert("options", Item::Table(options));
    t.decor_mut().set_prefix(format!(
        "\n{MARK} containerd's default runc runtime, made explicit: naming any runtime\n{MARK} here replaces containerd's built-in ones (containerd 1.x).\n"
    ));
    t
}

/// The table at `path` under `root`, created (implicit, so no empty header is written)
/// where missing.
fn table_at<'a>(
    root: &'a mut dyn TableLike,
    path: &[&'static str],
    file: &Path,
    walked: &mut Vec<&'static str>,
) -> Result<&'a mut dyn TableLike, ConfigError> {
    let Some((first, rest)) = path.split_first() else {
        return Ok(root);
    };
    walked.push(first);
    let item = root.entry(first).or_insert_with(|| {
        let mut t = Table::new();
        t.set_implicit(true);
        Item::Table(t)
    });
    let not_table = || ConfigError::NotATable {
        file: file.to_path_buf(),
        key: walked.join("."),
    };
    let Some(t) = item.as_table_like_mut() else {
        return Err(not_table());
    };
    table_at(t, rest, file, walked)
}

/// The runtimes table of `doc`, if it has one.
pub fn runtimes(doc: &DocumentMut, layout: Layout) -> Option<&dyn TableLike> {
    let mut t: &dyn TableLike = doc.as_table();
    for k in layout.runtimes_path() {
        t = t.get(k)?.as_table_like()?;
    }
    Some(t)
}

/// Puts `entry` in as runtime `name` (replacing one of that name that holds other data),
/// inline when the runtimes table is inline. Returns whether the document changed.
pub fn set_runtime(
    doc: &mut DocumentMut,
    layout: Layout,
    name: &str,
    entry: Table,
    file: &Path,
) -> Result<bool, ConfigError> {
    let end = last_position(doc.as_table());
    let path = layout.runtimes_path();
    let (last, parents) = path.split_last().unwrap_or((&"runtimes", &[]));
    let mut walked = Vec::new();
    let parent = table_at(doc.as_table_mut(), parents, file, &mut walked)?;
    let runtimes = parent.entry(last).or_insert_with(|| {
        let mut t = Table::new();
        t.set_implicit(true);
        Item::Table(t)
    });
    let not_table = || ConfigError::NotATable {
        file: file.to_path_buf(),
        key: path.join("."),
    };
    // Unchanged data keeps its place and formatting.
    let same = runtimes
        .get(name)
        .and_then(Item::as_table_like)
        .is_some_and(|old| same_data(old, &entry));
    if same {
        return Ok(false);
    }
    match runtimes {
        Item::Table(t) => {
            let mut entry = entry;
            // At the end of the file: between two of the operator's tables it would
            // take the blank line and indentation that belong to the next one.
            entry.set_position(end + 1);
            t.insert(name, Item::Table(entry));
        }
        Item::Value(Value::InlineTable(t)) => {
            t.insert(name, Value::InlineTable(entry.into_inline_table()));
        }
        _ => return Err(not_table()),
    }
    Ok(true)
}

/// The highest position of any table in the document.
fn last_position(t: &Table) -> usize {
    t.iter()
        .filter_map(|(_, v)| v.as_table())
        .map(|sub| sub.position().unwrap_or(0).max(last_position(sub)))
        .max()
        .unwrap_or(0)
}

/// Whether two tables hold the same data (formatting aside).
fn same_data(a: &dyn TableLike, b: &Table) -> bool {
    let da: Option<toml::Value> = to_data(a);
    let db: Option<toml::Value> = to_data(b);
    da.is_some() && da == db
}

fn to_data(t: &dyn TableLike) -> Option<toml::Value> {
    let mut table = Table::new();
    for (k, v) in t.iter() {
        table.insert(k, v.clone());
    }
    let mut doc = DocumentMut::new();
    doc.insert("x", Item::Table(table));
    let data: toml::Table = toml::from_str(&doc.to_string()).ok()?;
    data.get("x").cloned()
}

/// Removes runtime `name` when its table carries moat's mark (or, for `moat`, always).
/// Returns whether anything was removed.
pub fn remove_runtime(
    doc: &mut DocumentMut,
    layout: Layout,
    name: &str,
    marked_only: bool,
) -> bool {
    let mut t: &mut dyn TableLike = doc.as_table_mut();
    for k in layout.runtimes_path() {
        let Some(next) = t.get_mut(k).and_then(Item::as_table_like_mut) else {
            return false;
        };
        t = next;
    }
    let marked = t
        .get(name)
        .and_then(Item::as_table)
        .and_then(|e| e.decor().prefix())
        .and_then(|p| p.as_str())
        .is_some_and(|p| p.contains(MARK));
    if marked_only && !marked {
        return false;
    }
    t.remove(name).is_some()
}

/// Where a trial containerd keeps everything of its own.
#[derive(Debug, Clone)]
pub struct TrialDirs {
    /// The directory all of it goes under (a path as containerd sees it).
    pub base: PathBuf,
}

impl TrialDirs {
    /// The trial's gRPC socket.
    pub fn socket(&self) -> PathBuf {
        self.base.join("containerd.sock")
    }
}

/// The configuration a trial containerd runs with: the node's effective configuration
/// (`containerd config dump` of the new file, imports already merged in) with everything
/// that would touch the node's running containerd moved into `dirs`: root, state, sockets
/// (gRPC, ttrpc, debug), every plugin's own `root_path`, the metrics and TCP listeners
/// turned off, the streaming server on a free loopback port, NRI off (its socket is a
/// fixed path, and it starts NRI plugins), the devmapper snapshotter off (it would open
/// the node's thin pool), and no cgroup or OOM score changes for itself. Everything the
/// CRI plugin validates (runtimes, CNI, registry, images) stays as the node has it.
pub fn trial_config(dump: &str, dirs: &TrialDirs) -> Result<String, ConfigError> {
    let file = Path::new("containerd config dump");
    let mut doc = parse(file, dump)?;
    let base = dirs.base.display().to_string();
    let at = |p: &str| format!("{base}/{p}");
    doc.remove("imports");
    doc["root"] = toml_edit::value(at("root"));
    doc["state"] = toml_edit::value(at("state"));
    doc["temp"] = toml_edit::value(at("tmp"));
    doc["oom_score"] = toml_edit::value(0);
    set(&mut doc, &["grpc", "address"], at("containerd.sock").into());
    set(&mut doc, &["grpc", "tcp_address"], "".into());
    set(
        &mut doc,
        &["ttrpc", "address"],
        at("containerd.sock.ttrpc").into(),
    );
    set(&mut doc, &["debug", "address"], at("debug.sock").into());
    set(&mut doc, &["metrics", "address"], "".into());
    set(&mut doc, &["cgroup", "path"], "".into());
    let devmapper = "io.containerd.snapshotter.v1.devmapper";
    let disabled = doc
        .entry("disabled_plugins")
        .or_insert(toml_edit::value(Array::new()));
    if let Some(a) = disabled.as_array_mut() {
        if !a.iter().any(|v| v.as_str() == Some(devmapper)) {
            a.push(devmapper);
        }
    }
    if let Some(a) = doc.get_mut("required_plugins").and_then(Item::as_array_mut) {
        a.retain(|v| v.as_str() != Some(devmapper));
    }
    if let Some(plugins) = doc.get_mut("plugins").and_then(Item::as_table_like_mut) {
        for (name, plugin) in plugins.iter_mut() {
            let name = name.get().to_string();
            let Some(plugin) = plugin.as_table_like_mut() else {
                continue;
            };
            if plugin
                .get("root_path")
                .and_then(Item::as_str)
                .is_some_and(|r| !r.is_empty())
            {
                plugin.insert(
                    "root_path",
                    toml_edit::value(at(&format!("plugins/{name}"))),
                );
            }
            if name == "io.containerd.grpc.v1.cri" {
                plugin.insert("stream_server_address", toml_edit::value("127.0.0.1"));
                plugin.insert("stream_server_port", toml_edit::value("0"));
                plugin.insert("disable_tcp_service", toml_edit::value(true));
            }
            if name == "io.containerd.nri.v1.nri" {
                plugin.insert("disable", toml_edit::value(true));
                plugin.insert("socket_path", toml_edit::value(at("nri.sock")));
            }
        }
    }
    Ok(doc.to_string())
}

fn set(doc: &mut DocumentMut, path: &[&str], v: Value) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut t: &mut dyn TableLike = doc.as_table_mut();
    for k in parents {
        let item = t.entry(k).or_insert_with(|| Item::Table(Table::new()));
        let Some(next) = item.as_table_like_mut() else {
            return;
        };
        t = next;
    }
    t.insert(last, Item::Value(v));
}

/// Checks the new effective configuration against the old one: every setting of the old
/// one is still there with the same value (only runtimes may be added: `moat`, and `runc`
/// made explicit), and `moat` is there with moat-runtime and moat's annotations, next to
/// the default runtime. Returns what is wrong, one line each.
pub fn check_install(old: &toml::Table, new: &toml::Table, binary: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let runtimes_key = runtimes_key(new);
    let moat_path: Vec<&str> = runtimes_key.iter().copied().chain([HANDLER]).collect();
    let runc_path: Vec<&str> = runtimes_key.iter().copied().chain(["runc"]).collect();
    compare(old, new, &mut Vec::new(), &[&moat_path], &mut problems);
    added(
        old,
        new,
        &mut Vec::new(),
        &[&moat_path, &runc_path],
        &mut problems,
    );
    match Effective::from_dump(new) {
        Err(e) => problems.push(e.to_string()),
        Ok(eff) => {
            let moat = eff.runtimes.get(HANDLER).and_then(toml::Value::as_table);
            match moat {
                None => problems.push(format!(
                    "no runtime `{HANDLER}` in {}",
                    runtimes_key.join(".")
                )),
                Some(m) => {
                    let get = |p: &[&str]| lookup(m, p).cloned();
                    if get(&["runtime_type"]) != Some(RUNC_SHIM.into()) {
                        problems.push(format!(
                            "runtimes.{HANDLER}.runtime_type is not {RUNC_SHIM}"
                        ));
                    }
                    if get(&["options", "BinaryName"]) != Some(binary.into()) {
                        problems.push(format!(
                            "runtimes.{HANDLER}.options.BinaryName is not {binary}"
                        ));
                    }
                    for (key, want) in [
                        ("pod_annotations", POD_ANNOTATIONS),
                        ("container_annotations", CONTAINER_ANNOTATIONS),
                    ] {
                        let have = union(m, key, &[]);
                        for w in want {
                            if !have.iter().any(|h| h == w) {
                                problems.push(format!("runtimes.{HANDLER}.{key} lacks {w}"));
                            }
                        }
                    }
                }
            }
            if !eff.runtimes.contains_key(&eff.default_runtime) {
                problems.push(format!(
                    "the default runtime `{}` is not among the runtimes",
                    eff.default_runtime
                ));
            }
        }
    }
    problems
}

/// Checks, after `uninstall`, that the effective configuration is the old one without
/// `moat` (and without a `runc` that only moat had made explicit).
pub fn check_uninstall(old: &toml::Table, new: &toml::Table) -> Vec<String> {
    let mut problems = Vec::new();
    let runtimes_key = runtimes_key(new);
    let moat_path: Vec<&str> = runtimes_key.iter().copied().chain([HANDLER]).collect();
    compare(old, new, &mut Vec::new(), &[&moat_path], &mut problems);
    added(old, new, &mut Vec::new(), &[], &mut problems);
    if lookup(new, &moat_path).is_some() {
        problems.push(format!("runtime `{HANDLER}` is still configured"));
    }
    problems
}

fn runtimes_key(dump: &toml::Table) -> [&'static str; 4] {
    let v3 = dump.get("version").and_then(toml::Value::as_integer) == Some(3);
    if v3 { Layout::V3 } else { Layout::V2 }.runtimes_path()
}

fn under(path: &[String], prefixes: &[&Vec<&str>]) -> bool {
    prefixes
        .iter()
        .any(|p| path.len() >= p.len() && path.iter().zip(p.iter()).all(|(a, b)| a == b))
}

/// Every leaf of `old` (outside `skip`) has the same value in `new`. `imports` (the list
/// of files containerd loaded) is not a setting.
fn compare(
    old: &toml::Table,
    new: &toml::Table,
    path: &mut Vec<String>,
    skip: &[&Vec<&str>],
    problems: &mut Vec<String>,
) {
    for (k, v) in old {
        path.push(k.clone());
        if !(under(path, skip) || (path.len() == 1 && k == "imports")) {
            match (v, new.get(k)) {
                (toml::Value::Table(a), Some(toml::Value::Table(b))) => {
                    compare(a, b, path, skip, problems)
                }
                (_, None) => problems.push(format!("{} is gone (was {v})", path.join("."))),
                (a, Some(b)) if a != b => {
                    problems.push(format!("{} changed from {a} to {b}", path.join(".")))
                }
                _ => {}
            }
        }
        path.pop();
    }
}

/// Every leaf `new` has and `old` does not is under one of `allowed`.
fn added(
    old: &toml::Table,
    new: &toml::Table,
    path: &mut Vec<String>,
    allowed: &[&Vec<&str>],
    problems: &mut Vec<String>,
) {
    for (k, v) in new {
        path.push(k.clone());
        if !under(path, allowed) {
            match (old.get(k), v) {
                (Some(toml::Value::Table(a)), toml::Value::Table(b)) => {
                    added(a, b, path, allowed, problems)
                }
                (None, _) => problems.push(format!("{} was added", path.join("."))),
                _ => {}
            }
        }
        path.pop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEBIAN: &str = r#"version = 2

[plugins]
  [plugins."io.containerd.grpc.v1.cri"]
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "/usr/lib/cni"
      conf_dir = "/etc/cni/net.d"
  [plugins."io.containerd.internal.v1.opt"]
    path = "/var/lib/containerd/opt"
"#;

    fn runc_dump(systemd: bool) -> toml::Table {
        toml::from_str(&format!(
            r#"runtime_type = "io.containerd.runc.v2"
base_runtime_spec = ""
pod_annotations = []
privileged_without_host_devices = false
runtime_root = ""
[options]
BinaryName = ""
SystemdCgroup = {systemd}
NoPivotRoot = false
Root = ""
"#
        ))
        .unwrap()
    }

    fn file() -> &'static Path {
        Path::new("config.toml")
    }

    fn data(doc: &DocumentMut) -> toml::Table {
        toml::from_str(&doc.to_string()).unwrap()
    }

    #[test]
    fn the_edit_keeps_every_line_of_the_operators_file() {
        let mut doc = parse(file(), DEBIAN).unwrap();
        let runc = runc_dump(false);
        assert!(set_runtime(&mut doc, Layout::V2, "runc", explicit_runc(&runc), file()).unwrap());
        let moat = moat_entry(Some(&runc), "/opt/moat/bin/moat-runtime");
        assert!(set_runtime(&mut doc, Layout::V2, HANDLER, moat.clone(), file()).unwrap());
        let text = doc.to_string();
        assert!(text.starts_with(DEBIAN), "{text}");
        let d = data(&doc);
        let r = lookup(&d, &Layout::V2.runtimes_path()).unwrap();
        assert_eq!(
            r["runc"]["options"]["NoPivotRoot"],
            false.into(),
            "every option of the default runc"
        );
        assert_eq!(
            r["moat"]["options"]["BinaryName"],
            "/opt/moat/bin/moat-runtime".into()
        );
        assert_eq!(r["moat"]["runtime_type"], RUNC_SHIM.into());
        // Again: nothing to do.
        assert!(!set_runtime(&mut doc, Layout::V2, HANDLER, moat, file()).unwrap());
        assert_eq!(doc.to_string(), text);
    }

    #[test]
    fn moat_copies_the_base_runtimes_settings() {
        let mut base = runc_dump(true);
        base.insert("privileged_without_host_devices".into(), true.into());
        base.insert(
            "pod_annotations".into(),
            toml::Value::Array(vec!["a/*".into()]),
        );
        base.insert("runtime_root".into(), "/legacy".into());
        lookup(&base, &["options"]).unwrap();
        if let Some(toml::Value::Table(o)) = base.get_mut("options") {
            o.insert("BinaryName".into(), "/usr/local/bin/runc".into());
            o.insert("Root".into(), "/run/runc-custom".into());
        }
        let mut doc = DocumentMut::new();
        doc.insert("x", Item::Table(moat_entry(Some(&base), "/m")));
        let d = data(&doc);
        let m = d["x"].as_table().unwrap();
        assert_eq!(m["options"]["SystemdCgroup"], true.into());
        assert_eq!(m["options"]["BinaryName"], "/m".into());
        assert_eq!(m["options"]["Root"], "/run/runc-custom".into());
        assert!(
            m["options"].get("NoPivotRoot").is_none(),
            "zero values are left out"
        );
        assert_eq!(m["privileged_without_host_devices"], true.into());
        assert!(m.get("runtime_root").is_none());
        assert_eq!(
            m["pod_annotations"],
            toml::Value::Array(vec![
                "a/*".into(),
                "moat.dev/*".into(),
                "container.moat.dev/*".into()
            ])
        );
    }

    #[test]
    fn dotted_inline_and_version_3_files() {
        let dotted = "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd]\nruntimes.runc.runtime_type = \"io.containerd.runc.v2\"\n";
        let inline = "version = 3\n[plugins.\"io.containerd.cri.v1.runtime\".containerd]\nruntimes = { runc = { runtime_type = \"io.containerd.runc.v2\" } }\n";
        let v1 =
            "[plugins.cri.containerd.runtimes.runc]\nruntime_type = \"io.containerd.runc.v2\"\n";
        for (text, layout) in [
            (dotted, Layout::V2),
            (inline, Layout::V3),
            (v1, Layout::V1),
            ("", Layout::V3),
        ] {
            let mut doc = parse(file(), text).unwrap();
            assert_eq!(
                Layout::from_version(
                    version_of(&doc).max(if text.is_empty() { 3 } else { 0 }),
                    file()
                )
                .unwrap(),
                layout
            );
            assert!(
                set_runtime(&mut doc, layout, HANDLER, moat_entry(None, "/b"), file()).unwrap()
            );
            let d = data(&doc);
            let r = lookup(&d, &layout.runtimes_path()).unwrap();
            assert_eq!(r["moat"]["options"]["BinaryName"], "/b".into(), "{doc}");
            if !text.is_empty() {
                assert_eq!(r["runc"]["runtime_type"], RUNC_SHIM.into(), "{doc}");
            }
            assert!(remove_runtime(&mut doc, layout, HANDLER, false));
            assert!(lookup(&data(&doc), &layout.runtimes_path())
                .and_then(|r| r.get("moat"))
                .is_none());
        }
    }

    #[test]
    fn a_key_that_is_not_a_table_is_an_error_naming_it() {
        let mut doc = parse(
            file(),
            "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\"]\ncontainerd = 3\n",
        )
        .unwrap();
        let e = set_runtime(
            &mut doc,
            Layout::V2,
            HANDLER,
            moat_entry(None, "/b"),
            file(),
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("plugins.io.containerd.grpc.v1.cri.containerd"),
            "{e}"
        );
        let e = parse(file(), "version = = 2").unwrap_err();
        assert!(e.to_string().starts_with("config.toml: "), "{e}");
    }

    #[test]
    fn uninstall_removes_only_marked_runc() {
        let mut doc = parse(file(), DEBIAN).unwrap();
        set_runtime(
            &mut doc,
            Layout::V2,
            "runc",
            explicit_runc(&runc_dump(false)),
            file(),
        )
        .unwrap();
        set_runtime(
            &mut doc,
            Layout::V2,
            HANDLER,
            moat_entry(None, "/b"),
            file(),
        )
        .unwrap();
        assert!(remove_runtime(&mut doc, Layout::V2, HANDLER, false));
        assert!(remove_runtime(&mut doc, Layout::V2, "runc", true));
        assert_eq!(doc.to_string(), DEBIAN);
        let kubeadm = "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc]\nruntime_type = \"io.containerd.runc.v2\"\n";
        let mut doc = parse(file(), kubeadm).unwrap();
        assert!(
            !remove_runtime(&mut doc, Layout::V2, "runc", true),
            "the operator's own runc stays"
        );
    }

    fn dump(extra: &str) -> toml::Table {
        toml::from_str(&format!(
            r#"version = 2
root = "/var/lib/containerd"
imports = ["/etc/containerd/config.toml"]
[grpc]
address = "/run/containerd/containerd.sock"
[plugins."io.containerd.grpc.v1.cri"]
sandbox_image = "registry.k8s.io/pause:3.9"
[plugins."io.containerd.grpc.v1.cri".cni]
bin_dir = "/usr/lib/cni"
[plugins."io.containerd.grpc.v1.cri".containerd]
default_runtime_name = "runc"
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
runtime_type = "io.containerd.runc.v2"
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
SystemdCgroup = true
{extra}"#
        ))
        .unwrap()
    }

    const MOAT: &str = r#"[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.moat]
runtime_type = "io.containerd.runc.v2"
pod_annotations = ["moat.dev/*", "container.moat.dev/*"]
container_annotations = ["io.kubernetes.container.ports"]
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.moat.options]
BinaryName = "/opt/moat/bin/moat-runtime"
"#;

    #[test]
    fn the_check_finds_lost_changed_and_added_settings() {
        let old = dump("");
        let good = dump(MOAT);
        assert_eq!(
            check_install(&old, &good, "/opt/moat/bin/moat-runtime"),
            Vec::<String>::new()
        );
        assert_eq!(check_uninstall(&good, &old), Vec::<String>::new());
        let mut lost = good.clone();
        if let Some(toml::Value::Table(p)) = lost.get_mut("plugins") {
            if let Some(toml::Value::Table(c)) = p.get_mut("io.containerd.grpc.v1.cri") {
                c.remove("sandbox_image");
                c.insert("cni".into(), toml::Value::Table(toml::Table::new()));
            }
        }
        let problems = check_install(&old, &lost, "/opt/moat/bin/moat-runtime");
        assert!(
            problems.iter().any(|p| p.contains("sandbox_image is gone")),
            "{problems:?}"
        );
        assert!(
            problems.iter().any(|p| p.contains("cni.bin_dir is gone")),
            "{problems:?}"
        );
        let changed = dump(&MOAT.replace(
            "[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.moat]",
            "[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.moat]\nsnapshotter = \"x\"",
        ));
        assert!(
            check_install(&old, &changed, "/opt/moat/bin/moat-runtime").is_empty(),
            "moat's own table may hold anything"
        );
        let wrong_binary = check_install(&old, &good, "/elsewhere");
        assert!(wrong_binary[0].contains("BinaryName"), "{wrong_binary:?}");
        let added = dump(&format!("{MOAT}[debug]\nlevel = \"debug\"\n"));
        let p = check_install(&old, &added, "/opt/moat/bin/moat-runtime");
        assert!(p.iter().any(|p| p.contains("debug was added")), "{p:?}");
        let no_runc = toml::from_str::<toml::Table>(
            &dump(MOAT)
                .to_string()
                .replace("runtimes.runc", "runtimes.crun"),
        )
        .unwrap();
        let p = check_install(&old, &no_runc, "/opt/moat/bin/moat-runtime");
        assert!(
            p.iter().any(|p| p.contains("default runtime `runc`")),
            "{p:?}"
        );
    }

    #[test]
    fn the_trial_configuration_moves_everything_of_the_nodes_aside() {
        let text = toml::to_string(&dump(
            r#"[debug]
address = "/run/containerd/debug.sock"
[metrics]
address = "127.0.0.1:1338"
[plugins."io.containerd.snapshotter.v1.overlayfs"]
root_path = "/data/overlay"
[plugins."io.containerd.nri.v1.nri"]
disable = false
socket_path = "/var/run/nri/nri.sock"
"#,
        ))
        .unwrap();
        let t = trial_config(
            &text,
            &TrialDirs {
                base: "/w/t".into(),
            },
        )
        .unwrap();
        let d: toml::Table = toml::from_str(&t).unwrap();
        let get = |p: &[&str]| lookup(&d, p).cloned();
        assert_eq!(get(&["root"]), Some("/w/t/root".into()));
        assert_eq!(
            get(&["grpc", "address"]),
            Some("/w/t/containerd.sock".into())
        );
        assert_eq!(get(&["debug", "address"]), Some("/w/t/debug.sock".into()));
        assert_eq!(get(&["metrics", "address"]), Some("".into()));
        assert_eq!(get(&["imports"]), None);
        assert_eq!(
            get(&[
                "plugins",
                "io.containerd.snapshotter.v1.overlayfs",
                "root_path"
            ]),
            Some("/w/t/plugins/io.containerd.snapshotter.v1.overlayfs".into())
        );
        assert_eq!(
            get(&["plugins", "io.containerd.nri.v1.nri", "disable"]),
            Some(true.into())
        );
        assert_eq!(
            get(&["plugins", "io.containerd.grpc.v1.cri", "stream_server_port"]),
            Some("0".into())
        );
        assert_eq!(
            get(&["plugins", "io.containerd.grpc.v1.cri", "sandbox_image"]),
            Some("registry.k8s.io/pause:3.9".into())
        );
        assert!(t.contains("io.containerd.snapshotter.v1.devmapper"));
    }

    #[test]
    fn the_effective_configuration_names_the_base_runtime() {
        let eff = Effective::from_dump(&dump("")).unwrap();
        assert_eq!(eff.default_runtime, "runc");
        assert_eq!(eff.base_runtime().map(|(n, _)| n), Some("runc"));
        assert!(!eff.cri_disabled);
        let nvidia = dump(
            r#"[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.nvidia]
runtime_type = "io.containerd.runc.v2"
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.nvidia.options]
BinaryName = "/usr/bin/nvidia-container-runtime"
"#,
        )
        .to_string()
        .replace(
            "default_runtime_name = \"runc\"",
            "default_runtime_name = \"nvidia\"",
        );
        let eff = Effective::from_dump(&toml::from_str(&nvidia).unwrap()).unwrap();
        assert_eq!(eff.base_runtime().map(|(n, _)| n), Some("nvidia"));
        assert_eq!(
            eff.base_binary().as_deref(),
            Some("/usr/bin/nvidia-container-runtime")
        );
        let disabled = format!(
            "disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n{}",
            toml::to_string(&dump("")).unwrap()
        );
        assert!(
            Effective::from_dump(&toml::from_str(&disabled).unwrap())
                .unwrap()
                .cri_disabled
        );
    }
}
