//! Dropping capabilities before exec.
//!
//! Landlock restricts what a process reaches through the filesystem and TCP, not what its
//! capabilities let it do: a sandboxed root could still chown a file it may not write, open
//! perf events on other processes, load BPF programs, set the hostname, load a kernel
//! module. So a process that holds any capability (root, or a program given file or
//! ambient capabilities) drops them all before exec, except those the policy keeps
//! ([`moat_policy::KeepCaps`]).
//!
//! All five sets go: the bounding set (what an exec as root would grant again), ambient,
//! inheritable, permitted and effective. no_new_privs alone would already cap what the
//! program can get back at exec at what the process holds then; emptying the bounding set
//! as well keeps that true for anything that later slips past no_new_privs. Kept
//! capabilities stay in every set, and in the ambient set for a non-root process, so that
//! they survive the exec.
//!
//! The system calls are made directly (`capget`, `capset`, `prctl`): the step runs in a
//! `clone(CLONE_VM)` child that may not allocate ([`crate::enforce`]), and it is four
//! calls plus one per capability.

use moat_policy::{Cap, CapSet, KeepCaps};
use std::fmt;

/// `_LINUX_CAPABILITY_VERSION_3`: 64-bit sets in two 32-bit words.
const VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct Header {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Copy, Clone, Default)]
struct Data {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// What the calling thread holds.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Held {
    /// The effective set.
    pub effective: CapSet,
    /// The permitted set.
    pub permitted: CapSet,
    /// The inheritable set.
    pub inheritable: CapSet,
    /// Whether the real or effective user is root, for whom an exec grants the bounding
    /// set again.
    pub root: bool,
}

impl Held {
    /// Reads the calling thread's capabilities and user ids.
    pub fn current() -> std::io::Result<Held> {
        let mut header = Header {
            version: VERSION_3,
            pid: 0,
        };
        let mut data = [Data::default(); 2];
        // SAFETY: a valid header and room for the two words version 3 writes.
        let r = unsafe {
            libc::syscall(
                libc::SYS_capget,
                &mut header as *mut Header,
                data.as_mut_ptr(),
            )
        };
        if r != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let join = |f: fn(&Data) -> u32| {
            CapSet::from_bits(u64::from(f(&data[0])) | u64::from(f(&data[1])) << 32)
        };
        // SAFETY: getuid and geteuid cannot fail.
        let root = unsafe { libc::getuid() == 0 || libc::geteuid() == 0 };
        Ok(Held {
            effective: join(|d| d.effective),
            permitted: join(|d| d.permitted),
            inheritable: join(|d| d.inheritable),
            root,
        })
    }

    /// Whether there is anything to drop: a capability in any set, or a root user.
    pub fn any(&self) -> bool {
        self.root
            || !self
                .effective
                .union(self.permitted)
                .union(self.inheritable)
                .is_empty()
    }
}

/// What the capability step will do, decided before anything is restricted.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct CapsPlan {
    /// What the process holds now.
    pub held: Held,
    /// What stays: the kept capabilities the process holds.
    pub keep: CapSet,
    /// Kept capabilities the process does not hold (so the program does not get them).
    pub not_held: CapSet,
    /// Whether the bounding set can be emptied (needs `CAP_SETPCAP` in effect).
    pub bounding: bool,
}

impl CapsPlan {
    /// The plan for `keep` given what the process holds; `None` when there is nothing to
    /// do (nothing held, or everything kept).
    pub fn new(keep: KeepCaps, held: Held) -> Option<CapsPlan> {
        if keep.all || !held.any() {
            return None;
        }
        Some(CapsPlan {
            held,
            keep: keep.caps.intersect(held.permitted),
            not_held: CapSet::from_bits(keep.caps.bits() & !held.permitted.bits()),
            bounding: held.effective.contains(Cap::SETPCAP),
        })
    }

    /// Applies the plan to the calling thread with raw system calls: async-signal-safe, no
    /// allocation. On failure, returns the errno.
    ///
    /// # Safety
    /// Changes the calling thread's credentials for good; callable between `clone` and
    /// `execve` (it touches no memory but its own stack and `self`).
    pub(crate) unsafe fn apply(&self) -> Result<(), i32> {
        let errno = || *libc::__errno_location();
        if self.bounding {
            // Every capability number the kernel knows, lowest first: the first EINVAL is
            // one past the last (`/proc/sys/kernel/cap_last_cap`), without reading it.
            for cap in 0..64u64 {
                if self.keep.bits() & (1 << cap) != 0 {
                    continue;
                }
                if libc::syscall(
                    libc::SYS_prctl,
                    libc::PR_CAPBSET_DROP,
                    cap,
                    0u64,
                    0u64,
                    0u64,
                ) < 0
                {
                    if errno() == libc::EINVAL {
                        break;
                    }
                    return Err(errno());
                }
            }
        }
        // Ambient capabilities (Linux 4.3) would otherwise survive the exec of a non-root
        // program; EINVAL means the kernel has none.
        if libc::syscall(
            libc::SYS_prctl,
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as u64,
            0u64,
            0u64,
            0u64,
        ) < 0
            && errno() != libc::EINVAL
        {
            return Err(errno());
        }
        let keep = self.keep.bits();
        let words = [keep as u32, (keep >> 32) as u32];
        let data = words.map(|w| Data {
            effective: w,
            permitted: w,
            inheritable: w,
        });
        let header = Header {
            version: VERSION_3,
            pid: 0,
        };
        if libc::syscall(libc::SYS_capset, &header as *const Header, data.as_ptr()) < 0 {
            return Err(errno());
        }
        if !self.held.root {
            // A non-root program gets capabilities at exec only from the ambient set.
            for cap in 0..64u64 {
                if keep & (1 << cap) != 0
                    && libc::syscall(
                        libc::SYS_prctl,
                        libc::PR_CAP_AMBIENT,
                        libc::PR_CAP_AMBIENT_RAISE as u64,
                        cap,
                        0u64,
                        0u64,
                    ) < 0
                {
                    return Err(errno());
                }
            }
        }
        Ok(())
    }
}

/// Empties the calling thread's bounding set but for `keep`: for a server that starts many
/// sandboxed processes (the watchdog), once, so that each of them skips the one `prctl` per
/// capability that [`CapsPlan`] would otherwise make (see [`CapsPlan::bounding`]). The
/// server keeps its own effective and permitted capabilities.
pub fn drop_bounding_set(keep: CapSet) -> std::io::Result<()> {
    for cap in 0..64u64 {
        if keep.bits() & (1 << cap) != 0 {
            continue;
        }
        // SAFETY: PR_CAPBSET_DROP takes plain integers.
        if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) } != 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINVAL) {
                return Ok(()); // past the last capability this kernel knows
            }
            return Err(e);
        }
    }
    Ok(())
}

impl fmt::Display for CapsPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.keep.is_empty() {
            f.write_str(
                "capabilities: all dropped (bounding, ambient, inheritable, permitted, effective)",
            )?;
        } else {
            write!(
                f,
                "capabilities: kept {}, every other one dropped",
                self.keep
            )?;
        }
        if !self.not_held.is_empty() {
            write!(f, "; not held, so not kept: {}", self.not_held)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(bits: u64, root: bool) -> Held {
        let s = CapSet::from_bits(bits);
        Held {
            effective: s,
            permitted: s,
            inheritable: CapSet::EMPTY,
            root,
        }
    }

    #[test]
    fn plans() {
        assert_eq!(CapsPlan::new(KeepCaps::default(), held(0, false)), None);
        assert_eq!(CapsPlan::new(KeepCaps::ALL, held(!0, true)), None);
        let p = CapsPlan::new(KeepCaps::default(), held((1 << 41) - 1, true)).unwrap();
        assert!(p.keep.is_empty() && p.bounding);
        let keep = KeepCaps::parse(["CHOWN", "BPF"]).unwrap();
        let p = CapsPlan::new(keep, held(1, false)).unwrap();
        assert_eq!(p.keep, CapSet::of(&[Cap::CHOWN]));
        assert_eq!(
            p.not_held.iter().map(Cap::number).collect::<Vec<_>>(),
            vec![39]
        );
        assert!(!p.bounding);
        // Root without capabilities still has a bounding set an exec would grant.
        assert!(CapsPlan::new(KeepCaps::default(), held(0, true)).is_some());
    }

    #[test]
    fn reads_this_process() {
        let h = Held::current().unwrap();
        // SAFETY: geteuid cannot fail.
        if unsafe { libc::geteuid() } == 0 {
            assert!(h.root && h.effective.contains(Cap::SETPCAP), "{h:?}");
        }
    }
}
