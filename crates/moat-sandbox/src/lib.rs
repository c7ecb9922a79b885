//! moat's enforcement layer: turns a [`moat_policy::Policy`] into kernel restrictions on
//! the calling process, then execs the target.
//!
//! The order is fixed: [`abi`] (what the kernel can do) -> [`mod@plan`] (the decision of
//! what will and will not be enforced, with its [`report`]) -> [`fds`], [`landlock`] and
//! [`seccomp`] (the only code that restricts) -> [`exec`]. Each enforcement point (`moat
//! run`, the container launcher, the function watchdog) strings them together in this
//! order.

#![deny(missing_docs)]

pub mod abi;
pub mod audit;
pub mod exec;
pub mod explain;
pub mod fds;
pub mod landlock;
pub mod ldd;
pub mod plan;
pub mod report;
pub mod seccomp;
pub mod spawn;
pub mod trace;

pub use abi::{AbiInfo, Availability};
pub use plan::{plan, Plan, PlanError};
pub use report::{Gap, Report};
