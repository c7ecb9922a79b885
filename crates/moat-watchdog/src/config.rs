//! The watchdog's configuration: environment variables, as the classic watchdog reads them,
//! plus moat's own for the sandbox.
//!
//! [`VARIABLES`] is the one list of every variable, its default and its meaning: `--help`
//! and the tests are built from it. [`Config::from_lookup`] reads them without side effects
//! (no file is opened, nothing is resolved); a value that does not parse is an error that
//! names the variable, where the classic watchdog would silently use the default.

use crate::duration::{parse_seconds_or_duration, DurationError};
use moat_policy::PortRange;
use std::path::PathBuf;
use std::time::Duration;

/// One configuration variable.
#[derive(Debug, Clone, Copy)]
pub struct Variable {
    /// Its name in the environment.
    pub name: &'static str,
    /// Its default, as text.
    pub default: &'static str,
    /// What it does.
    pub help: &'static str,
}

/// Every variable the watchdog reads, classic ones first.
pub const VARIABLES: &[Variable] = &[
    Variable { name: "fprocess", default: "(required)", help: "the function: a program and its arguments, split on spaces; the program is looked up on PATH once at start" },
    Variable { name: "port", default: "8080", help: "TCP port of the function server (all interfaces); 0 picks a free port, logged at start" },
    Variable { name: "read_timeout", default: "30s", help: "time allowed to read a request (headers and body), in seconds or as a Go duration (10s, 1m30s); 0 = none" },
    Variable { name: "write_timeout", default: "30s", help: "time allowed from the end of the request headers to the end of the response; a call still running then is killed and the connection closed without a response; 0 = none" },
    Variable { name: "exec_timeout", default: "0", help: "hard limit on a call: its whole process tree is killed and the client gets 408; 0 = none" },
    Variable { name: "max_inflight", default: "0", help: "calls allowed at once; beyond it, 429; 0 = unlimited" },
    Variable { name: "combine_output", default: "true", help: "true: the function's stderr goes into the response body with stdout; false: stderr is logged" },
    Variable { name: "write_debug", default: "false", help: "log each call's request path, query and output" },
    Variable { name: "debug_headers", default: "false", help: "log the request and response headers of each call" },
    Variable { name: "cgi_headers", default: "true", help: "pass request headers as Http_<Name> variables, plus Http_Method, Http_Query, Http_Path, Http_Host, Http_ContentLength" },
    Variable { name: "marshal_request", default: "false", help: "send the function a JSON envelope {\"header\":{...},\"body\":{\"raw\":\"<base64>\"}} instead of the raw body" },
    Variable { name: "content_type", default: "", help: "Content-Type of every response; empty: the request's Content-Type, else sniffed from the output" },
    Variable { name: "suppress_lock", default: "false", help: "do not write the lock file $TMPDIR/.lock (or /tmp/.lock) that health checks look for" },
    Variable { name: "healthcheck_interval", default: "write_timeout", help: "after SIGTERM: how long /_/health answers 503 while calls are still accepted, before the listener closes" },
    Variable { name: "jwt_auth", default: "false", help: "not supported: true refuses to start rather than serve without authentication" },
    Variable { name: "metrics_port", default: "8081", help: "TCP port of the Prometheus /metrics server; 0 picks a free port, logged at start" },
    Variable { name: "max_request_bytes", default: "67108864", help: "largest request body accepted (413 beyond); 0 = unlimited" },
    Variable { name: "max_response_bytes", default: "0", help: "largest function output accepted: beyond it the call is killed (answered 500, or its streamed response cut off); 0 = unlimited" },
    Variable { name: "response_buffer_bytes", default: "1048576", help: "output held in memory before the response starts: a function that ends within it gets the classic answer (status from its exit code, Content-Length, X-Duration-Seconds); beyond it the output is streamed (see stream_response)" },
    Variable { name: "stream_response", default: "true", help: "true: an output longer than response_buffer_bytes is streamed as it comes (200, chunked, memory bounded), and cut off without its end if the function then fails; false: such a call is killed and answered 500" },
    Variable { name: "max_connections", default: "3/4 of (RLIMIT_NOFILE - 64)", help: "connections open at once (both ports); beyond, the longest idle one is closed, or the new client refused with 503 if none is idle; 0 = the default" },
    Variable { name: "max_call_processes", default: "512", help: "processes and threads of one call, by the cgroup pids controller; a call that reaches it is answered 500; 0 = unlimited" },
    Variable { name: "max_call_tmp_bytes", default: "67108864", help: "size of a call's private temporary directory, a tmpfs of its own (needs root); a call that fills it is answered 500; 0 = unlimited (all calls share sandbox_tmp)" },
    Variable { name: "max_call_cpu", default: "5m", help: "CPU time of one call's processes together, counted by its control group: a call that uses it up is killed and answered 500; seconds or a Go duration; 0 = unlimited" },
    Variable { name: "sandbox", default: "required", help: "required: every call runs in its own Landlock sandbox and the watchdog refuses to start (exit 125) or to run a call when that cannot be done; best_effort: run with what the kernel enforces and log what is not; off: no sandbox (no Landlock, no seccomp filters, no private temporary directory; the process tree is still killed at the end of each call)" },
    Variable { name: "sandbox_ro", default: "", help: "extra paths the function may read, comma separated" },
    Variable { name: "sandbox_rox", default: "", help: "extra paths the function may read and execute, comma separated" },
    Variable { name: "sandbox_rw", default: "", help: "extra paths the function may read and write, comma separated (shared by all calls: they weaken isolation)" },
    Variable { name: "sandbox_connect_tcp", default: "", help: "TCP ports the function may connect to: numbers and first-last ranges, comma separated; empty: no network" },
    Variable { name: "sandbox_allow_udp", default: "false", help: "true: allow UDP sockets (DNS); otherwise the socket filter refuses them" },
    Variable { name: "sandbox_allow_ipc", default: "false", help: "true: allow SysV IPC, POSIX message queues and keyrings, which Landlock does not confine and through which calls could leave data for later calls; otherwise refused (EACCES)" },
    Variable { name: "sandbox_policy", default: "", help: "a moat policy file (moat, landlockconfig or OCI dialect) merged into each call's policy: its grants add up, and so do its restrictions" },
    Variable { name: "sandbox_tmp", default: "/dev/shm if tmpfs, else $TMPDIR or /tmp", help: "directory in which each call gets its private temporary directory" },
    Variable { name: "MOAT_MAX_ABI", default: "", help: "use at most this Landlock ABI, as if the kernel were older (testing)" },
    Variable { name: "MOAT_WATCHDOG_BALLAST_MB", default: "0", help: "benchmark aid: allocate and touch this many MiB at start and hold them, to measure spawn cost against the watchdog's size" },
];

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
pub const DEFAULT_RESPONSE_BUFFER: usize = 1 << 20;
/// The default of `max_call_processes`.
pub const DEFAULT_MAX_CALL_PROCESSES: u64 = 512;
/// The default of `max_call_tmp_bytes`: 64 MiB, the size of Docker's and Kubernetes'
/// default `/dev/shm`, which every call shared before.
pub const DEFAULT_MAX_CALL_TMP_BYTES: u64 = 64 << 20;
/// The default of `max_call_cpu`.
pub const DEFAULT_MAX_CALL_CPU: Duration = Duration::from_secs(300);

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
pub struct ProcessEnv;

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
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// The default of `max_request_bytes`: 64 MiB.
pub const DEFAULT_MAX_REQUEST_BYTES: u64 = 64 << 20;

/// Reads variables, treating an empty value as unset (as the classic watchdog does).
struct Reader<'a, L: Lookup + ?Sized>(&'a L);

impl<L: Lookup + ?Sized> Reader<'_, L> {
    fn text(&self, var: &'static str) -> Result<Option<String>, ConfigError> {
        Ok(self.0.get(var)?.filter(|v| !v.is_empty()))
    }

    fn bool(&self, var: &'static str, default: bool) -> Result<bool, ConfigError> {
        match self.text(var)?.as_deref() {
            None => Ok(default),
            Some("true") => Ok(true),
            Some("false") => Ok(false),
            Some(other) => Err(invalid(var, other, "write true or false")),
        }
    }

    fn timeout(
        &self,
        var: &'static str,
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

    fn number<T: std::str::FromStr>(
        &self,
        var: &'static str,
        what: &str,
    ) -> Result<Option<T>, ConfigError> {
        match self.text(var)? {
            None => Ok(None),
            Some(v) => v.parse::<T>().map(Some).map_err(|_| invalid(var, &v, what)),
        }
    }

    fn list(&self, var: &'static str) -> Result<Vec<String>, ConfigError> {
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

    fn paths(&self, var: &'static str) -> Result<Vec<String>, ConfigError> {
        let paths = self.list(var)?;
        for p in &paths {
            if !p.starts_with('/') {
                return Err(invalid(var, p, "paths must be absolute"));
            }
        }
        Ok(paths)
    }
}

fn invalid(var: &'static str, value: &str, expected: &str) -> ConfigError {
    ConfigError::Invalid {
        var,
        value: value.to_string(),
        expected: expected.to_string(),
    }
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(&ProcessEnv)
    }

    /// Reads the configuration from `env`. Pure: nothing is opened or resolved.
    pub fn from_lookup<L: Lookup + ?Sized>(env: &L) -> Result<Config, ConfigError> {
        let r = Reader(env);
        let fprocess = split_fprocess(&r.text("fprocess")?.unwrap_or_default());
        if fprocess.is_empty() {
            return Err(ConfigError::Missing {
                var: "fprocess",
                why: "set it to the function's command, for example fprocess=\"cat\"",
            });
        }
        if r.bool("jwt_auth", false)? {
            return Err(ConfigError::Unsupported {
                var: "jwt_auth",
                why: "authenticate in front of the watchdog (the gateway or a proxy)",
            });
        }
        let port = r
            .number::<u16>("port", "a TCP port, 0 to 65535")?
            .unwrap_or(8080);
        let metrics_port = r
            .number::<u16>("metrics_port", "a TCP port, 0 to 65535")?
            .unwrap_or(8081);
        let read_timeout = r.timeout("read_timeout", DEFAULT_TIMEOUT)?;
        let write_timeout = r.timeout("write_timeout", DEFAULT_TIMEOUT)?;
        let exec_timeout = r.timeout("exec_timeout", Duration::ZERO)?;
        let healthcheck_interval = r
            .timeout(
                "healthcheck_interval",
                write_timeout.unwrap_or(Duration::ZERO),
            )?
            .unwrap_or(Duration::ZERO);
        let max_inflight = r
            .number::<usize>("max_inflight", "a number of calls (0 = unlimited)")?
            .filter(|&n| n > 0);
        let bytes = "a number of bytes (0 = unlimited)";
        let max_request_bytes = match r.number::<u64>("max_request_bytes", bytes)? {
            None => Some(DEFAULT_MAX_REQUEST_BYTES),
            Some(0) => None,
            Some(n) => Some(n),
        };
        let max_response_bytes = r
            .number::<u64>("max_response_bytes", bytes)?
            .filter(|&n| n > 0);
        let response_buffer_bytes = r
            .number::<usize>("response_buffer_bytes", "a number of bytes")?
            .unwrap_or(DEFAULT_RESPONSE_BUFFER);
        let max_connections = r
            .number::<usize>(
                "max_connections",
                "a number of connections (0 = the default)",
            )?
            .filter(|&n| n > 0);
        let mut explicit = Vec::new();
        for var in ["max_call_processes", "max_call_tmp_bytes", "max_call_cpu"] {
            if r.text(var)?.is_some() {
                explicit.push(var);
            }
        }
        let limits = CallLimits {
            processes: Some(
                r.number::<u64>(
                    "max_call_processes",
                    "a number of processes (0 = unlimited)",
                )?
                .unwrap_or(DEFAULT_MAX_CALL_PROCESSES),
            )
            .filter(|&n| n > 0),
            tmp_bytes: match r.number::<u64>("max_call_tmp_bytes", bytes)? {
                None => Some(DEFAULT_MAX_CALL_TMP_BYTES),
                Some(0) => None,
                Some(n) if n < 4096 => {
                    return Err(invalid(
                        "max_call_tmp_bytes",
                        &n.to_string(),
                        "at least 4096 bytes (one page), or 0 for unlimited",
                    ))
                }
                Some(n) => Some(n),
            },
            cpu: r.timeout("max_call_cpu", DEFAULT_MAX_CALL_CPU)?,
            explicit,
        };
        let mode = match r.text("sandbox")?.as_deref() {
            None | Some("required") => SandboxMode::Required,
            Some("best_effort") | Some("best-effort") => SandboxMode::BestEffort,
            Some("off") => SandboxMode::Off,
            Some(other) => {
                return Err(invalid(
                    "sandbox",
                    other,
                    "write required, best_effort or off",
                ))
            }
        };
        let mut connect_tcp = Vec::new();
        for p in r.list("sandbox_connect_tcp")? {
            connect_tcp.push(
                PortRange::parse(&p)
                    .map_err(|e| invalid("sandbox_connect_tcp", &p, &e.to_string()))?,
            );
        }
        let sandbox = SandboxConfig {
            mode,
            ro: r.paths("sandbox_ro")?,
            rox: r.paths("sandbox_rox")?,
            rw: r.paths("sandbox_rw")?,
            connect_tcp,
            allow_udp: r.bool("sandbox_allow_udp", false)?,
            allow_ipc: r.bool("sandbox_allow_ipc", false)?,
            policy: r.text("sandbox_policy")?.map(PathBuf::from),
            tmp_root: match r.text("sandbox_tmp")? {
                Some(p) if !p.starts_with('/') => {
                    return Err(invalid("sandbox_tmp", &p, "the path must be absolute"))
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
            combine_output: r.bool("combine_output", true)?,
            write_debug: r.bool("write_debug", false)?,
            debug_headers: r.bool("debug_headers", false)?,
            cgi_headers: r.bool("cgi_headers", true)?,
            marshal_request: r.bool("marshal_request", false)?,
            content_type: r.text("content_type")?,
            suppress_lock: r.bool("suppress_lock", false)?,
            max_request_bytes,
            max_response_bytes,
            response_buffer_bytes,
            stream_response: r.bool("stream_response", true)?,
            max_connections,
            limits,
            sandbox,
            ballast_mb: r
                .number::<usize>("MOAT_WATCHDOG_BALLAST_MB", "a number of MiB")?
                .unwrap_or(0),
        })
    }
}

/// Splits `fprocess` on spaces, as the classic watchdog does. Runs of spaces count as one
/// (the classic watchdog passes an empty argument for each extra space, which no function
/// can have meant).
pub fn split_fprocess(text: &str) -> Vec<String> {
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
            if v.default.is_empty() {
                "unset"
            } else {
                v.default
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
