//! What the supervisor lets through: the policy's answer for the calls it performs.
//!
//! Landlock does not judge the supervisor's own calls (it runs outside the sandbox's
//! domain), so every rule Landlock would have applied to the caller's `listen` or `connect`
//! is applied here instead, from the same policy: the TCP (and, where the policy restricts
//! it, UDP) connect ports, the pathname unix sockets, the abstract-socket scope.

use std::fmt;
use std::path::{Path, PathBuf};

/// A set of ports.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ports(Vec<u16>);

impl Ports {
    /// The set of `ports`.
    pub fn new(mut ports: Vec<u16>) -> Ports {
        ports.sort_unstable();
        ports.dedup();
        Ports(ports)
    }

    /// Whether `port` is in the set.
    pub fn contains(&self, port: u16) -> bool {
        self.0.binary_search(&port).is_ok()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for Ports {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("none");
        }
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

/// What `listen()` may do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenRules {
    /// The ports an internet socket may accept connections on: the policy's bind ports.
    /// A socket bound to none of them, or never bound, is refused.
    pub tcp_ports: Ports,
    /// Whether a unix socket in the abstract namespace (named so, or unnamed: listen
    /// autobinds it there) may listen: when the policy allows some unix socket, or leaves
    /// them unrestricted. A unix socket bound to a path may always listen: creating it
    /// needed the policy's `make_sock` right.
    pub abstract_unix: bool,
}

/// What `connect()` may reach.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectRules {
    /// The TCP ports, or `None` when the policy does not restrict TCP connects.
    pub tcp_ports: Option<Ports>,
    /// The UDP ports, or `None` when the policy does not restrict UDP (where it allows
    /// UDP at all, the seccomp layer decides that at `socket()`).
    pub udp_ports: Option<Ports>,
    /// Canonical paths of the unix sockets the policy names, or of directories holding
    /// them.
    pub unix_paths: Vec<PathBuf>,
    /// Whether abstract unix sockets may be reached: only without the abstract-socket
    /// scope, which the supervisor cannot apply (it cannot tell which domain created a
    /// socket), so under the scope every abstract connect is refused.
    pub abstract_unix: bool,
}

impl ConnectRules {
    /// Whether the socket at the canonical path `real` may be reached.
    pub fn allows_unix_path(&self, real: &Path) -> bool {
        self.unix_paths.iter().any(|p| real.starts_with(p))
    }
}

/// Everything the supervisor decides.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rules {
    /// `listen()`, when it is supervised.
    pub listen: Option<ListenRules>,
    /// `connect()`, when it is supervised.
    pub connect: Option<ConnectRules>,
}

impl Rules {
    /// One line per rule, for reports.
    pub fn describe(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(l) = &self.listen {
            out.push(format!(
                "listen(): only on internet sockets bound to ports {} and unix sockets bound \
                 to a path{}",
                l.tcp_ports,
                if l.abstract_unix {
                    " or in the abstract namespace"
                } else {
                    ""
                }
            ));
        }
        if let Some(c) = &self.connect {
            let paths: Vec<String> = c
                .unix_paths
                .iter()
                .map(|p| p.display().to_string())
                .collect();
            out.push(format!(
                "connect(): pathname unix sockets only at or under {}; abstract unix sockets \
                 {}; TCP {}; UDP {}",
                if paths.is_empty() {
                    "no path".to_string()
                } else {
                    paths.join(", ")
                },
                if c.abstract_unix {
                    "allowed"
                } else {
                    "refused (abstract-socket scope)"
                },
                match &c.tcp_ports {
                    Some(p) => format!("to ports {p}"),
                    None => "to any port".to_string(),
                },
                match &c.udp_ports {
                    Some(p) => format!("to ports {p}"),
                    None => "as the seccomp layer allows it".to_string(),
                },
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_and_paths() {
        let p = Ports::new(vec![443, 80, 80]);
        assert!(p.contains(80) && p.contains(443) && !p.contains(8080));
        assert_eq!(p.to_string(), "80,443");
        assert_eq!(Ports::default().to_string(), "none");
        let c = ConnectRules {
            tcp_ports: None,
            udp_ports: None,
            unix_paths: vec![PathBuf::from("/run/app"), PathBuf::from("/tmp/db.sock")],
            abstract_unix: false,
        };
        assert!(c.allows_unix_path(Path::new("/run/app/s.sock")));
        assert!(c.allows_unix_path(Path::new("/tmp/db.sock")));
        assert!(!c.allows_unix_path(Path::new("/run/application.sock")));
        assert!(!c.allows_unix_path(Path::new("/tmp/db.sock2")));
        assert!(!c.allows_unix_path(Path::new("/tmp")));
    }
}
