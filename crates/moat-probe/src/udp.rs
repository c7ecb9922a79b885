//! UDP and traffic operations, for the cgroup-bpf tests: the ways a program reaches a UDP
//! port (sendmsg with an address, connect, an IPv4-mapped IPv6 address, connect then a
//! send to another address), and known amounts of traffic to count.

use crate::{check, last, loopback, num, R};

pub fn run(op: &[String]) -> Option<R> {
    Some(match op[0].as_str() {
        "udp-sendto" => udp_sendto(op),
        "udp-connect" => num(op, 1).and_then(|p| udp_connect(p).map(|_| String::new())),
        "udp-connect-send" => num(op, 1).and_then(udp_connect_send),
        "udp-connect-sendto" => udp_connect_sendto(op),
        "udp6-mapped-sendto" => num(op, 1).and_then(udp6_mapped_sendto),
        "tcp-send" => tcp_send(op),
        _ => return None,
    })
}

fn udp_socket(domain: i32) -> Result<i32, crate::Outcome> {
    // SAFETY: plain integers.
    let fd = unsafe { libc::socket(domain, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(last());
    }
    Ok(fd)
}

fn sendto4(fd: i32, port: u16, data: &[u8]) -> R {
    let a = loopback(port);
    // SAFETY: valid buffer and address.
    let r = unsafe {
        libc::sendto(
            fd,
            data.as_ptr().cast(),
            data.len(),
            0,
            &a as *const _ as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    check(r as libc::c_int)
}

/// `udp-sendto PORT [SIZE COUNT [FROM]]`: COUNT datagrams of SIZE bytes to PORT from an
/// unconnected socket (bound to port FROM when given, else unbound).
fn udp_sendto(op: &[String]) -> R {
    let port: u16 = num(op, 1)?;
    let (size, count): (usize, u32) = if op.len() > 2 {
        (num(op, 2)?, num(op, 3)?)
    } else {
        (1, 1)
    };
    let fd = if op.len() > 4 {
        crate::bind(libc::SOCK_DGRAM, 0, num(op, 4)?)?
    } else {
        udp_socket(libc::AF_INET)?
    };
    let data = vec![b'u'; size];
    for _ in 0..count {
        sendto4(fd, port, &data)?;
    }
    Ok(String::new())
}

fn udp_connect(port: u16) -> Result<i32, crate::Outcome> {
    let fd = udp_socket(libc::AF_INET)?;
    let a = loopback(port);
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: valid address.
    check(unsafe { libc::connect(fd, &a as *const _ as *const libc::sockaddr, len) })?;
    Ok(fd)
}

/// `udp-connect-send PORT`: connect, then send without an address.
fn udp_connect_send(port: u16) -> R {
    let fd = udp_connect(port)?;
    // SAFETY: valid buffer.
    check(unsafe { libc::send(fd, b"c".as_ptr().cast(), 1, 0) } as libc::c_int)
}

/// `udp-connect-sendto PORT OTHER`: connect to PORT, then send to OTHER with an address.
fn udp_connect_sendto(op: &[String]) -> R {
    let fd = udp_connect(num(op, 1)?)?;
    sendto4(fd, num(op, 2)?, b"o")
}

/// `udp6-mapped-sendto PORT`: an IPv6 socket sending to ::ffff:127.0.0.1.
fn udp6_mapped_sendto(port: u16) -> R {
    let fd = udp_socket(libc::AF_INET6)?;
    // SAFETY: zeroed sockaddr_in6 is valid.
    let mut a: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
    a.sin6_family = libc::AF_INET6 as libc::sa_family_t;
    a.sin6_port = port.to_be();
    a.sin6_addr.s6_addr = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1];
    // SAFETY: valid buffer and address.
    let r = unsafe {
        libc::sendto(
            fd,
            b"6".as_ptr().cast(),
            1,
            0,
            &a as *const _ as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
        )
    };
    check(r as libc::c_int)
}

/// `tcp-send PORT SIZE [FROM]`: connect (from port FROM when given) and write SIZE bytes.
fn tcp_send(op: &[String]) -> R {
    use std::io::Write;
    use std::os::fd::FromRawFd;
    let port: u16 = num(op, 1)?;
    let size: usize = num(op, 2)?;
    let fd = if op.len() > 3 {
        crate::bind(libc::SOCK_STREAM, 0, num(op, 3)?)?
    } else {
        // SAFETY: plain integers.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(last());
        }
        fd
    };
    let a = loopback(port);
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: valid address.
    check(unsafe { libc::connect(fd, &a as *const _ as *const libc::sockaddr, len) })?;
    // SAFETY: fd is a connected socket this function owns from here on.
    let mut s = unsafe { std::net::TcpStream::from_raw_fd(fd) };
    s.write_all(&vec![b't'; size]).map_err(crate::io)?;
    s.shutdown(std::net::Shutdown::Write).map_err(crate::io)?;
    // Wait for the peer's close so every byte (and its ACK) has been through the hooks.
    let mut buf = [0u8; 64];
    while matches!(std::io::Read::read(&mut s, &mut buf), Ok(n) if n > 0) {}
    Ok(String::new())
}
