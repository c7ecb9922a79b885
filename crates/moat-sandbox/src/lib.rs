//! moat's enforcement layer: turns a [`moat_policy::Policy`] into kernel restrictions on
//! the calling process, then execs the target.
//!
//! The order is fixed: [`abi`] (what the kernel can do) -> [`mod@plan`] (the decision of
//! what will and will not be enforced, with its [`Report`]) -> [`enforce`] (the one place
//! that restricts: no_new_privs, [`caps`], Landlock, [`seccomp`], in that order) ->
//! [`exec`]. Every enforcement point (`moat run`, `--explain`, the container launcher,
//! the function watchdog through [`spawn`]) goes through [`enforce::Restrictions`].
//!
//! What a refusal would need is a [`remedy::Remedy`], which each front end words in its own
//! language. Diagnostics (the tracer, the audit reader, `--explain`) live apart, in
//! [`diagnose`].
//!
//! The modules below are the crate's public surface; the kernel interfaces only the crate
//! itself drives (Landlock's system calls, seccomp user notifications, the supervisor, the
//! planner's path exceptions) are private, and the few names other crates need from them
//! are re-exported here.

#![deny(missing_docs)]

pub mod abi;
pub mod caps;
pub mod diagnose;
pub mod enforce;
mod except;
pub mod exec;
pub mod fds;
mod landlock;
pub mod ldd;
mod notify;
pub mod plan;
pub mod remedy;
mod report;
pub mod seccomp;
pub mod secrets;
pub mod spawn;
mod supervise;
pub mod tmpdir;

pub use abi::{AbiInfo, Availability};
pub use enforce::{Enforcement, Restrictions};
pub use landlock::{ExtraRule, LandlockError};
pub use plan::{plan, Plan, PlanError};
pub use report::{Gap, Needs, Refusal, Report};
pub use supervise::available as supervisor_available;
