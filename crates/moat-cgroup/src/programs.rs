//! The programs moat attaches to a container's cgroup: the counters, shared by the node's
//! containers, and the UDP port rules, built for one container.
//!
//! Counters (`cgroup_skb`, ingress and egress, loaded once per node): find the packet's
//! container by its socket's cgroup id and count bytes and packets per container,
//! direction and local port in the node's per-CPU hash (no atomics on the packet path
//! but one when a container's port is first seen, which claims one of the container's
//! [`PORT_ENTRIES`]); a port beyond them goes to the direction's "other" slot.
//! Bytes are the IP packet's length (headers included), as the cgroup hook sees it. The
//! programs always let the packet through.
//!
//! UDP ports (`cgroup/sock_addr`: bind, connect and sendmsg, IPv4 and IPv6): decide as
//! Landlock ABI 10's `bind_udp` and `connect_send_udp` rules do. bind() needs the port in
//! the bind rules (port 0 included); connect() and sendmsg() to an explicit address need
//! the destination port in the connect rules, and a connect() on a socket with no local
//! port yet makes the kernel pick one (autobind), which Landlock allows only when bind(0)
//! would be. One difference remains: Landlock also checks the autobind of a first
//! sendmsg() on an unbound socket, but the kernel autobinds before the cgroup sendmsg
//! hooks run, so here that send is decided on its destination port alone. A refusal counts in the `denied` map and returns EACCES, as Landlock does
//! (a sock_addr program that only returns 0 gives EPERM; `bpf_set_retval` chooses).
//! IPv4-mapped IPv6 addresses reach the IPv6 hooks with the same port, and AF_UNSPEC
//! (disconnect) never reaches a connect hook, as Landlock allows it too.

use crate::insn::*;
use crate::sys::AttachType;
use moat_policy::PortRange;

/// (direction, local port) pairs counted by name for one container. A container serving
/// more distinct local ports than this (ephemeral ports of many outgoing connections)
/// counts the rest under "other".
pub const PORT_ENTRIES: u32 = 1024;
/// Entries of the node's traffic map, all containers together (a hash without
/// preallocation: memory goes to the entries in use, plus 16 bytes of bucket each).
pub const TRAFFIC_ENTRIES: u32 = 1 << 18;
/// The traffic map's key: the container's cgroup id (8 bytes), then `direction << 16 |
/// local port` or `2 << 16 | direction` for "other" (4), then four bytes of padding.
pub const TRAFFIC_KEY_SIZE: u32 = 16;
/// The traffic map's value: bytes then packets, per CPU.
pub const COUNTER_SIZE: u32 = 16;

/// Direction of a counted packet, as the high half of a traffic key.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Received by the container.
    Receive = 0,
    /// Sent by the container.
    Transmit = 1,
}

/// The operations the UDP hooks decide, in the order of the `denied` map's slots.
pub const OPERATIONS: [(AttachType, &str); 6] = [
    (AttachType::Bind4, "bind4"),
    (AttachType::Bind6, "bind6"),
    (AttachType::Connect4, "connect4"),
    (AttachType::Connect6, "connect6"),
    (AttachType::Sendmsg4, "sendmsg4"),
    (AttachType::Sendmsg6, "sendmsg6"),
];

// Offsets in the program contexts (linux/bpf.h).
const SKB_LEN: i16 = 0;
const SKB_LOCAL_PORT: i16 = 136;
const ADDR_USER_PORT: i16 = 24;
const ADDR_TYPE: i16 = 32;
const ADDR_PROTOCOL: i16 = 36;
const ADDR_SK: i16 = 64;
const SOCK_SRC_PORT: i16 = 44;
/// `BPF_NOEXIST`.
const NOEXIST: i32 = 1;

/// Containers whose traffic one node counts at a time: entries of the node's map from a
/// container's cgroup id to the number of port pairs it has claimed in the traffic map
/// (moat-runtime removes a container's entry at `delete`).
pub const CONTAINERS_ENTRIES: u32 = 65536;

/// How deep below the cgroup v2 root a container's cgroup may be for a socket in a
/// cgroup of its own below the container's (a nested cgroup) to be counted.
pub const MAX_DEPTH: i32 = 32;

/// The key that holds what does not fit in [`PORT_ENTRIES`] for `dir`. moat-runtime
/// inserts it when it registers the container, so it is there however full the map gets.
pub fn other_key(dir: Direction) -> u32 {
    (2 << 16) | dir as u32
}

/// The node traffic map's key for `key` ([`other_key`], or direction and port as the
/// counting program builds it on its stack at `r10 - 16`) of the container whose cgroup id
/// is `id`.
pub(crate) fn traffic_key(id: u64, key: u32) -> [u8; TRAFFIC_KEY_SIZE as usize] {
    let mut k = [0u8; TRAFFIC_KEY_SIZE as usize];
    k[..8].copy_from_slice(&id.to_ne_bytes());
    k[8..12].copy_from_slice(&key.to_ne_bytes());
    k
}

/// What a node traffic key says: the cgroup id, the direction and the port (`None` for
/// "other").
pub(crate) fn parse_traffic_key(
    k: &[u8; TRAFFIC_KEY_SIZE as usize],
) -> (u64, Direction, Option<u16>) {
    let mut id = [0u8; 8];
    id.copy_from_slice(&k[..8]);
    let mut key = [0u8; 4];
    key.copy_from_slice(&k[8..12]);
    let (dir, port) = parse_key(u32::from_ne_bytes(key));
    (u64::from_ne_bytes(id), dir, port)
}

/// What a traffic key's second field says: the direction, and the port (`None` for
/// "other").
pub fn parse_key(key: u32) -> (Direction, Option<u16>) {
    let (dir, port) = if key >> 16 == 2 {
        (key & 1, None)
    } else {
        (key >> 16, Some(key as u16))
    };
    let dir = if dir == 0 {
        Direction::Receive
    } else {
        Direction::Transmit
    };
    (dir, port)
}

/// `r0 = lookup(map, r10 + key)`: a map lookup of the key on the stack at `key`.
fn lookup(a: &mut Asm, map: i32, key: i16) {
    a.push(ld_map_fd(R1, map));
    a.push([
        mov(R2, R10),
        add_imm(R2, i32::from(key)),
        call(helper::MAP_LOOKUP_ELEM),
    ]);
}

/// The counting program for one direction, shared by every container of the node:
/// `containers` maps a cgroup id to the container's claimed port pairs, `traffic`
/// holds every container's counters under (cgroup id, direction and port).
///
/// Why one program per node rather than one per container with the container's maps
/// built in: loading (verifying and compiling) the two programs took about 0.3 ms of
/// every confined container's start (docs/PERFORMANCE.md, cgroup-bpf), and a lookup of
/// the socket's cgroup id costs the packet path a few nanoseconds. Why two flat maps
/// rather than a map of per-container maps: every update of a map of maps from user
/// space waits for an RCU grace period (milliseconds), at every start and every delete.
pub fn counter(dir: Direction, containers: i32, traffic: i32) -> Vec<Insn> {
    let mut a = Asm::default();
    let found = a.label();
    let found_above = a.label();
    let add_to = a.label();
    let other = a.label();
    let out = a.label();
    // The key at r10-16: cgroup id (8 bytes), direction and port (4), padding (4).
    a.push([
        mov(R6, R1),
        ldx_w(R7, R6, SKB_LEN),
        ldx_w(R2, R6, SKB_LOCAL_PORT),
        or_imm(R2, (dir as i32) << 16),
        stx_w(R10, -8, R2),
        st_w(R10, -4, 0),
        call(helper::SKB_CGROUP_ID),
        stx_dw(R10, -16, R0),
    ]);
    // Almost every packet: a socket in the container's own cgroup on a port already
    // counted. One lookup, then the adds: the traffic map only ever holds keys of
    // registered containers, so a hit needs no look at `containers` (that second lookup
    // measured a third of the program's time, and UDP pays it twice per datagram).
    lookup(&mut a, traffic, -16);
    a.jump(jne_imm(R0, 0, 0), add_to);
    lookup(&mut a, containers, -16);
    a.jump(jne_imm(R0, 0, 0), found);
    // A socket in a cgroup below the container's: the container is its ancestor nearest
    // the root that is registered (containers do not nest in one another's cgroups).
    for level in 1..=MAX_DEPTH {
        a.push([
            mov(R1, R6),
            mov_imm(R2, level),
            call(helper::SKB_ANCESTOR_CGROUP_ID),
        ]);
        a.jump(jeq_imm(R0, 0, 0), out);
        a.push([stx_dw(R10, -16, R0)]);
        lookup(&mut a, containers, -16);
        a.jump(jne_imm(R0, 0, 0), found_above);
    }
    a.jump(ja(0), out);
    // Found through an ancestor: the key now names the container; its port may be
    // counted already.
    a.place(found_above);
    a.push([mov(R8, R0)]);
    lookup(&mut a, traffic, -16);
    a.jump(jne_imm(R0, 0, 0), add_to);
    a.push([mov(R0, R8)]);
    a.place(found);
    a.push([mov(R8, R0)]);
    // A new port: claim one of the container's PORT_ENTRIES, then insert {len, 1}.
    a.push([mov_imm(R1, 1), atomic_fetch_add_dw(R8, 0, R1)]);
    a.jump(jge_imm(R1, PORT_ENTRIES as i32, 0), other);
    a.push([stx_dw(R10, -32, R7), st_dw(R10, -24, 1)]);
    a.push(ld_map_fd(R1, traffic));
    a.push([
        mov(R2, R10),
        add_imm(R2, -16),
        mov(R3, R10),
        add_imm(R3, -32),
        mov_imm(R4, NOEXIST),
        call(helper::MAP_UPDATE_ELEM),
    ]);
    a.jump(jeq_imm(R0, 0, 0), out);
    // Lost a race with another insert of the same key, or no room: look again, then
    // fall back to "other".
    lookup(&mut a, traffic, -16);
    a.jump(jne_imm(R0, 0, 0), add_to);
    a.place(other);
    a.push([st_w(R10, -8, other_key(dir) as i32)]);
    lookup(&mut a, traffic, -16);
    a.jump(jeq_imm(R0, 0, 0), out);
    a.place(add_to);
    a.push([
        ldx_dw(R1, R0, 0),
        add(R1, R7),
        stx_dw(R0, 0, R1),
        ldx_dw(R1, R0, 8),
        add_imm(R1, 1),
        stx_dw(R0, 8, R1),
    ]);
    a.place(out);
    a.push([mov_imm(R0, 1), exit()]);
    a.finish()
}

/// A fingerprint of the node's programs and map shapes: pins made by a moat whose
/// programs differ are never used by this one (see `pins::Node`).
pub fn node_fingerprint() -> u64 {
    // FNV-1a over the instructions (with a placeholder map) and the shapes they assume.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    };
    for dir in [Direction::Receive, Direction::Transmit] {
        for i in counter(dir, 0, 0) {
            eat(&i.to_bytes());
        }
    }
    for n in [
        COUNTER_SIZE,
        TRAFFIC_KEY_SIZE,
        TRAFFIC_ENTRIES,
        CONTAINERS_ENTRIES,
    ] {
        eat(&n.to_ne_bytes());
    }
    h
}

/// The most port ranges one rule set may have: keeps every jump of a UDP program short.
pub const MAX_RANGES: usize = 8192;

/// The UDP ports a container may bind and connect/send to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UdpRules {
    /// Ports bind() may use (0 included when autobind is allowed).
    pub bind: Vec<PortRange>,
    /// Destination ports of connect() and of sendmsg() with an address.
    pub connect: Vec<PortRange>,
}

impl UdpRules {
    /// Sorted and merged ranges, so the programs test each port once.
    pub fn normalized(mut self) -> UdpRules {
        self.bind = merge(self.bind);
        self.connect = merge(self.connect);
        self
    }
}

fn merge(mut r: Vec<PortRange>) -> Vec<PortRange> {
    r.sort();
    let mut out: Vec<PortRange> = Vec::with_capacity(r.len());
    for x in r {
        match out.last_mut() {
            Some(last) if u32::from(x.start) <= u32::from(last.end) + 1 => {
                last.end = last.end.max(x.end)
            }
            _ => out.push(x),
        }
    }
    out
}

/// Jumps to `ok` when `reg` (a host-order port) is in `ranges`.
fn port_in(a: &mut Asm, reg: Reg, ranges: &[PortRange], ok: Label) {
    for r in ranges {
        if r.start == r.end {
            a.jump(jeq_imm(reg, i32::from(r.start), 0), ok);
        } else {
            a.push([jlt_imm(reg, i32::from(r.start), 1)]);
            a.jump(jlt_imm(reg, i32::from(r.end) + 1, 0), ok);
        }
    }
}

/// The sock_addr program for `hook` (one of [`OPERATIONS`]), denying with EACCES and
/// counting in slot `slot` of `denied`. `rules` must be [`UdpRules::normalized`] with at
/// most [`MAX_RANGES`] ranges each.
pub fn udp_ports(hook: AttachType, slot: u32, rules: &UdpRules, denied: i32) -> Vec<Insn> {
    let mut a = Asm::default();
    let allow = a.label();
    let deny = a.label();
    let set_errno = a.label();
    a.push([mov(R6, R1), ldx_w(R2, R6, ADDR_TYPE)]);
    a.jump(jne_imm(R2, libc::SOCK_DGRAM, 0), allow);
    a.push([ldx_w(R2, R6, ADDR_PROTOCOL)]);
    // UDP only: seccomp refuses other datagram protocols for moat's containers, and
    // Landlock's UDP rules apply to UDP sockets only.
    a.jump(jne_imm(R2, libc::IPPROTO_UDP, 0), allow);
    a.push([ldx_w(R2, R6, ADDR_USER_PORT), be16(R2)]);
    match hook {
        AttachType::Bind4 | AttachType::Bind6 => {
            port_in(&mut a, R2, &rules.bind, allow);
            a.jump(ja(0), deny);
        }
        _ => {
            let dest_ok = a.label();
            port_in(&mut a, R2, &rules.connect, dest_ok);
            a.jump(ja(0), deny);
            a.place(dest_ok);
            // Autobind: no local port yet means the kernel binds port 0 implicitly.
            // Only connect() can check it: the kernel autobinds before the sendmsg hooks
            // run (inet_send_prepare), so a first sendmsg() on an unbound socket is
            // decided on its destination alone.
            let autobind_ok = rules.bind.first().is_some_and(|r| r.start == 0);
            if matches!(hook, AttachType::Connect4 | AttachType::Connect6) && !autobind_ok {
                a.push([ldx_dw(R3, R6, ADDR_SK), ldx_w(R4, R3, SOCK_SRC_PORT)]);
                a.jump(jne_imm(R4, 0, 0), allow);
                a.jump(ja(0), deny);
            } else {
                a.jump(ja(0), allow);
            }
        }
    }
    a.place(deny);
    a.push([st_w(R10, -4, slot as i32)]);
    lookup(&mut a, denied, -4);
    a.jump(jeq_imm(R0, 0, 0), set_errno);
    a.push([mov_imm(R1, 1), atomic_add_dw(R0, 0, R1)]);
    a.place(set_errno);
    a.push([
        mov_imm(R1, -libc::EACCES),
        call(helper::SET_RETVAL),
        mov_imm(R0, 0),
        exit(),
    ]);
    a.place(allow);
    a.push([mov_imm(R0, 1), exit()]);
    a.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The key the counting program builds for `port` in direction `dir`.
    fn port_key(dir: Direction, port: u16) -> u32 {
        ((dir as u32) << 16) | u32::from(port)
    }

    #[test]
    fn ranges_merge() {
        let r = |a, b| PortRange { start: a, end: b };
        let m = UdpRules {
            bind: vec![r(10, 20), r(5, 9), r(30, 30), r(21, 25)],
            connect: vec![r(53, 53), r(53, 53)],
        }
        .normalized();
        assert_eq!(m.bind, vec![r(5, 25), r(30, 30)]);
        assert_eq!(m.connect, vec![r(53, 53)]);
    }

    #[test]
    fn programs_build() {
        let rules = UdpRules {
            bind: vec![PortRange { start: 0, end: 0 }],
            connect: vec![
                PortRange { start: 53, end: 53 },
                PortRange {
                    start: 1000,
                    end: 2000,
                },
            ],
        };
        for (i, (hook, _)) in OPERATIONS.iter().enumerate() {
            assert!(udp_ports(*hook, i as u32, &rules, 3).len() > 10);
        }
        assert!(counter(Direction::Transmit, 3, 4).len() > 10);
        for d in [Direction::Receive, Direction::Transmit] {
            assert_eq!(parse_key(port_key(d, 443)), (d, Some(443)));
            assert_eq!(parse_key(other_key(d)), (d, None));
            let k = traffic_key(77, port_key(d, 53));
            assert_eq!(parse_traffic_key(&k), (77, d, Some(53)));
        }
        assert_eq!(node_fingerprint(), node_fingerprint());
    }
}
