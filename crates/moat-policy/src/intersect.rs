//! The intersection of two policies in one ruleset: an access is allowed when both allow
//! it. An operator's mandatory policy (a Kubernetes namespace's floor) and a pod author's
//! own policy are combined this way, so that an allow-all author policy changes nothing and
//! the author's restrictions still hold. Two Landlock layers would give the same answer
//! except for `refer` (link and rename across directories), which every extra layer denies;
//! one ruleset keeps it as the two policies say.
//!
//! Filesystem: a right handled by one policy only is granted where that policy grants it.
//! A right both handle is granted beneath a path when a rule of each grants it on that
//! path or above it: for two rules whose paths nest, the deeper path gets the common
//! rights. Paths are compared as written, component by component; in the filesystem a
//! deeper path can lead elsewhere (a symbolic link or mount along the way, which an image
//! controls), so such a rule carries `within` = the shallower path, and the launcher grants
//! it only when the deeper path, resolved, is beneath the shallower one. Paths with
//! `${VARIABLES}` nest only when written the same. Exceptions of both apply (a grant of a
//! right only one policy handles may then stop at the other's exception too: more denial,
//! never less).
//!
//! Network: rights handled by one policy are granted on its ports; rights both handle, on
//! the ports both grant. Everything else takes the stricter side: scopes of both, the socket
//! seal of either, UDP fully open only when both say so, capabilities kept by both, strict
//! when either is strict.

use crate::model::{FsPolicy, NetPolicy, Origin, PathRule, Policy, PortRule};
use crate::ports::PortRange;
use crate::rights::{FsAccess, NetAccess};

impl Policy {
    /// What both `self` and `other` allow, as one policy (see the crate's `intersect` module).
    pub fn intersect(self, other: Policy) -> Policy {
        let compat = match (self.compat, other.compat) {
            (Some(crate::Compat::Strict), _) | (_, Some(crate::Compat::Strict)) => {
                Some(crate::Compat::Strict)
            }
            (a, b) => a.or(b),
        };
        let caps = match (self.caps, other.caps) {
            (Some(a), Some(b)) => Some(keep_both(a, b)),
            (a, b) => a.or(b),
        };
        let mut env = self.env;
        env.clear |= other.env.clear;
        env.pass
            .retain(|v| !other.env.clear || other.env.pass.contains(v));
        env.set.extend(other.env.set);
        Policy {
            compat,
            fs: fs(self.fs, other.fs),
            net: net(self.net, other.net),
            scopes: self.scopes.union(other.scopes),
            audit: self.audit.merge(other.audit),
            env,
            caps,
        }
    }
}

fn keep_both(a: crate::KeepCaps, b: crate::KeepCaps) -> crate::KeepCaps {
    match (a.all, b.all) {
        (true, true) => crate::KeepCaps::ALL,
        (true, false) => b,
        (false, true) => a,
        (false, false) => crate::KeepCaps {
            caps: a.caps.intersect(b.caps),
            all: false,
        },
    }
}

/// Whether `outer` is `inner` or one of its ancestors, comparing components as written.
/// A path with a variable only contains itself.
pub fn contains_path(outer: &str, inner: &str) -> bool {
    let outer = outer.trim_end_matches('/');
    if outer == inner.trim_end_matches('/') {
        return true;
    }
    if outer.contains('$') || inner.contains('$') {
        return false;
    }
    if outer.is_empty() {
        // "/" (trimmed): every absolute path is beneath it.
        return inner.starts_with('/');
    }
    inner
        .strip_prefix(outer)
        .is_some_and(|rest| rest.starts_with('/'))
}

fn is_root(path: &str) -> bool {
    !path.is_empty() && path.trim_end_matches('/').is_empty()
}

fn fs(a: FsPolicy, b: FsPolicy) -> FsPolicy {
    if a.unrestricted {
        return b;
    }
    if b.unrestricted {
        return a;
    }
    let both = a.handled.intersect(b.handled);
    let only_a = a.handled.minus(b.handled);
    let only_b = b.handled.minus(a.handled);
    let mut rules = Vec::new();
    let keep = |rules: &mut Vec<PathRule>, r: &PathRule, only: FsAccess| {
        let access = r.access.intersect(only);
        if !access.is_empty() {
            rules.push(PathRule {
                access,
                ..r.clone()
            });
        }
    };
    for r in &a.rules {
        keep(&mut rules, r, only_a);
    }
    for r in &b.rules {
        keep(&mut rules, r, only_b);
    }
    for ra in &a.rules {
        for rb in &b.rules {
            let access = ra.access.intersect(rb.access).intersect(both);
            if access.is_empty() {
                continue;
            }
            let (outer, inner) = if contains_path(&ra.path, &rb.path) {
                (ra, rb)
            } else if contains_path(&rb.path, &ra.path) {
                (rb, ra)
            } else {
                continue;
            };
            let same = outer.path.trim_end_matches('/') == inner.path.trim_end_matches('/');
            let within = if same || is_root(&outer.path) {
                inner.within.clone().or_else(|| outer.within.clone())
            } else {
                match (&inner.within, &outer.within) {
                    // One constraint per rule: a rule that would need two is not granted.
                    (Some(_), _) | (_, Some(_)) => continue,
                    (None, None) => Some(outer.path.clone()),
                }
            };
            rules.push(PathRule {
                path: inner.path.clone(),
                access,
                optional: inner.optional || outer.optional,
                origin: Origin::new(format!("{} and {}", ra.origin, rb.origin)),
                within,
            });
        }
    }
    let mut except = a.except;
    except.extend(b.except);
    FsPolicy {
        unrestricted: false,
        handled: a.handled.union(b.handled),
        required: a.required.union(b.required),
        rules,
        except,
        // A fresh, empty directory of the sandbox's own takes nothing from either policy.
        private_tmp: a.private_tmp || b.private_tmp,
    }
}

fn net(a: NetPolicy, b: NetPolicy) -> NetPolicy {
    if a.unrestricted {
        return b;
    }
    if b.unrestricted {
        return a;
    }
    let both = a.handled.intersect(b.handled);
    let only_a = a.handled.minus(b.handled);
    let only_b = b.handled.minus(a.handled);
    let mut rules = Vec::new();
    let mut keep = |r: &PortRule, only: NetAccess| {
        let access = r.access.intersect(only);
        if !access.is_empty() {
            rules.push(PortRule {
                access,
                ..r.clone()
            });
        }
    };
    for r in &a.rules {
        keep(r, only_a);
    }
    for r in &b.rules {
        keep(r, only_b);
    }
    for ra in &a.rules {
        for rb in &b.rules {
            let access = ra.access.intersect(rb.access).intersect(both);
            let start = ra.ports.start.max(rb.ports.start);
            let end = ra.ports.end.min(rb.ports.end);
            if access.is_empty() || start > end {
                continue;
            }
            rules.push(PortRule {
                ports: PortRange { start, end },
                access,
                origin: Origin::new(format!("{} and {}", ra.origin, rb.origin)),
            });
        }
    }
    NetPolicy {
        unrestricted: false,
        handled: a.handled.union(b.handled),
        rules,
        allow_udp: a.allow_udp && b.allow_udp,
        seal_sockets: a.seal_sockets || b.seal_sockets,
        udp_ports_by_cgroup: a.udp_ports_by_cgroup && b.udp_ports_by_cgroup,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rights::{FsGroup, FsRight, NetRight, Scope};

    fn ports(p: &Policy, right: NetRight) -> Vec<u16> {
        let mut v: Vec<u16> = p
            .net
            .rules
            .iter()
            .filter(|r| r.access.contains(right))
            .flat_map(|r| r.ports.ports())
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    #[test]
    fn an_allow_all_author_policy_changes_nothing() {
        let floor = Policy::bind_tcp_only([80], "floor");
        let mut author = Policy::allow_all();
        author.lift_filesystem();
        author.lift_network();
        let p = author.clone().intersect(floor.clone());
        assert_eq!(p.net.handled, floor.net.handled);
        assert_eq!(ports(&p, NetRight::BindTcp), [80]);
        assert!(!p.fs.unrestricted || p.fs.handled.is_empty());
        // Every port allowed by the author: still the floor's.
        let mut wide = Policy::allow_all();
        wide.net.handled = NetAccess::of(&[NetRight::BindTcp]);
        wide.grant_ports(
            [PortRange::parse("1-65535").unwrap()],
            wide.net.handled,
            "a",
        );
        let p = wide.intersect(floor);
        assert_eq!(ports(&p, NetRight::BindTcp), [80]);
    }

    #[test]
    fn the_authors_restrictions_still_hold() {
        let floor = Policy::bind_tcp_only([80, 443], "floor");
        let mut author = Policy::deny_all();
        author.grant_paths(["/usr"], FsGroup::ReadExec.access(), false, "author");
        author.grant_ports(
            [PortRange::single(443)],
            NetAccess::of(&[NetRight::BindTcp]),
            "a",
        );
        let p = author.intersect(floor);
        assert_eq!(ports(&p, NetRight::BindTcp), [443]);
        assert!(p.net.seal_sockets);
        assert_eq!(p.fs.handled, FsAccess::all());
        assert!(p.scopes.contains(Scope::Signal));
        assert_eq!(p.fs.rules.len(), 1);
        assert_eq!(p.fs.rules[0].path, "/usr");
    }

    #[test]
    fn nested_paths_get_the_common_rights_on_the_deeper_one() {
        let mut floor = Policy::deny_all();
        floor.grant_paths(["/data"], FsGroup::ReadWrite.access(), false, "floor");
        floor.grant_paths(["/"], FsGroup::Read.access(), false, "floor");
        let mut author = Policy::deny_all();
        author.grant_paths(["/data/app"], FsGroup::ReadExec.access(), false, "author");
        author.grant_paths(["/srv"], FsGroup::ReadWrite.access(), false, "author");
        let p = author.intersect(floor);
        let find = |path: &str| -> Vec<&PathRule> {
            p.fs.rules.iter().filter(|r| r.path == path).collect()
        };
        let app = find("/data/app");
        // From /data (read+write) and from / (read): both beneath the author's rule.
        let rw = app
            .iter()
            .find(|r| r.within.as_deref() == Some("/data"))
            .unwrap();
        assert!(rw.access.contains(FsRight::ReadFile));
        assert!(!rw.access.contains(FsRight::Execute));
        assert!(
            !rw.access.contains(FsRight::WriteFile),
            "the author did not grant write"
        );
        let from_root = app.iter().find(|r| r.within.is_none()).unwrap();
        assert!(from_root.access.contains(FsRight::ReadFile));
        // /srv: the floor grants read there (from /), nothing more.
        let srv = find("/srv");
        assert_eq!(srv.len(), 1);
        assert!(!srv[0].access.contains(FsRight::WriteFile));
        assert_eq!(srv[0].within, None);
        // Nothing on the floor's /data itself: the author grants nothing there.
        assert!(find("/data").is_empty());
    }

    #[test]
    fn paths_nest_by_component() {
        assert!(contains_path("/data", "/data/x"));
        assert!(contains_path("/data/", "/data"));
        assert!(contains_path("/", "/etc"));
        assert!(!contains_path("/data", "/database"));
        assert!(!contains_path("/data/x", "/data"));
        assert!(contains_path("${HOME}", "${HOME}"));
        assert!(!contains_path("${HOME}", "${HOME}/x"));
        assert!(!contains_path("/", "${HOME}"));
    }

    #[test]
    fn the_stricter_side_wins_elsewhere() {
        let mut a = Policy::allow_all();
        a.compat = Some(crate::Compat::BestEffort);
        a.net.allow_udp = true;
        a.caps = Some(crate::KeepCaps::ALL);
        let mut b = Policy::allow_all();
        b.compat = Some(crate::Compat::Strict);
        b.scopes = crate::ScopeSet::all();
        b.caps = Some(crate::KeepCaps::parse(["NET_BIND_SERVICE"]).unwrap());
        let p = a.intersect(b);
        assert_eq!(p.compat, Some(crate::Compat::Strict));
        assert!(p.scopes.contains(Scope::Signal));
        assert!(!p.net.allow_udp);
        let caps = p.caps.unwrap();
        assert!(!caps.all);
        assert_eq!(caps.names(), ["NET_BIND_SERVICE"]);
    }
}
