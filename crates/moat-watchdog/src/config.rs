//! The watchdog's configuration: environment variables, as the classic watchdog reads them,
//! plus moat's own for the sandbox.
//!
//! [`VARIABLES`] is the one list of every variable, its default and its meaning, one row
//! each: [`Config::from_lookup`] takes each default from its row, `--help` is built from the
//! rows, and a test holds docs/watchdog.md to them. [`Config::from_lookup`] reads without
//! side effects (no file is opened, nothing is resolved); a value that does not parse is an
//! error that names the variable, where the classic watchdog would silently use the default.

use crate::duration::{parse_seconds_or_duration, DurationError};
use moat_policy::PortRange;
use std::path::PathBuf;
use std::time::Duration;

/// One configuration variable: the row that both `--help` and the parser read.
#[derive(Debug, Clone, Copy)]
pub struct Variable {
    /// Its name in the environment.
    pub name: &'static str,
    /// Its value when unset (or empty).
    pub default: DefaultValue,
    /// What it does.
    pub help: &'static str,
}

/// What an unset variable means. The parser takes its default from here, and `--help` and
/// docs/watchdog.md show [`DefaultValue::text`], so the two cannot disagree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultValue {
    /// None: the variable must be set.
    Required,
    /// Nothing: the feature is off, the list empty.
    Unset,
    /// `true` or `false`.
    Bool(bool),
    /// A number (0 means unlimited where the help says so).
    Number(u64),
    /// A timeout (0 means none).
    Duration(Duration),
    /// One of the variable's words.
    Word(&'static str),
    /// Worked out at start, as described.
    Derived(&'static str),
}

impl DefaultValue {
    /// The default as `--help` and the documentation show it.
    pub fn text(self) -> String {
        match self {
            DefaultValue::Required => "(required)".to_string(),
            DefaultValue::Unset => String::new(),
            DefaultValue::Bool(b) => b.to_string(),
            DefaultValue::Number(n) => n.to_string(),
            DefaultValue::Duration(d) => duration_text(d),
            DefaultValue::Word(w) | DefaultValue::Derived(w) => w.to_string(),
        }
    }
}

/// A whole number of seconds as a Go duration (`30s`, `5m`, `1m30s`), `0` for none.
fn duration_text(d: Duration) -> String {
    let secs = d.as_secs();
    if secs == 0 {
        return "0".to_string();
    }
    let mut s = String::new();
    for (unit, size, modulo) in [("h", 3600, u64::MAX), ("m", 60, 60), ("s", 1, 60)] {
        let n = secs / size % modulo;
        if n > 0 {
            s.push_str(&format!("{n}{unit}"));
        }
    }
    s
}

/// Declares each variable as a constant the parser reads, and [`VARIABLES`], the list of them
/// all in this order: one row per variable.
macro_rules! variables {
    ($($ident:ident = $name:literal, $default:expr, $help:literal;)*) => {
        $(const $ident: Variable = Variable { name: $name, default: $default, help: $help };)*

        /// Every variable the watchdog reads, classic ones first.
        pub const VARIABLES: &[Variable] = &[$($ident),*];
    };
}

variables! {
    FPROCESS = "fprocess", DefaultValue::Required,
        "the function: a program and its arguments, split on spaces; the program is looked up on PATH once at start";
    PORT = "port", DefaultValue::Number(8080),
        "TCP port of the function server (all interfaces); 0 picks a free port, logged at start";
    READ_TIMEOUT = "read_timeout", DefaultValue::Duration(DEFAULT_TIMEOUT),
        "time allowed to read a request (headers and body), in seconds or as a Go duration (10s, 1m30s); 0 = none";
    WRITE_TIMEOUT = "write_timeout", DefaultValue::Duration(DEFAULT_TIMEOUT),
        "time allowed from the end of the request headers to the end of the response; a call still running then is killed and the connection closed without a response; 0 = none";
    EXEC_TIMEOUT = "exec_timeout", DefaultValue::Duration(Duration::ZERO),
        "hard limit on a call: its whole process tree is killed and the client gets 408; 0 = none";
    MAX_INFLIGHT = "max_inflight", DefaultValue::Number(0),
        "calls allowed at once; beyond it, 429; 0 = unlimited";
    COMBINE_OUTPUT = "combine_output", DefaultValue::Bool(true),
        "true: the function's stderr goes into the response body with stdout; false: stderr is logged";
    WRITE_DEBUG = "write_debug", DefaultValue::Bool(false),
        "log each call's request path, query and output";
    DEBUG_HEADERS = "debug_headers", DefaultValue::Bool(false),
        "log the request and response headers of each call";
    CGI_HEADERS = "cgi_headers", DefaultValue::Bool(true),
        "pass request headers as Http_<Name> variables, plus Http_Method, Http_Query, Http_Path, Http_Host, Http_ContentLength";
    MARSHAL_REQUEST = "marshal_request", DefaultValue::Bool(false),
        "send the function a JSON envelope {\"header\":{...},\"body\":{\"raw\":\"<base64>\"}} instead of the raw body";
    CONTENT_TYPE = "content_type", DefaultValue::Unset,
        "Content-Type of every response; empty: the request's Content-Type, else sniffed from the output";
    SUPPRESS_LOCK = "suppress_lock", DefaultValue::Bool(false),
        "do not write the lock file $TMPDIR/.lock (or /tmp/.lock) that health checks look for";
    HEALTHCHECK_INTERVAL = "healthcheck_interval", DefaultValue::Derived("write_timeout"),
        "after SIGTERM: how long /_/health answers 503 while calls are still accepted, before the listener closes";
    JWT_AUTH = "jwt_auth", DefaultValue::Bool(false),
        "not supported: true refuses to start rather than serve without authentication";
    METRICS_PORT = "metrics_port", DefaultValue::Number(8081),
        "TCP port of the Prometheus /metrics server; 0 picks a free port, logged at start";
    MAX_REQUEST_BYTES = "max_request_bytes", DefaultValue::Number(DEFAULT_MAX_REQUEST_BYTES),
        "largest request body accepted (413 beyond); 0 = unlimited";
    MAX_RESPONSE_BYTES = "max_response_bytes", DefaultValue::Number(0),
        "largest function output accepted: beyond it the call is killed (answered 500, or its streamed response cut off); 0 = unlimited";
    RESPONSE_BUFFER_BYTES = "response_buffer_bytes", DefaultValue::Number(DEFAULT_RESPONSE_BUFFER as u64),
        "output held in memory before the response starts: a function that ends within it gets the classic answer (status from its exit code, Content-Length, X-Duration-Seconds); beyond it the output is streamed (see stream_response)";
    STREAM_RESPONSE = "stream_response", DefaultValue::Bool(true),
        "true: an output longer than response_buffer_bytes is streamed as it comes (200, chunked, memory bounded), and cut off without its end if the function then fails; false: such a call is killed and answered 500";
    MAX_CONNECTIONS = "max_connections", DefaultValue::Derived("3/4 of (RLIMIT_NOFILE - 64)"),
        "connections open at once (both ports); beyond, the longest idle one is closed, or the new client refused with 503 if none is idle; 0 = the default";
    MAX_CALL_PROCESSES = "max_call_processes", DefaultValue::Number(DEFAULT_MAX_CALL_PROCESSES),
        "processes and threads of one call, by the cgroup pids controller; a call that reaches it is answered 500; 0 = unlimited";
    MAX_CALL_TMP_BYTES = "max_call_tmp_bytes", DefaultValue::Number(DEFAULT_MAX_CALL_TMP_BYTES),
        "size of a call's private temporary directory, a tmpfs of its own (needs root); a call that fills it is answered 500; 0 = unlimited (all calls share sandbox_tmp)";
    MAX_CALL_CPU = "max_call_cpu", DefaultValue::Duration(DEFAULT_MAX_CALL_CPU),
        "CPU time of one call's processes together, counted by its control group: a call that uses it up is killed and answered 500; seconds or a Go duration; 0 = unlimited";
    SANDBOX = "sandbox", DefaultValue::Word("required"),
        "required: every call runs in its own Landlock sandbox and the watchdog refuses to start (exit 125) or to run a call when that cannot be done; best_effort: run with what the kernel enforces and log what is not; off: no sandbox (no Landlock, no seccomp filters, no private temporary directory; the process tree is still killed at the end of each call)";
    SANDBOX_RO = "sandbox_ro", DefaultValue::Unset,
        "extra paths the function may read, comma separated";
    SANDBOX_ROX = "sandbox_rox", DefaultValue::Unset,
        "extra paths the function may read and execute, comma separated";
    SANDBOX_RW = "sandbox_rw", DefaultValue::Unset,
        "extra paths the function may read and write, comma separated (shared by all calls: they weaken isolation)";
    SANDBOX_CONNECT_TCP = "sandbox_connect_tcp", DefaultValue::Unset,
        "TCP ports the function may connect to: numbers and first-last ranges, comma separated; empty: no network";
    SANDBOX_ALLOW_UDP = "sandbox_allow_udp", DefaultValue::Bool(false),
        "true: allow UDP sockets (DNS); otherwise the socket filter refuses them";
    SANDBOX_ALLOW_IPC = "sandbox_allow_ipc", DefaultValue::Bool(false),
        "true: allow SysV IPC, POSIX message queues and keyrings, which Landlock does not confine and through which calls could leave data for later calls; otherwise refused (EACCES)";
    SANDBOX_POLICY = "sandbox_policy", DefaultValue::Unset,
        "a moat policy file (moat, landlockconfig or OCI dialect) merged into each call's policy: its grants add up, and so do its restrictions";
    SANDBOX_TMP = "sandbox_tmp", DefaultValue::Derived("/dev/shm if tmpfs, else $TMPDIR or /tmp"),
        "directory in which each call gets its private temporary directory";
    MOAT_MAX_ABI = "MOAT_MAX_ABI", DefaultValue::Unset,
        "use at most this Landlock ABI, as if the kernel were older (testing)";
    MOAT_WATCHDOG_BALLAST_MB = "MOAT_WATCHDOG_BALLAST_MB", DefaultValue::Number(0),
        "benchmark aid: allocate and touch this many MiB at start and hold them, to measure spawn cost against the watchdog's size";
}

/// How calls are sandboxed.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum SandboxMode {
    /// Each call in its own sandbox, or refused.
    Required,
    /// Each call with what the kernel enforces; gaps are logged.
    BestEffort,
    /// No sandbox.
    Off,
}

impl SandboxMode {
    /// The value as written in the environment.
    pub fn name(self) -> &'static str {
        match self {
            SandboxMode::Required => "required",
            SandboxMode::BestEffort => "best_effort",
            SandboxMode::Off => "off",
        }
    }
}

/// The sandbox settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SandboxConfig {
    /// required, best_effort or off.
    pub mode: SandboxMode,
    /// Extra read-only paths.
    pub ro: Vec<String>,
    /// Extra read-and-execute paths.
    pub rox: Vec<String>,
    /// Extra read-write paths.
    pub rw: Vec<String>,
    /// TCP ports the function may connect to.
    pub connect_tcp: Vec<PortRange>,
    /// Whether UDP is allowed.
    pub allow_udp: bool,
    /// Whether SysV IPC, POSIX message queues and keyrings are allowed (no IPC seal).
    pub allow_ipc: bool,
    /// A moat policy file merged into each call's policy.
    pub policy: Option<PathBuf>,
    /// Where private temporary directories are made; `None` picks one.
    pub tmp_root: Option<PathBuf>,
}

/// The limits of each call (`None`: unlimited).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallLimits {
    /// Processes and threads.
    pub processes: Option<u64>,
    /// Bytes of the private temporary directory.
    pub tmp_bytes: Option<u64>,
    /// CPU time.
    pub cpu: Option<Duration>,
    /// The variables set in the environment rather than left at their defaults: a limit
    /// asked for that cannot be enforced refuses to start under `sandbox=required`.
    pub explicit: Vec<&'static str>,
}

/// The default of `response_buffer_bytes`: 1 MiB.
const DEFAULT_RESPONSE_BUFFER: usize = 1 << 20;
/// The default of `max_call_processes`.
const DEFAULT_MAX_CALL_PROCESSES: u64 = 512;
/// The default of `max_call_tmp_bytes`: 64 MiB, the size of Docker's and Kubernetes'
/// default `/dev/shm`, which every call shared before.
const DEFAULT_MAX_CALL_TMP_BYTES: u64 = 64 << 20;
/// The default of `max_call_cpu`.
const DEFAULT_MAX_CALL_CPU: Duration = Duration::from_secs(300);

/// The whole configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// The program and its arguments.
    pub fprocess: Vec<String>,
    /// Function server port.
    pub port: u16,
    /// Metrics server port.
    pub metrics_port: u16,
    /// Request read limit.
    pub read_timeout: Option<Duration>,
    /// Response write limit.
    pub write_timeout: Option<Duration>,
    /// Call limit.
    pub exec_timeout: Option<Duration>,
    /// Delay between SIGTERM and closing the listener.
    pub healthcheck_interval: Duration,
    /// Calls at once; `None` is unlimited.
    pub max_inflight: Option<usize>,
    /// stderr into the response.
    pub combine_output: bool,
    /// Log requests and outputs.
    pub write_debug: bool,
    /// Log headers.
    pub debug_headers: bool,
    /// Http_* variables.
    pub cgi_headers: bool,
    /// JSON envelope on stdin.
    pub marshal_request: bool,
    /// Forced response Content-Type.
    pub content_type: Option<String>,
    /// No lock file.
    pub suppress_lock: bool,
    /// Request body limit; `None` is unlimited.
    pub max_request_bytes: Option<u64>,
    /// Output limit; `None` is unlimited.
    pub max_response_bytes: Option<u64>,
    /// Output held before the response starts.
    pub response_buffer_bytes: usize,
    /// Stream outputs longer than the buffer.
    pub stream_response: bool,
    /// Connections at once; `None` derives it from the descriptor limit.
    pub max_connections: Option<usize>,
    /// Per-call limits.
    pub limits: CallLimits,
    /// The sandbox.
    pub sandbox: SandboxConfig,
    /// Benchmark ballast in MiB.
    pub ballast_mb: usize,
}

/// A configuration variable that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A required variable is missing.
    #[error("{var} is not set: {why}")]
    Missing {
        /// The variable.
        var: &'static str,
        /// What to set.
        why: &'static str,
    },
    /// A value that does not parse.
    #[error("{var}=`{value}`: {expected}")]
    Invalid {
        /// The variable.
        var: &'static str,
        /// The value found.
        value: String,
        /// What was expected.
        expected: String,
    },
    /// A value that is not UTF-8.
    #[error("{var} is not valid UTF-8")]
    NotUnicode {
        /// The variable.
        var: &'static str,
    },
    /// A feature of the classic watchdog this one does not have.
    #[error("{var}=true is not supported by moat watchdog: {why}")]
    Unsupported {
        /// The variable.
        var: &'static str,
        /// Why and what to do.
        why: &'static str,
    },
}

/// A source of variables: `Ok(None)` when unset, `Err` when set but not UTF-8.
pub trait Lookup {
    /// The value of `name`.
    fn get(&self, name: &'static str) -> Result<Option<String>, ConfigError>;
}

/// The process environment.
struct ProcessEnv;

impl Lookup for ProcessEnv {
    fn get(&self, name: &'static str) -> Result<Option<String>, ConfigError> {
        match std::env::var(name) {
            Ok(v) => Ok(Some(v)),
            Err(std::env::VarError::NotPresent) => Ok(None),
            Err(std::env::VarError::NotUnicode(_)) => Err(ConfigError::NotUnicode { var: name }),
        }
    }
}

impl<F: Fn(&str) -> Option<String>> Lookup for F {
    fn get(&self, name: &'static str) -> Result<Option<String>, ConfigError> {
        Ok(self(name))
    }
}

/// The default of `read_timeout` and `write_timeout`.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// The default of `max_request_bytes`: 64 MiB.
const DEFAULT_MAX_REQUEST_BYTES: u64 = 64 << 20;

/// Reads variables, treating an empty value as unset (as the classic watchdog does), with
/// the defaults of their rows.
struct Reader<'a, L: Lookup + ?Sized>(&'a L);

impl<L: Lookup + ?Sized> Reader<'_, L> {
    fn text(&self, var: &Variable) -> Result<Option<String>, ConfigError> {
        Ok(self.0.get(var.name)?.filter(|v| !v.is_empty()))
    }

    fn bool(&self, var: &Variable) -> Result<bool, ConfigError> {
        match self.text(var)?.as_deref() {
            None => Ok(var.default == DefaultValue::Bool(true)),
            Some("true") => Ok(true),
            Some("false") => Ok(false),
            Some(other) => Err(invalid(var, other, "write true or false")),
        }
    }

    /// The value, or the row's word.
    fn word(&self, var: &Variable) -> Result<String, ConfigError> {
        Ok(self.text(var)?.unwrap_or_else(|| var.default.text()))
    }

    /// The value, else the row's duration; `None` for 0.
    fn timeout(&self, var: &Variable) -> Result<Option<Duration>, ConfigError> {
        let default = match var.default {
            DefaultValue::Duration(d) => d,
            _ => Duration::ZERO,
        };
        self.timeout_or(var, default)
    }

    /// The value, else `default`; `None` for 0.
    fn timeout_or(
        &self,
        var: &Variable,
        default: Duration,
    ) -> Result<Option<Duration>, ConfigError> {
        let d = match self.text(var)? {
            None => default,
            Some(v) => parse_seconds_or_duration(&v).map_err(|e: DurationError| {
                invalid(
                    var,
                    &v,
                    &format!("{e} (write seconds, or a Go duration such as 10s or 1m30s)"),
                )
            })?,
        };
        Ok((!d.is_zero()).then_some(d))
    }

    /// The value if set.
    fn number<T: std::str::FromStr>(
        &self,
        var: &Variable,
        what: &str,
    ) -> Result<Option<T>, ConfigError> {
        match self.text(var)? {
            None => Ok(None),
            Some(v) => v.parse::<T>().map(Some).map_err(|_| invalid(var, &v, what)),
        }
    }

    /// The value, else the row's number.
    fn count<T: std::str::FromStr + TryFrom<u64>>(
        &self,
        var: &Variable,
        what: &str,
    ) -> Result<T, ConfigError> {
        match self.number(var, what)? {
            Some(n) => Ok(n),
            None => {
                let default = match var.default {
                    DefaultValue::Number(n) => n,
                    _ => 0,
                };
                T::try_from(default).map_err(|_| invalid(var, &var.default.text(), what))
            }
        }
    }

    fn list(&self, var: &Variable) -> Result<Vec<String>, ConfigError> {
        Ok(self
            .text(var)?
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default())
    }

    fn paths(&self, var: &Variable) -> Result<Vec<String>, ConfigError> {
        let paths = self.list(var)?;
        for p in &paths {
            if !p.starts_with('/') {
                return Err(invalid(var, p, "paths must be absolute"));
            }
        }
        Ok(paths)
    }
}

fn invalid(var: &Variable, value: &str, expected: &str) -> ConfigError {
    ConfigError::Invalid {
        var: var.name,
        value: value.to_string(),
        expected: expected.to_string(),
    }
}

/// `None` for 0, which means unlimited.
fn limit<T: PartialEq + std::default::Default>(n: T) -> Option<T> {
    (n != T::default()).then_some(n)
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(&ProcessEnv)
    }

    /// Reads the configuration from `env`. Pure: nothing is opened or resolved.
    pub fn from_lookup<L: Lookup + ?Sized>(env: &L) -> Result<Config, ConfigError> {
        let r = Reader(env);
        let fprocess = split_fprocess(&r.text(&FPROCESS)?.unwrap_or_default());
        if fprocess.is_empty() {
            return Err(ConfigError::Missing {
                var: FPROCESS.name,
                why: "set it to the function's command, for example fprocess=\"cat\"",
            });
        }
        if r.bool(&JWT_AUTH)? {
            return Err(ConfigError::Unsupported {
                var: JWT_AUTH.name,
                why: "authenticate in front of the watchdog (the gateway or a proxy)",
            });
        }
        let port = r.count::<u16>(&PORT, "a TCP port, 0 to 65535")?;
        let metrics_port = r.count::<u16>(&METRICS_PORT, "a TCP port, 0 to 65535")?;
        let read_timeout = r.timeout(&READ_TIMEOUT)?;
        let write_timeout = r.timeout(&WRITE_TIMEOUT)?;
        let exec_timeout = r.timeout(&EXEC_TIMEOUT)?;
        let healthcheck_interval = r
            .timeout_or(
                &HEALTHCHECK_INTERVAL,
                write_timeout.unwrap_or(Duration::ZERO),
            )?
            .unwrap_or(Duration::ZERO);
        let max_inflight =
            limit(r.count::<usize>(&MAX_INFLIGHT, "a number of calls (0 = unlimited)")?);
        let bytes = "a number of bytes (0 = unlimited)";
        let max_request_bytes = limit(r.count::<u64>(&MAX_REQUEST_BYTES, bytes)?);
        let max_response_bytes = limit(r.count::<u64>(&MAX_RESPONSE_BYTES, bytes)?);
        let response_buffer_bytes =
            r.count::<usize>(&RESPONSE_BUFFER_BYTES, "a number of bytes")?;
        let max_connections = r
            .number::<usize>(
                &MAX_CONNECTIONS,
                "a number of connections (0 = the default)",
            )?
            .filter(|&n| n > 0);
        let mut explicit = Vec::new();
        for var in [&MAX_CALL_PROCESSES, &MAX_CALL_TMP_BYTES, &MAX_CALL_CPU] {
            if r.text(var)?.is_some() {
                explicit.push(var.name);
            }
        }
        let limits = CallLimits {
            processes: limit(
                r.count::<u64>(&MAX_CALL_PROCESSES, "a number of processes (0 = unlimited)")?,
            ),
            tmp_bytes: match r.count::<u64>(&MAX_CALL_TMP_BYTES, bytes)? {
                0 => None,
                n if n < 4096 => {
                    return Err(invalid(
                        &MAX_CALL_TMP_BYTES,
                        &n.to_string(),
                        "at least 4096 bytes (one page), or 0 for unlimited",
                    ))
                }
                n => Some(n),
            },
            cpu: r.timeout(&MAX_CALL_CPU)?,
            explicit,
        };
        let mode = match r.word(&SANDBOX)?.as_str() {
            "required" => SandboxMode::Required,
            "best_effort" | "best-effort" => SandboxMode::BestEffort,
            "off" => SandboxMode::Off,
            other => {
                return Err(invalid(
                    &SANDBOX,
                    other,
                    "write required, best_effort or off",
                ))
            }
        };
        let mut connect_tcp = Vec::new();
        for p in r.list(&SANDBOX_CONNECT_TCP)? {
            connect_tcp.push(
                PortRange::parse(&p)
                    .map_err(|e| invalid(&SANDBOX_CONNECT_TCP, &p, &e.to_string()))?,
            );
        }
        let sandbox = SandboxConfig {
            mode,
            ro: r.paths(&SANDBOX_RO)?,
            rox: r.paths(&SANDBOX_ROX)?,
            rw: r.paths(&SANDBOX_RW)?,
            connect_tcp,
            allow_udp: r.bool(&SANDBOX_ALLOW_UDP)?,
            allow_ipc: r.bool(&SANDBOX_ALLOW_IPC)?,
            policy: r.text(&SANDBOX_POLICY)?.map(PathBuf::from),
            tmp_root: match r.text(&SANDBOX_TMP)? {
                Some(p) if !p.starts_with('/') => {
                    return Err(invalid(&SANDBOX_TMP, &p, "the path must be absolute"))
                }
                p => p.map(PathBuf::from),
            },
        };
        Ok(Config {
            fprocess,
            port,
            metrics_port,
            read_timeout,
            write_timeout,
            exec_timeout,
            healthcheck_interval,
            max_inflight,
            combine_output: r.bool(&COMBINE_OUTPUT)?,
            write_debug: r.bool(&WRITE_DEBUG)?,
            debug_headers: r.bool(&DEBUG_HEADERS)?,
            cgi_headers: r.bool(&CGI_HEADERS)?,
            marshal_request: r.bool(&MARSHAL_REQUEST)?,
            content_type: r.text(&CONTENT_TYPE)?,
            suppress_lock: r.bool(&SUPPRESS_LOCK)?,
            max_request_bytes,
            max_response_bytes,
            response_buffer_bytes,
            stream_response: r.bool(&STREAM_RESPONSE)?,
            max_connections,
            limits,
            sandbox,
            ballast_mb: r.count::<usize>(&MOAT_WATCHDOG_BALLAST_MB, "a number of MiB")?,
        })
    }
}

/// Splits `fprocess` on spaces, as the classic watchdog does. Runs of spaces count as one
/// (the classic watchdog passes an empty argument for each extra space, which no function
/// can have meant).
fn split_fprocess(text: &str) -> Vec<String> {
    text.split(' ')
        .filter(|p| !p.is_empty())
        .map(String::from)
        .collect()
}

/// The `--help` text of the variables, one block each, from [`VARIABLES`].
pub fn help_text() -> String {
    let mut s = String::from("Configuration (environment variables):\n");
    for v in VARIABLES {
        s.push_str(&format!(
            "  {} (default: {})\n",
            v.name,
            match v.default {
                DefaultValue::Unset => "unset".to_string(),
                d => d.text(),
            }
        ));
        let mut line = String::from("      ");
        for word in v.help.split(' ') {
            if line.len() + word.len() > 90 {
                s.push_str(line.trim_end());
                s.push('\n');
                line = String::from("      ");
            }
            line.push_str(word);
            line.push(' ');
        }
        s.push_str(line.trim_end());
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn cfg(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(&move |k: &str| map.get(k).cloned())
    }

    #[test]
    fn classic_defaults() {
        let c = cfg(&[("fprocess", "cat")]).unwrap();
        assert_eq!(c.fprocess, vec!["cat"]);
        assert_eq!(c.port, 8080);
        assert_eq!(c.metrics_port, 8081);
        assert_eq!(c.read_timeout, Some(DEFAULT_TIMEOUT));
        assert_eq!(c.write_timeout, Some(DEFAULT_TIMEOUT));
        assert_eq!(c.exec_timeout, None);
        assert_eq!(c.healthcheck_interval, DEFAULT_TIMEOUT);
        assert_eq!(c.max_inflight, None);
        assert!(c.combine_output && c.cgi_headers);
        assert!(!c.write_debug && !c.marshal_request && !c.suppress_lock);
        assert_eq!(c.content_type, None);
        assert_eq!(c.sandbox.mode, SandboxMode::Required);
        assert_eq!(c.max_request_bytes, Some(DEFAULT_MAX_REQUEST_BYTES));
        assert_eq!(c.max_response_bytes, None);
    }

    #[test]
    fn values_and_empty_means_unset() {
        let c = cfg(&[
            ("fprocess", "  python3  handler.py  -v "),
            ("port", "0"),
            ("read_timeout", "5"),
            ("write_timeout", "1m30s"),
            ("exec_timeout", "250ms"),
            ("max_inflight", "3"),
            ("combine_output", "false"),
            ("content_type", "application/json"),
            ("cgi_headers", ""),
            ("sandbox", "best_effort"),
            ("sandbox_ro", "/srv/data, /opt/x"),
            ("sandbox_connect_tcp", "443,8000-8010"),
            ("max_request_bytes", "0"),
        ])
        .unwrap();
        assert_eq!(c.fprocess, vec!["python3", "handler.py", "-v"]);
        assert_eq!(c.port, 0);
        assert_eq!(c.read_timeout, Some(Duration::from_secs(5)));
        assert_eq!(c.write_timeout, Some(Duration::from_secs(90)));
        assert_eq!(c.healthcheck_interval, Duration::from_secs(90));
        assert_eq!(c.exec_timeout, Some(Duration::from_millis(250)));
        assert_eq!(c.max_inflight, Some(3));
        assert!(!c.combine_output && c.cgi_headers);
        assert_eq!(c.content_type.as_deref(), Some("application/json"));
        assert_eq!(c.sandbox.mode, SandboxMode::BestEffort);
        assert_eq!(c.sandbox.ro, vec!["/srv/data", "/opt/x"]);
        assert_eq!(c.sandbox.connect_tcp.len(), 2);
        assert_eq!(c.max_request_bytes, None);
        let c = cfg(&[
            ("fprocess", "cat"),
            ("write_timeout", "0"),
            ("max_inflight", "0"),
        ])
        .unwrap();
        assert_eq!(c.write_timeout, None);
        assert_eq!(c.healthcheck_interval, Duration::ZERO);
        assert_eq!(c.max_inflight, None);
    }

    #[test]
    fn errors_name_the_variable() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[], "fprocess"),
            (&[("fprocess", "   ")], "fprocess"),
            (&[("fprocess", "cat"), ("port", "80x")], "port=`80x`"),
            (&[("fprocess", "cat"), ("port", "65536")], "port=`65536`"),
            (
                &[("fprocess", "cat"), ("exec_timeout", "10sec")],
                "exec_timeout=`10sec`",
            ),
            (
                &[("fprocess", "cat"), ("read_timeout", "-1")],
                "read_timeout=`-1`",
            ),
            (
                &[("fprocess", "cat"), ("write_debug", "1")],
                "write_debug=`1`",
            ),
            (
                &[("fprocess", "cat"), ("combine_output", "TRUE")],
                "combine_output=`TRUE`",
            ),
            (
                &[("fprocess", "cat"), ("max_inflight", "-2")],
                "max_inflight=`-2`",
            ),
            (
                &[("fprocess", "cat"), ("sandbox", "strict")],
                "sandbox=`strict`",
            ),
            (
                &[("fprocess", "cat"), ("sandbox_ro", "relative/x")],
                "sandbox_ro=`relative/x`",
            ),
            (
                &[("fprocess", "cat"), ("sandbox_connect_tcp", "70000")],
                "sandbox_connect_tcp=`70000`",
            ),
            (
                &[("fprocess", "cat"), ("sandbox_tmp", "tmp")],
                "sandbox_tmp=`tmp`",
            ),
            (&[("fprocess", "cat"), ("jwt_auth", "true")], "jwt_auth"),
        ];
        for (pairs, expect) in cases {
            let err = cfg(pairs).unwrap_err().to_string();
            assert!(err.starts_with(expect), "{pairs:?}: {err}");
        }
    }

    #[test]
    fn output_connection_and_call_limits() {
        let c = cfg(&[("fprocess", "cat")]).unwrap();
        assert_eq!(c.response_buffer_bytes, DEFAULT_RESPONSE_BUFFER);
        assert!(c.stream_response);
        assert_eq!(c.max_connections, None);
        assert_eq!(c.limits.processes, Some(DEFAULT_MAX_CALL_PROCESSES));
        assert_eq!(c.limits.tmp_bytes, Some(DEFAULT_MAX_CALL_TMP_BYTES));
        assert_eq!(c.limits.cpu, Some(DEFAULT_MAX_CALL_CPU));
        assert!(c.limits.explicit.is_empty());
        let c = cfg(&[
            ("fprocess", "cat"),
            ("response_buffer_bytes", "0"),
            ("stream_response", "false"),
            ("max_connections", "0"),
            ("max_call_processes", "0"),
            ("max_call_tmp_bytes", "0"),
            ("max_call_cpu", "1m30s"),
        ])
        .unwrap();
        assert_eq!(c.response_buffer_bytes, 0);
        assert!(!c.stream_response);
        assert_eq!(c.max_connections, None);
        assert_eq!(c.limits.processes, None);
        assert_eq!(c.limits.tmp_bytes, None);
        assert_eq!(c.limits.cpu, Some(Duration::from_secs(90)));
        assert_eq!(
            c.limits.explicit,
            ["max_call_processes", "max_call_tmp_bytes", "max_call_cpu"]
        );
        for (var, value) in [
            ("max_call_tmp_bytes", "100"),
            ("max_call_processes", "-1"),
            ("max_call_cpu", "forever"),
            ("stream_response", "yes"),
            ("max_connections", "many"),
        ] {
            let err = cfg(&[("fprocess", "cat"), (var, value)]).unwrap_err();
            assert!(
                err.to_string().starts_with(&format!("{var}=`{value}`")),
                "{err}"
            );
        }
    }

    #[test]
    fn the_documented_defaults_are_the_parsed_ones() {
        let unset = cfg(&[("fprocess", "cat")]).unwrap();
        for v in VARIABLES {
            if let DefaultValue::Required | DefaultValue::Unset | DefaultValue::Derived(_) =
                v.default
            {
                continue;
            }
            let text = v.default.text();
            let mut c = cfg(&[("fprocess", "cat"), (v.name, &text)])
                .unwrap_or_else(|e| panic!("{}={text}: {e}", v.name));
            c.limits.explicit.retain(|&e| e != v.name);
            assert_eq!(c, unset, "{}={text}", v.name);
        }
    }

    #[test]
    fn the_documentation_has_the_table_of_variables() {
        let doc = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../docs/watchdog.md"
        ))
        .unwrap();
        let rows: Vec<(String, String)> = doc
            .lines()
            .skip_while(|l| *l != "| variable | default | meaning |")
            .skip(2)
            .take_while(|l| l.starts_with('|'))
            .map(|l| {
                let cells: Vec<&str> = l.split('|').map(str::trim).collect();
                (cells[1].replace('`', ""), cells[2].replace('`', ""))
            })
            .collect();
        let table: Vec<(String, String)> = VARIABLES
            .iter()
            .map(|v| (v.name.to_string(), v.default.text()))
            .collect();
        assert_eq!(rows, table, "docs/watchdog.md, Configuration");
    }

    #[test]
    fn help_lists_every_variable() {
        let help = help_text();
        for v in VARIABLES {
            assert!(
                help.contains(&format!("  {} (default:", v.name)),
                "{}",
                v.name
            );
        }
        assert!(help.lines().all(|l| l.len() <= 100));
    }
}
