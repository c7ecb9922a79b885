//! moat for Kubernetes: what a Pod declares is what the kernel enforces.
//!
//! The admission webhook ([`admission`], served by [`server`]) turns each opted-in pod's
//! intent ([`opt_in`]) into one final policy per container ([`pod_policy`]), written as
//! annotations ([`annotations`]) with a JSON Patch ([`patch`]); moat-runtime on the node
//! enforces them. [`render`] shows the same result for manifests without a cluster, and
//! [`certs`] makes the webhook's certificates. [`cli`] is the `moat-k8s` command line.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod admission;
pub mod annotations;
pub mod certs;
pub mod cli;
pub mod floors;
pub mod guard;
mod memo;
pub mod opt_in;
pub mod patch;
pub mod pod;
pub mod pod_policy;
pub mod render;
pub mod server;
pub mod tls;
