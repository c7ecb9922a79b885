//! Linux capabilities by name and number, and what a policy says about keeping them.
//!
//! Landlock does not take capabilities away: a sandboxed root can still chown a file the
//! policy denies, open perf events on other processes, load BPF programs or kernel modules.
//! So every enforcement point drops all of them before exec unless the policy keeps some
//! by name ([`KeepCaps`]). The numbers are the kernel's (`linux/capability.h`); names are
//! written without the `CAP_` prefix in moat's policies and accepted with it.

use std::fmt;

/// The kernel's capability names, indexed by capability number.
const NAMES: [&str; 41] = [
    "chown",
    "dac_override",
    "dac_read_search",
    "fowner",
    "fsetid",
    "kill",
    "setgid",
    "setuid",
    "setpcap",
    "linux_immutable",
    "net_bind_service",
    "net_broadcast",
    "net_admin",
    "net_raw",
    "ipc_lock",
    "ipc_owner",
    "sys_module",
    "sys_rawio",
    "sys_chroot",
    "sys_ptrace",
    "sys_pacct",
    "sys_admin",
    "sys_boot",
    "sys_nice",
    "sys_resource",
    "sys_time",
    "sys_tty_config",
    "mknod",
    "lease",
    "audit_write",
    "audit_control",
    "setfcap",
    "mac_override",
    "mac_admin",
    "syslog",
    "wake_alarm",
    "block_suspend",
    "audit_read",
    "perfmon",
    "bpf",
    "checkpoint_restore",
];

/// The highest capability number a kernel can have in the 64-bit capability sets
/// (`_LINUX_CAPABILITY_U32S_3` words of 32 bits).
pub const MAX_CAP: u8 = 63;

/// One capability, by its kernel number.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cap(u8);

impl Cap {
    /// `CAP_CHOWN`.
    pub const CHOWN: Cap = Cap(0);
    /// `CAP_DAC_OVERRIDE`.
    pub const DAC_OVERRIDE: Cap = Cap(1);
    /// `CAP_DAC_READ_SEARCH`.
    pub const DAC_READ_SEARCH: Cap = Cap(2);
    /// `CAP_FOWNER`.
    pub const FOWNER: Cap = Cap(3);
    /// `CAP_NET_BIND_SERVICE`.
    pub const NET_BIND_SERVICE: Cap = Cap(10);
    /// `CAP_SETPCAP`: needed to shrink the bounding set.
    pub const SETPCAP: Cap = Cap(8);

    /// The capability with this number, if it fits the kernel's sets.
    pub fn from_number(n: u8) -> Option<Cap> {
        (n <= MAX_CAP).then_some(Cap(n))
    }

    /// The kernel number.
    pub fn number(self) -> u8 {
        self.0
    }

    /// The name in upper case with the `CAP_` prefix (`CAP_CHOWN`), or `CAP_<n>` for a
    /// number moat has no name for.
    pub fn name(self) -> String {
        match NAMES.get(usize::from(self.0)) {
            Some(n) => format!("CAP_{}", n.to_ascii_uppercase()),
            None => format!("CAP_{}", self.0),
        }
    }

    /// Looks a capability up by name (`chown`, `CHOWN`, `CAP_CHOWN`, `cap-chown`) or number.
    pub fn parse(text: &str) -> Result<Cap, String> {
        let lower = text.trim().to_ascii_lowercase().replace('-', "_");
        let bare = lower.strip_prefix("cap_").unwrap_or(&lower);
        if let Some(i) = NAMES.iter().position(|n| *n == bare) {
            return Ok(Cap(i as u8));
        }
        if !bare.is_empty() && bare.bytes().all(|b| b.is_ascii_digit()) {
            return bare
                .parse::<u8>()
                .ok()
                .and_then(Cap::from_number)
                .ok_or_else(|| format!("capability number {bare} is above {MAX_CAP}"));
        }
        Err(format!(
            "unknown capability `{text}` (write a name such as CHOWN or NET_BIND_SERVICE, see \
             capabilities(7), or `all` to keep every capability moat starts with)"
        ))
    }
}

impl fmt::Display for Cap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// A set of capabilities, as the kernel's 64-bit mask.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default, Hash)]
pub struct CapSet(u64);

impl CapSet {
    /// The empty set.
    pub const EMPTY: CapSet = CapSet(0);

    /// The set for a kernel mask.
    pub fn from_bits(bits: u64) -> CapSet {
        CapSet(bits)
    }

    /// The kernel mask.
    pub fn bits(self) -> u64 {
        self.0
    }

    /// The set holding these capabilities.
    pub fn of(caps: &[Cap]) -> CapSet {
        let mut s = CapSet::EMPTY;
        for c in caps {
            s.insert(*c);
        }
        s
    }

    /// Adds one.
    pub fn insert(&mut self, c: Cap) {
        self.0 |= 1 << c.0;
    }

    /// Whether it holds `c`.
    pub fn contains(self, c: Cap) -> bool {
        self.0 & (1 << c.0) != 0
    }

    /// Whether it is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The union.
    pub fn union(self, other: CapSet) -> CapSet {
        CapSet(self.0 | other.0)
    }

    /// The intersection.
    pub fn intersect(self, other: CapSet) -> CapSet {
        CapSet(self.0 & other.0)
    }

    /// The capabilities, lowest number first.
    pub fn iter(self) -> impl Iterator<Item = Cap> {
        (0..=MAX_CAP)
            .filter(move |n| self.0 & (1 << n) != 0)
            .map(Cap)
    }
}

impl fmt::Display for CapSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("(none)");
        }
        let names: Vec<String> = self.iter().map(Cap::name).collect();
        f.write_str(&names.join(","))
    }
}

/// The capabilities a policy keeps; every other one is dropped before exec.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub struct KeepCaps {
    /// Keep these (those the process has; naming one it lacks grants nothing).
    pub caps: CapSet,
    /// Keep every capability the process starts with: for a container launcher whose
    /// runtime already applied the container's own capability set.
    pub all: bool,
}

impl KeepCaps {
    /// Keeps every capability the process has.
    pub const ALL: KeepCaps = KeepCaps {
        caps: CapSet::EMPTY,
        all: true,
    };

    /// Parses a list of names, where `all` keeps everything.
    pub fn parse<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<KeepCaps, String> {
        let mut keep = KeepCaps::default();
        for n in names {
            if n.trim().eq_ignore_ascii_case("all") {
                keep.all = true;
            } else {
                keep.caps.insert(Cap::parse(n)?);
            }
        }
        Ok(keep)
    }

    /// Both sets of kept capabilities.
    pub fn union(self, other: KeepCaps) -> KeepCaps {
        KeepCaps {
            caps: self.caps.union(other.caps),
            all: self.all || other.all,
        }
    }

    /// The names as a policy writes them (`all` first when set).
    pub fn names(self) -> Vec<String> {
        let mut out = Vec::new();
        if self.all {
            out.push("all".to_string());
        }
        out.extend(
            self.caps
                .iter()
                .map(|c| c.name().trim_start_matches("CAP_").to_string()),
        );
        out
    }
}

impl fmt::Display for KeepCaps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.all, self.caps.is_empty()) {
            (true, _) => f.write_str("every capability moat started with"),
            (false, true) => f.write_str("none"),
            (false, false) => write!(f, "{}", self.caps),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers() {
        assert_eq!(Cap::parse("CHOWN"), Ok(Cap::CHOWN));
        assert_eq!(
            Cap::parse("cap_net_bind_service"),
            Ok(Cap::NET_BIND_SERVICE)
        );
        assert_eq!(Cap::parse("CAP-SYS-ADMIN").map(Cap::number), Ok(21));
        assert_eq!(
            Cap::parse("40").map(Cap::name),
            Ok("CAP_CHECKPOINT_RESTORE".into())
        );
        assert_eq!(Cap::parse("63").map(Cap::name), Ok("CAP_63".into()));
        assert!(Cap::parse("64").is_err());
        assert!(Cap::parse("chwon")
            .unwrap_err()
            .contains("unknown capability `chwon`"));
        assert_eq!(Cap::parse("bpf").map(Cap::number), Ok(39));
        for (i, n) in NAMES.iter().enumerate() {
            assert_eq!(Cap::parse(n), Ok(Cap(i as u8)));
        }
    }

    #[test]
    fn keep_lists() {
        let k = KeepCaps::parse(["chown", "NET_RAW"]).unwrap();
        assert!(!k.all && k.caps.contains(Cap::CHOWN) && k.caps.contains(Cap(13)));
        assert_eq!(k.names(), vec!["CHOWN", "NET_RAW"]);
        assert!(KeepCaps::parse(["ALL"]).unwrap().all);
        assert_eq!(KeepCaps::default().union(KeepCaps::ALL), KeepCaps::ALL);
        assert_eq!(
            CapSet::of(&[Cap::CHOWN, Cap::FOWNER]).to_string(),
            "CAP_CHOWN,CAP_FOWNER"
        );
    }
}
