//! moat's enforcement layer: turns a [`moat_policy::Policy`] into kernel restrictions on
//! the calling process, then execs the target.
//!
//! The order is fixed: [`abi`] (what the kernel can do) -> [`mod@plan`] (the decision of
//! what will and will not be enforced, with its [`report`]) -> [`enforce`] (the one place
//! that restricts: no_new_privs, [`caps`], [`landlock`], [`seccomp`], in that order) ->
//! [`exec`]. Every enforcement point (`moat run`, `--explain`, the container launcher,
//! the function watchdog through [`spawn`]) goes through [`enforce::Restrictions`].

#![deny(missing_docs)]

pub mod abi;
pub mod caps;
pub mod diagnose;
pub mod enforce;
mod except;
pub mod exec;
pub mod fds;
pub mod landlock;
pub mod ldd;
pub mod notify;
pub mod plan;
pub mod remedy;
pub mod report;
pub mod seccomp;
pub mod secrets;
pub mod spawn;
pub mod supervise;
pub mod tmpdir;

pub use abi::{AbiInfo, Availability};
pub use enforce::{Enforcement, Restrictions};
pub use plan::{plan, Plan, PlanError};
pub use report::{Gap, Needs, Report};
