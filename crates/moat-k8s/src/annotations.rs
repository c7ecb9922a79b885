//! The annotations moat reads and writes on a Pod. The contract itself (keys, checks) is
//! shared with moat-runtime on the node and lives in [`moat_policy::annotations`]; this
//! module adds what only the cluster side needs.

pub use moat_policy::annotations::*;

/// The RuntimeClass (and runtime handler) that runs containers through moat-runtime.
pub const RUNTIME_CLASS: &str = "moat";
