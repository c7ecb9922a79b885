//! The kernel's Landlock audit records (Landlock ABI 7), read from the audit netlink
//! multicast group, for `moat run --explain`.
//!
//! Reading needs CAP_AUDIT_READ and audit enabled in the kernel (`auditctl -e 1`, or an
//! audit daemon); moat never changes the audit configuration itself. Where either is
//! missing, `--explain` falls back to the tracer. Hand-written over raw netlink: the few
//! messages needed (one status query, then reading text records) do not justify an audit
//! client crate.

use crate::diagnose::explain::Denied;
use moat_policy::{FsRight, NetRight, Right, Scope};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;

const NETLINK_AUDIT: i32 = 9;
const AUDIT_GET: u16 = 1000;
const AUDIT_NLGRP_READLOG: u32 = 1;
/// A SYSCALL record: who made the call.
pub const AUDIT_SYSCALL: u16 = 1300;
/// A Landlock denial.
pub const AUDIT_LANDLOCK_ACCESS: u16 = 1423;
/// A Landlock domain's life (allocated, deallocated).
pub const AUDIT_LANDLOCK_DOMAIN: u16 = 1424;

/// Why the audit log cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum AuditUnavailable {
    /// Audit is off in the kernel.
    #[error("kernel audit is disabled")]
    Disabled,
    /// Joining the read-only log group needs CAP_AUDIT_READ.
    #[error("reading the audit log needs CAP_AUDIT_READ ({0})")]
    NoPermission(io::Error),
    /// Any other failure.
    #[error("audit netlink: {0}")]
    Other(io::Error),
}

/// One audit record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// The record type.
    pub kind: u16,
    /// The event serial: records of one event share it.
    pub serial: u64,
    /// The text after `audit(TIME:SERIAL): `.
    pub text: String,
}

/// A subscription to the kernel's audit log.
pub struct AuditLog {
    fd: OwnedFd,
}

fn netlink_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain integer arguments.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            NETLINK_AUDIT,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a new descriptor owned here.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn bind(fd: &OwnedFd, groups: u32) -> io::Result<()> {
    // SAFETY: zeroed sockaddr_nl is valid; family and groups set below.
    let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    addr.nl_family = libc::AF_NETLINK as u16;
    addr.nl_groups = groups;
    // SAFETY: `addr` is a valid sockaddr_nl of the given size.
    let r = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&addr as *const libc::sockaddr_nl).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as u32,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Whether audit is enabled, asked with AUDIT_GET.
fn enabled() -> io::Result<bool> {
    let fd = netlink_socket()?;
    bind(&fd, 0)?;
    let mut msg = [0u8; 16];
    msg[0..4].copy_from_slice(&16u32.to_ne_bytes());
    msg[4..6].copy_from_slice(&AUDIT_GET.to_ne_bytes());
    msg[6..8].copy_from_slice(&(libc::NLM_F_REQUEST as u16).to_ne_bytes());
    // SAFETY: `msg` is a complete netlink header.
    if unsafe { libc::send(fd.as_raw_fd(), msg.as_ptr().cast(), msg.len(), 0) } < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut buf = vec![0u8; 8192];
    for _ in 0..50 {
        let mut pfd = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        unsafe { libc::poll(&mut pfd, 1, 100) };
        // SAFETY: `buf` is writable for its length.
        let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::WouldBlock {
                continue;
            }
            return Err(e);
        }
        let n = n as usize;
        if n < 16 {
            continue;
        }
        let kind = u16::from_ne_bytes([buf[4], buf[5]]);
        if kind == AUDIT_GET && n >= 24 {
            // struct audit_status: mask, then enabled.
            let enabled = u32::from_ne_bytes([buf[20], buf[21], buf[22], buf[23]]);
            return Ok(enabled != 0);
        }
        if kind == libc::NLMSG_ERROR as u16 && n >= 20 {
            let err = i32::from_ne_bytes([buf[16], buf[17], buf[18], buf[19]]);
            if err != 0 {
                return Err(io::Error::from_raw_os_error(-err));
            }
        }
    }
    Err(io::Error::new(
        io::ErrorKind::TimedOut,
        "no answer to AUDIT_GET",
    ))
}

impl AuditLog {
    /// Subscribes to the audit log, or says why it cannot.
    pub fn open() -> Result<AuditLog, AuditUnavailable> {
        match enabled() {
            Ok(true) => {}
            Ok(false) => return Err(AuditUnavailable::Disabled),
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
                return Err(AuditUnavailable::NoPermission(e))
            }
            Err(e) => return Err(AuditUnavailable::Other(e)),
        }
        let fd = netlink_socket().map_err(AuditUnavailable::Other)?;
        bind(&fd, AUDIT_NLGRP_READLOG).map_err(|e| {
            if e.raw_os_error() == Some(libc::EPERM) {
                AuditUnavailable::NoPermission(e)
            } else {
                AuditUnavailable::Other(e)
            }
        })?;
        Ok(AuditLog { fd })
    }

    /// Waits up to `timeout_ms` for records and returns those that arrived.
    pub fn read(&self, timeout_ms: i32) -> Vec<Record> {
        let mut out = Vec::new();
        let mut pfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(&mut pfd, 1, timeout_ms) } <= 0 {
            return out;
        }
        let mut buf = vec![0u8; 65536];
        loop {
            // SAFETY: `buf` is writable for its length.
            let n =
                unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n <= 0 {
                return out;
            }
            out.extend(messages(&buf[..n as usize]));
        }
    }
}

/// Splits a netlink datagram into records.
pub fn messages(mut data: &[u8]) -> Vec<Record> {
    let mut out = Vec::new();
    while data.len() >= 16 {
        let len = u32::from_ne_bytes([data[0], data[1], data[2], data[3]]) as usize;
        let kind = u16::from_ne_bytes([data[4], data[5]]);
        if len < 16 || len > data.len() {
            break;
        }
        let text = String::from_utf8_lossy(&data[16..len]);
        let text = text.trim_end_matches('\0');
        if let Some(r) = parse_record(kind, text) {
            out.push(r);
        }
        // Netlink messages are 4-byte aligned.
        let next = (len + 3) & !3;
        data = data.get(next..).unwrap_or(&[]);
    }
    out
}

/// Parses `audit(1795384519.147:22): rest`.
pub fn parse_record(kind: u16, text: &str) -> Option<Record> {
    let rest = text.strip_prefix("audit(")?;
    let (stamp, body) = rest.split_once("): ")?;
    let serial = stamp.split_once(':')?.1.parse().ok()?;
    Some(Record {
        kind,
        serial,
        text: body.to_string(),
    })
}

/// The raw value of `key=` in a record (numbers, names moat knows).
pub fn field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.split(' ')
        .find_map(|t| t.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
}

/// A string field the kernel logs as untrusted (paths, command names): in quotes, or
/// hex-encoded when it holds spaces, quotes or control characters.
pub fn string_field(text: &str, key: &str) -> Option<String> {
    let at = field(text, key)?;
    if let Some(q) = at.strip_prefix('"') {
        return Some(q.strip_suffix('"').unwrap_or(q).to_string());
    }
    if at.len() % 2 == 0 && !at.is_empty() && at.bytes().all(|b| b.is_ascii_hexdigit()) {
        let bytes: Option<Vec<u8>> = (0..at.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&at[i..i + 2], 16).ok())
            .collect();
        if let Some(b) = bytes {
            return Some(String::from_utf8_lossy(&b).into_owned());
        }
    }
    Some(at.to_string())
}

/// A right by the kernel's name, as audit spells it.
fn by_name<R: Right>(name: &str) -> Option<R> {
    R::ALL.iter().copied().find(|r| r.name() == name)
}

/// A Landlock denial record: its domain and what it denied.
pub fn parse_access(text: &str) -> Option<(String, Vec<Denied>)> {
    let domain = field(text, "domain")?.to_string();
    let blockers = field(text, "blockers")?;
    let mut fs_rights = Vec::new();
    let mut out = Vec::new();
    for b in blockers.split(',') {
        let (kind, name) = b.split_once('.')?;
        match kind {
            "fs" => fs_rights.push(by_name::<FsRight>(name)?),
            "net" => {
                let right = by_name::<NetRight>(name)?;
                let port = match right {
                    NetRight::BindTcp | NetRight::BindUdp => field(text, "src"),
                    NetRight::ConnectTcp | NetRight::ConnectSendUdp => field(text, "dest"),
                }
                .and_then(|p| p.parse().ok())?;
                out.push(Denied::Port { right, port });
            }
            "scope" => out.push(Denied::Scope(by_name::<Scope>(name)?)),
            _ => {}
        }
    }
    if fs_rights == [FsRight::IoctlDev] {
        // The record names the request: one that could not have mattered is left out.
        let cmd = field(text, "ioctlcmd")
            .and_then(|c| u64::from_str_radix(c.trim_start_matches("0x"), 16).ok());
        let rdev = string_field(text, "path").and_then(|p| {
            use std::os::unix::fs::MetadataExt;
            std::fs::metadata(p).ok().map(|m| m.rdev())
        });
        if let (Some(cmd), Some(rdev)) = (cmd, rdev) {
            if !crate::diagnose::explain::ioctl_matters(cmd, rdev) {
                fs_rights.clear();
            }
        }
    }
    if !fs_rights.is_empty() {
        let path = string_field(text, "path").unwrap_or_else(|| "?".into());
        out.push(Denied::Fs {
            path: PathBuf::from(path),
            rights: fs_rights,
        });
    }
    Some((domain, out))
}

/// A domain record saying `domain` was allocated by `pid`.
pub fn parse_allocation(text: &str) -> Option<(String, i32)> {
    if field(text, "status")? != "allocated" {
        return None;
    }
    Some((
        field(text, "domain")?.to_string(),
        field(text, "pid")?.parse().ok()?,
    ))
}

/// A SYSCALL record's process and command name.
pub fn parse_syscall(text: &str) -> Option<(i32, String)> {
    Some((
        field(text, "pid")?.parse().ok()?,
        string_field(text, "comm")?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn landlock_records_as_the_kernel_writes_them() {
        let r = parse_record(
            AUDIT_LANDLOCK_ACCESS,
            "audit(1795384680.191:34): domain=1395d1bc0 blockers=fs.execute,fs.read_file path=\"/usr/bin/x\" dev=\"vda\" ino=18504",
        )
        .unwrap();
        assert_eq!(r.serial, 34);
        let (domain, d) = parse_access(&r.text).unwrap();
        assert_eq!(domain, "1395d1bc0");
        assert_eq!(
            d,
            [Denied::Fs {
                path: "/usr/bin/x".into(),
                rights: vec![FsRight::Execute, FsRight::ReadFile]
            }]
        );
        let (_, d) =
            parse_access("domain=1 blockers=net.bind_tcp saddr=127.0.0.1 src=100").unwrap();
        assert_eq!(
            d,
            [Denied::Port {
                right: NetRight::BindTcp,
                port: 100
            }]
        );
        let (_, d) =
            parse_access("domain=1 blockers=net.connect_tcp daddr=127.0.0.1 dest=22").unwrap();
        assert_eq!(
            d,
            [Denied::Port {
                right: NetRight::ConnectTcp,
                port: 22
            }]
        );
        let (_, d) = parse_access("domain=1 blockers=scope.signal opid=1 ocomm=\"init\"").unwrap();
        assert_eq!(d, [Denied::Scope(Scope::Signal)]);
        // A path with a space is hex-encoded.
        let (_, d) =
            parse_access("domain=1 blockers=fs.read_file path=2F612062 dev=\"x\"").unwrap();
        assert_eq!(
            d,
            [Denied::Fs {
                path: "/a b".into(),
                rights: vec![FsRight::ReadFile]
            }]
        );
        assert_eq!(
            parse_allocation("domain=1395d1bb3 status=allocated mode=enforcing pid=29876 uid=0"),
            Some(("1395d1bb3".into(), 29876))
        );
        assert_eq!(
            parse_allocation("domain=1 status=deallocated denials=1"),
            None
        );
        assert_eq!(
            parse_syscall("arch=c000003e syscall=257 success=no exit=-13 ppid=1 pid=7 comm=\"cat\" exe=\"/usr/bin/cat\""),
            Some((7, "cat".into()))
        );
    }

    #[test]
    fn garbage_is_not_a_record() {
        for t in [
            "",
            "audit(",
            "audit(1:x): a",
            "domain=1",
            "blockers=fs.nope",
        ] {
            let _ = parse_record(1, t);
            assert!(parse_access(t).map(|(_, d)| d.is_empty()).unwrap_or(true));
        }
        assert!(messages(&[0xff; 40]).is_empty());
    }
}
