//! moat's policy model.
//!
//! Data flows one way: policy text ([`dialect`]) becomes one [`Policy`] (the `model`),
//! which enforcement crates turn into kernel restrictions. Everything here is pure: no
//! syscall, no kernel probing.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod abi;
pub mod annotations;
mod caps;
pub mod dialect;
mod error;
mod intersect;
mod model;
mod ports;
pub mod presets;
pub mod record;
mod rights;
pub mod secrets;
pub mod vars;
pub mod write;

pub use abi::Abi;
pub use caps::{Cap, CapSet, KeepCaps};
pub use dialect::{load_file, parse_str, Dialect, Document, Format};
pub use error::{Diagnostic, PolicyError};
pub use model::{
    fs_baseline, AuditFlags, Compat, EnvPolicy, FsPolicy, NetPolicy, Origin, PathException,
    PathRule, Policy, PortRule,
};
pub use ports::{parse_port_list, PortError, PortRange};
pub use rights::{
    AccessSet, FsAccess, FsGroup, FsRight, NetAccess, NetRight, Right, Scope, ScopeSet,
};
pub use vars::Vars;
