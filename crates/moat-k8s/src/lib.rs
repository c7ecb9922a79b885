//! moat for Kubernetes: what a Pod declares is what the kernel enforces.
//!
//! The admission webhook ([`admission`], served by the crate's HTTPS server) turns each
//! opted-in pod's intent ([`opt_in`]) into one final policy per container, written as
//! annotations with a JSON Patch; moat-runtime on the node enforces them. `render` shows
//! the same result for manifests without a cluster, and [`certs`] makes the webhook's
//! certificates. [`run_with`] is the `moat-k8s` command line.
//!
//! The rest of the crate is private; this facade is what other crates and the crate's own
//! binary, example and integration tests use.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod admission;
mod annotations;
pub mod certs;
mod cli;
mod floors;
mod guard;
mod memo;
pub mod opt_in;
mod patch;
mod pod;
mod pod_policy;
mod render;
mod server;
mod tls;

pub use admission::review;
pub use annotations::RUNTIME_CLASS;
pub use cli::{run, run_with};
pub use floors::{Floors, FloorsError};
pub use opt_in::Scope;
pub use tls::{load as load_tls, TlsError};
