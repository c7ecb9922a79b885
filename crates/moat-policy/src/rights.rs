//! Landlock access rights by their kernel names, their UAPI bit values and the ABI that
//! introduced them, plus the bit sets moat builds from them.

use crate::abi::Abi;
use std::fmt;
use std::marker::PhantomData;

/// A kind of Landlock right (filesystem, network or scope): one bit of a kernel mask.
pub trait Right: Copy + Eq + fmt::Debug + 'static {
    /// Every right of this kind, in UAPI bit order.
    const ALL: &'static [Self];
    /// What the rights of this kind are called in messages ("filesystem right", ...).
    const KIND: &'static str;
    /// The UAPI bit.
    fn bit(self) -> u64;
    /// The kernel name, lower case without prefix (`read_file`, `bind_tcp`, `signal`).
    fn name(self) -> &'static str;
    /// The first ABI that can enforce this right.
    fn since(self) -> Abi;
}

/// A filesystem access right (`LANDLOCK_ACCESS_FS_*`).
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[allow(missing_docs)]
pub enum FsRight {
    Execute,
    WriteFile,
    ReadFile,
    ReadDir,
    RemoveDir,
    RemoveFile,
    MakeChar,
    MakeDir,
    MakeReg,
    MakeSock,
    MakeFifo,
    MakeBlock,
    MakeSym,
    Refer,
    Truncate,
    IoctlDev,
    ResolveUnix,
}

impl Right for FsRight {
    const ALL: &'static [Self] = &[
        FsRight::Execute,
        FsRight::WriteFile,
        FsRight::ReadFile,
        FsRight::ReadDir,
        FsRight::RemoveDir,
        FsRight::RemoveFile,
        FsRight::MakeChar,
        FsRight::MakeDir,
        FsRight::MakeReg,
        FsRight::MakeSock,
        FsRight::MakeFifo,
        FsRight::MakeBlock,
        FsRight::MakeSym,
        FsRight::Refer,
        FsRight::Truncate,
        FsRight::IoctlDev,
        FsRight::ResolveUnix,
    ];
    const KIND: &'static str = "filesystem right";

    fn bit(self) -> u64 {
        1 << (self as u32)
    }

    fn name(self) -> &'static str {
        match self {
            FsRight::Execute => "execute",
            FsRight::WriteFile => "write_file",
            FsRight::ReadFile => "read_file",
            FsRight::ReadDir => "read_dir",
            FsRight::RemoveDir => "remove_dir",
            FsRight::RemoveFile => "remove_file",
            FsRight::MakeChar => "make_char",
            FsRight::MakeDir => "make_dir",
            FsRight::MakeReg => "make_reg",
            FsRight::MakeSock => "make_sock",
            FsRight::MakeFifo => "make_fifo",
            FsRight::MakeBlock => "make_block",
            FsRight::MakeSym => "make_sym",
            FsRight::Refer => "refer",
            FsRight::Truncate => "truncate",
            FsRight::IoctlDev => "ioctl_dev",
            FsRight::ResolveUnix => "resolve_unix",
        }
    }

    fn since(self) -> Abi {
        match self {
            FsRight::Execute
            | FsRight::WriteFile
            | FsRight::ReadFile
            | FsRight::ReadDir
            | FsRight::RemoveDir
            | FsRight::RemoveFile
            | FsRight::MakeChar
            | FsRight::MakeDir
            | FsRight::MakeReg
            | FsRight::MakeSock
            | FsRight::MakeFifo
            | FsRight::MakeBlock
            | FsRight::MakeSym => Abi::V1,
            FsRight::Refer => Abi::V2,
            FsRight::Truncate => Abi::V3,
            FsRight::IoctlDev => Abi::V5,
            FsRight::ResolveUnix => Abi::V9,
        }
    }
}

impl AccessSet<FsRight> {
    /// The rights that apply to a non-directory (see [`FsRight::applies_to_files`]).
    pub fn file_rights() -> Self {
        let mut set = Self::EMPTY;
        for r in FsRight::ALL {
            if r.applies_to_files() {
                set.insert(*r);
            }
        }
        set
    }
}

impl FsRight {
    /// Whether the right applies to a non-directory; the kernel refuses the others on a
    /// file rule with EINVAL.
    pub fn applies_to_files(self) -> bool {
        matches!(
            self,
            FsRight::Execute
                | FsRight::WriteFile
                | FsRight::ReadFile
                | FsRight::Truncate
                | FsRight::IoctlDev
                | FsRight::ResolveUnix
        )
    }
}

/// A network access right (`LANDLOCK_ACCESS_NET_*`).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum NetRight {
    BindTcp,
    ConnectTcp,
    BindUdp,
    ConnectSendUdp,
}

impl Right for NetRight {
    const ALL: &'static [Self] = &[
        NetRight::BindTcp,
        NetRight::ConnectTcp,
        NetRight::BindUdp,
        NetRight::ConnectSendUdp,
    ];
    const KIND: &'static str = "network right";

    fn bit(self) -> u64 {
        1 << (self as u32)
    }

    fn name(self) -> &'static str {
        match self {
            NetRight::BindTcp => "bind_tcp",
            NetRight::ConnectTcp => "connect_tcp",
            NetRight::BindUdp => "bind_udp",
            NetRight::ConnectSendUdp => "connect_send_udp",
        }
    }

    fn since(self) -> Abi {
        match self {
            NetRight::BindTcp | NetRight::ConnectTcp => Abi::V4,
            NetRight::BindUdp | NetRight::ConnectSendUdp => Abi::V10,
        }
    }
}

impl NetRight {
    /// Whether this right is about UDP (not enforceable before ABI 10).
    pub fn is_udp(self) -> bool {
        matches!(self, NetRight::BindUdp | NetRight::ConnectSendUdp)
    }
}

/// An IPC scope (`LANDLOCK_SCOPE_*`): communication the domain cannot have with processes
/// outside it.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum Scope {
    AbstractUnixSocket,
    Signal,
}

impl Right for Scope {
    const ALL: &'static [Self] = &[Scope::AbstractUnixSocket, Scope::Signal];
    const KIND: &'static str = "scope";

    fn bit(self) -> u64 {
        1 << (self as u32)
    }

    fn name(self) -> &'static str {
        match self {
            Scope::AbstractUnixSocket => "abstract_unix_socket",
            Scope::Signal => "signal",
        }
    }

    fn since(self) -> Abi {
        match self {
            Scope::AbstractUnixSocket | Scope::Signal => Abi::V6,
        }
    }
}

/// A set of rights of one kind, stored as the kernel's bit mask.
pub struct AccessSet<R: Right> {
    bits: u64,
    _kind: PhantomData<R>,
}

impl<R: Right> Clone for AccessSet<R> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<R: Right> Copy for AccessSet<R> {}
impl<R: Right> PartialEq for AccessSet<R> {
    fn eq(&self, other: &Self) -> bool {
        self.bits == other.bits
    }
}
impl<R: Right> Eq for AccessSet<R> {}
impl<R: Right> Default for AccessSet<R> {
    fn default() -> Self {
        Self::EMPTY
    }
}

impl<R: Right> AccessSet<R> {
    /// The empty set.
    pub const EMPTY: Self = AccessSet {
        bits: 0,
        _kind: PhantomData,
    };

    /// Every right of this kind moat knows.
    pub fn all() -> Self {
        Self::of(R::ALL)
    }

    /// The rights of this kind that the given ABI can enforce.
    pub fn supported_by(abi: Abi) -> Self {
        let mut set = Self::EMPTY;
        for r in R::ALL {
            if r.since() <= abi {
                set.insert(*r);
            }
        }
        set
    }

    /// The set holding exactly these rights.
    pub fn of(rights: &[R]) -> Self {
        let mut set = Self::EMPTY;
        for r in rights {
            set.insert(*r);
        }
        set
    }

    /// The set for a raw UAPI mask; `Err` carries the bits moat does not know.
    pub fn from_bits(bits: u64) -> Result<Self, u64> {
        let known = Self::all().bits;
        if bits & !known != 0 {
            Err(bits & !known)
        } else {
            Ok(AccessSet {
                bits,
                _kind: PhantomData,
            })
        }
    }

    /// The raw UAPI mask.
    pub fn bits(self) -> u64 {
        self.bits
    }

    /// Adds one right.
    pub fn insert(&mut self, r: R) {
        self.bits |= r.bit();
    }

    /// Whether the set holds this right.
    pub fn contains(self, r: R) -> bool {
        self.bits & r.bit() != 0
    }

    /// Whether every right of `other` is in this set.
    pub fn contains_all(self, other: Self) -> bool {
        other.bits & !self.bits == 0
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.bits == 0
    }

    /// The union.
    pub fn union(self, other: Self) -> Self {
        AccessSet {
            bits: self.bits | other.bits,
            _kind: PhantomData,
        }
    }

    /// The intersection.
    pub fn intersect(self, other: Self) -> Self {
        AccessSet {
            bits: self.bits & other.bits,
            _kind: PhantomData,
        }
    }

    /// The rights of `self` not in `other`.
    pub fn minus(self, other: Self) -> Self {
        AccessSet {
            bits: self.bits & !other.bits,
            _kind: PhantomData,
        }
    }

    /// The rights in the set, in UAPI bit order.
    pub fn iter(self) -> impl Iterator<Item = R> {
        R::ALL.iter().copied().filter(move |r| self.contains(*r))
    }

    /// The newest ABI any right of the set needs (`V0` for the empty set).
    pub fn needs_abi(self) -> Abi {
        self.iter().map(Right::since).max().unwrap_or(Abi::V0)
    }

    /// Looks a right up by kernel name (also accepting the `LANDLOCK_ACCESS_FS_` style
    /// upper-case constant names and dashes instead of underscores).
    pub fn right_by_name(name: &str) -> Option<R> {
        let norm = normalise_name(name);
        R::ALL.iter().copied().find(|r| r.name() == norm)
    }
}

/// Lower-cases a right name and strips the UAPI constant prefixes, so that
/// `LANDLOCK_ACCESS_FS_READ_FILE`, `read-file` and `read_file` mean the same.
pub fn normalise_name(name: &str) -> String {
    let lower = name.trim().to_ascii_lowercase().replace('-', "_");
    for prefix in [
        "landlock_access_fs_",
        "landlock_access_net_",
        "landlock_scope_",
    ] {
        if let Some(rest) = lower.strip_prefix(prefix) {
            return rest.to_string();
        }
    }
    lower
}

impl<R: Right> fmt::Debug for AccessSet<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter().map(Right::name)).finish()
    }
}

impl<R: Right> fmt::Display for AccessSet<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for r in self.iter() {
            if !first {
                f.write_str(",")?;
            }
            first = false;
            f.write_str(r.name())?;
        }
        if first {
            f.write_str("(none)")?;
        }
        Ok(())
    }
}

/// Filesystem rights as a set.
pub type FsAccess = AccessSet<FsRight>;
/// Network rights as a set.
pub type NetAccess = AccessSet<NetRight>;
/// Scopes as a set.
pub type ScopeSet = AccessSet<Scope>;

/// Named groups of filesystem rights that say what a path is for.
///
/// These are moat's intent groups; each is a fixed set (not tied to the running kernel) so a
/// policy means the same everywhere and the enforcement layer decides what the kernel can hold.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum FsGroup {
    /// List directories and read files.
    Read,
    /// Execute files.
    Execute,
    /// `read` + `execute`.
    ReadExec,
    /// Change content and entries: write, truncate, create (files, dirs, symlinks, sockets,
    /// fifos), remove, rename and link across directories, device ioctls. Connecting to the
    /// unix sockets in a directory is a right of its own (`resolve_unix`, moat's `unix`
    /// list): a writable directory is not a channel to whatever server listens in it.
    Write,
    /// `read` + `write`.
    ReadWrite,
    /// `read` + `write` + `execute`.
    ReadWriteExec,
    /// Create character and block devices.
    Devices,
    /// Every filesystem right.
    All,
}

impl FsGroup {
    /// Every group, for listings and lookups.
    pub const ALL: [FsGroup; 8] = [
        FsGroup::Read,
        FsGroup::Execute,
        FsGroup::ReadExec,
        FsGroup::Write,
        FsGroup::ReadWrite,
        FsGroup::ReadWriteExec,
        FsGroup::Devices,
        FsGroup::All,
    ];

    /// The group's name in policies.
    pub fn name(self) -> &'static str {
        match self {
            FsGroup::Read => "read",
            FsGroup::Execute => "execute",
            FsGroup::ReadExec => "read_exec",
            FsGroup::Write => "write",
            FsGroup::ReadWrite => "read_write",
            FsGroup::ReadWriteExec => "read_write_exec",
            FsGroup::Devices => "devices",
            FsGroup::All => "all",
        }
    }

    /// The rights the group stands for.
    pub fn access(self) -> FsAccess {
        use FsRight::*;
        match self {
            FsGroup::Read => FsAccess::of(&[ReadFile, ReadDir]),
            FsGroup::Execute => FsAccess::of(&[Execute]),
            FsGroup::ReadExec => FsGroup::Read.access().union(FsGroup::Execute.access()),
            FsGroup::Write => FsAccess::of(&[
                WriteFile, Truncate, RemoveDir, RemoveFile, MakeDir, MakeReg, MakeSym, MakeSock,
                MakeFifo, Refer, IoctlDev,
            ]),
            FsGroup::ReadWrite => FsGroup::Read.access().union(FsGroup::Write.access()),
            FsGroup::ReadWriteExec => FsGroup::ReadWrite.access().union(FsGroup::Execute.access()),
            FsGroup::Devices => FsAccess::of(&[MakeChar, MakeBlock]),
            FsGroup::All => FsAccess::all(),
        }
    }

    /// Looks a group up by name (`rx`, `rw`, `rwx`, `ro` are accepted as short forms).
    pub fn by_name(name: &str) -> Option<FsGroup> {
        let norm = name.trim().to_ascii_lowercase().replace('-', "_");
        let alias = match norm.as_str() {
            "ro" => "read",
            "rx" | "rox" | "read_execute" => "read_exec",
            "rw" | "read_write_file" => "read_write",
            "rwx" => "read_write_exec",
            "exec" => "execute",
            other => other,
        };
        FsGroup::ALL.into_iter().find(|g| g.name() == alias)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fs_bits_match_uapi() {
        assert_eq!(FsRight::Execute.bit(), 1);
        assert_eq!(FsRight::ReadFile.bit(), 1 << 2);
        assert_eq!(FsRight::Refer.bit(), 1 << 13);
        assert_eq!(FsRight::Truncate.bit(), 1 << 14);
        assert_eq!(FsRight::IoctlDev.bit(), 1 << 15);
        assert_eq!(FsRight::ResolveUnix.bit(), 1 << 16);
        assert_eq!(NetRight::ConnectTcp.bit(), 2);
        assert_eq!(NetRight::ConnectSendUdp.bit(), 8);
        assert_eq!(Scope::Signal.bit(), 2);
    }

    #[test]
    fn supported_sets_grow_with_abi() {
        assert!(FsAccess::supported_by(Abi::V0).is_empty());
        assert_eq!(FsAccess::supported_by(Abi::V1).iter().count(), 13);
        assert!(FsAccess::supported_by(Abi::V3).contains(FsRight::Truncate));
        assert!(!FsAccess::supported_by(Abi::V7).contains(FsRight::ResolveUnix));
        assert_eq!(FsAccess::supported_by(Abi::LATEST), FsAccess::all());
        assert!(NetAccess::supported_by(Abi::V3).is_empty());
        assert_eq!(NetAccess::supported_by(Abi::V7).iter().count(), 2);
        assert_eq!(ScopeSet::supported_by(Abi::V6), ScopeSet::all());
    }

    #[test]
    fn names_and_raw_bits() {
        assert_eq!(
            FsAccess::right_by_name("LANDLOCK_ACCESS_FS_READ_FILE"),
            Some(FsRight::ReadFile)
        );
        assert_eq!(
            FsAccess::right_by_name("ioctl-dev"),
            Some(FsRight::IoctlDev)
        );
        assert_eq!(FsAccess::right_by_name("nope"), None);
        assert_eq!(FsAccess::from_bits(1 << 20), Err(1 << 20));
        assert_eq!(
            FsAccess::from_bits(5).map(|s| s.to_string()),
            Ok("execute,read_file".into())
        );
        assert_eq!(FsGroup::by_name("rwx"), Some(FsGroup::ReadWriteExec));
        assert!(FsGroup::ReadWriteExec.access().contains(FsRight::Execute));
        assert!(!FsGroup::Write.access().contains(FsRight::MakeChar));
        let file = FsAccess::file_rights();
        assert_eq!(file.iter().count(), 6);
        assert!(file.contains(FsRight::Truncate) && !file.contains(FsRight::ReadDir));
    }
}
