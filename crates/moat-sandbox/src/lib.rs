//! moat's enforcement layer: turns a [`moat_policy::Policy`] into kernel restrictions on
//! the calling process, then execs the target.
//!
//! The order is fixed: [`abi`] (what the kernel can do) -> [`plan`] (pure decision of what
//! will and will not be enforced, with its [`report`]) -> [`landlock`] and [`seccomp`]
//! (the only code that restricts) -> [`exec`].

#![deny(missing_docs)]

pub mod ldd;
pub mod seccomp;
