//! Landlock ABI versions, as a closed enumeration.
//!
//! Every table in moat that depends on the kernel is a `match` over [`Abi`] without a
//! wildcard arm, so that teaching moat a new ABI forces a look at each of them.

use std::fmt;

/// A Landlock ABI version. `V0` stands for "no Landlock at all".
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Abi {
    /// No Landlock: the kernel lacks it or it is disabled.
    V0,
    /// Linux 5.13: filesystem access control.
    V1,
    /// Linux 5.19: `refer`.
    V2,
    /// Linux 6.2: `truncate`.
    V3,
    /// Linux 6.7: TCP bind and connect rules.
    V4,
    /// Linux 6.10: `ioctl_dev`.
    V5,
    /// Linux 6.12: signal and abstract unix socket scopes.
    V6,
    /// Linux 6.15: audit log flags of `landlock_restrict_self`.
    V7,
    /// Linux 7.0: `tsync` (restrict all threads).
    V8,
    /// Linux 7.1: `resolve_unix`.
    V9,
    /// Linux 7.2: UDP bind and connect/send rules.
    V10,
}

impl Abi {
    /// The newest ABI moat knows.
    pub const LATEST: Abi = Abi::V10;

    /// All ABIs, oldest first.
    pub const ALL: [Abi; 11] = [
        Abi::V0,
        Abi::V1,
        Abi::V2,
        Abi::V3,
        Abi::V4,
        Abi::V5,
        Abi::V6,
        Abi::V7,
        Abi::V8,
        Abi::V9,
        Abi::V10,
    ];

    /// The ABI number as the kernel reports it.
    pub fn number(self) -> u32 {
        self as u32
    }

    /// The ABI for a kernel-reported number; numbers above [`Abi::LATEST`] saturate to it,
    /// because moat can only use what it knows.
    pub fn from_number(n: i64) -> Abi {
        match n {
            i64::MIN..=0 => Abi::V0,
            1 => Abi::V1,
            2 => Abi::V2,
            3 => Abi::V3,
            4 => Abi::V4,
            5 => Abi::V5,
            6 => Abi::V6,
            7 => Abi::V7,
            8 => Abi::V8,
            9 => Abi::V9,
            10..=i64::MAX => Abi::V10,
        }
    }

    /// The first mainline Linux release with this ABI.
    pub fn linux(self) -> &'static str {
        match self {
            Abi::V0 => "none",
            Abi::V1 => "5.13",
            Abi::V2 => "5.19",
            Abi::V3 => "6.2",
            Abi::V4 => "6.7",
            Abi::V5 => "6.10",
            Abi::V6 => "6.12",
            Abi::V7 => "6.15",
            Abi::V8 => "7.0",
            Abi::V9 => "7.1",
            Abi::V10 => "7.2",
        }
    }
}

impl fmt::Display for Abi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Abi::V0 => write!(f, "none"),
            other => write!(f, "{}", other.number()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_round_trip_and_saturate() {
        for abi in Abi::ALL {
            assert_eq!(Abi::from_number(abi.number() as i64), abi);
        }
        assert_eq!(Abi::from_number(-95), Abi::V0);
        assert_eq!(Abi::from_number(99), Abi::LATEST);
    }
}
