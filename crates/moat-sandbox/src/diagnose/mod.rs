//! Diagnostics: watching what a sandboxed program does and what the sandbox denies it, for
//! `moat record` and `moat run --explain`. Nothing here restricts anything; the
//! enforcement path (plan, enforce, spawn, exec) never calls into it, so a launch pays
//! nothing for it.
//!
//! - [`trace`]: a tracer on seccomp user notifications that observes the calls a program
//!   makes, without denying or altering any;
//! - [`audit`]: the kernel's own Landlock audit records, read from the audit netlink
//!   multicast group;
//! - [`explain`]: denials from either source, checked against the plan, with the
//!   [`crate::remedy::Remedy`] that would allow each.

pub mod audit;
pub mod explain;
pub mod trace;
