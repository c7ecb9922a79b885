//! TCP/UDP port numbers and ranges as policies write them (`8080`, `"8000-8010"`).

use std::fmt;

/// An inclusive range of ports; a single port is a range of one.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortRange {
    /// First port of the range.
    pub start: u16,
    /// Last port of the range (inclusive).
    pub end: u16,
}

/// Why a port specification was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PortError {
    /// Not a number or range.
    #[error("`{0}` is not a port or a port range (write 8080 or 8000-8010)")]
    Syntax(String),
    /// A number outside 0..=65535.
    #[error("port {0} is outside 0..=65535")]
    OutOfRange(i128),
    /// A range whose end is before its start.
    #[error("port range {0}-{1} ends before it starts")]
    Reversed(u16, u16),
}

impl PortRange {
    /// A range of one port.
    pub fn single(port: u16) -> Self {
        PortRange {
            start: port,
            end: port,
        }
    }

    /// Checks an integer as a port, never wrapping.
    pub fn port_from_int(n: i128) -> Result<u16, PortError> {
        u16::try_from(n).map_err(|_| PortError::OutOfRange(n))
    }

    /// Parses `8080` or `8000-8010` (spaces around the dash allowed).
    pub fn parse(text: &str) -> Result<Self, PortError> {
        let text = text.trim();
        let number = |s: &str| -> Result<u16, PortError> {
            let s = s.trim();
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                return Err(PortError::Syntax(text.to_string()));
            }
            // More than 39 digits cannot be an i128; it is out of range either way.
            let n: i128 = s.parse().unwrap_or(i128::MAX);
            Self::port_from_int(n)
        };
        let (start, end) = match text.split_once('-') {
            Some((a, b)) => (number(a)?, number(b)?),
            None => {
                let p = number(text)?;
                (p, p)
            }
        };
        if end < start {
            return Err(PortError::Reversed(start, end));
        }
        Ok(PortRange { start, end })
    }

    /// The ports of the range.
    pub fn ports(self) -> impl Iterator<Item = u16> {
        self.start..=self.end
    }

    /// How many ports the range holds.
    pub fn len(self) -> usize {
        usize::from(self.end - self.start) + 1
    }

    /// Always false: a range holds at least one port. Present for API symmetry with `len`.
    pub fn is_empty(self) -> bool {
        false
    }

    /// Whether the range holds this port.
    pub fn contains(self, port: u16) -> bool {
        self.start <= port && port <= self.end
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.start == self.end {
            write!(f, "{}", self.start)
        } else {
            write!(f, "{}-{}", self.start, self.end)
        }
    }
}

/// Parses a comma-separated list of ports and ranges, as command-line flags take them.
pub fn parse_port_list(text: &str) -> Result<Vec<PortRange>, PortError> {
    text.split(',')
        .filter(|s| !s.trim().is_empty())
        .map(PortRange::parse)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ports_and_ranges() {
        assert_eq!(PortRange::parse("80"), Ok(PortRange::single(80)));
        assert_eq!(
            PortRange::parse("8000 - 8010"),
            Ok(PortRange {
                start: 8000,
                end: 8010
            })
        );
        assert_eq!(PortRange::parse("0"), Ok(PortRange::single(0)));
        assert_eq!(PortRange::parse("65535"), Ok(PortRange::single(65535)));
    }

    #[test]
    fn refuses_out_of_range_without_wrapping() {
        assert_eq!(PortRange::parse("65536"), Err(PortError::OutOfRange(65536)));
        assert_eq!(PortRange::parse("-1"), Err(PortError::Syntax("-1".into())));
        assert_eq!(PortRange::parse("10-5"), Err(PortError::Reversed(10, 5)));
        assert_eq!(
            PortRange::parse("http"),
            Err(PortError::Syntax("http".into()))
        );
        assert!(matches!(
            PortRange::parse("99999999999999999999999999999999999999999999"),
            Err(PortError::OutOfRange(_))
        ));
        assert_eq!(PortRange::port_from_int(-5), Err(PortError::OutOfRange(-5)));
    }

    #[test]
    fn lists() {
        assert_eq!(parse_port_list("80,443,8000-8001").map(|v| v.len()), Ok(3));
    }
}
