//! moat's node installer (`moat-node`): puts moat-runtime and the launcher on a
//! Kubernetes node and registers the runtime handler `moat` with containerd (1.6, 1.7,
//! 2.x) or CRI-O, keeping every setting the node had. Before the node's runtime is
//! restarted the new configuration is proven (containerd: `config dump` shows every old
//! setting and the new handler, and a second containerd started on it loads the CRI
//! plugin); anything that fails puts every file back. `uninstall` undoes it the same way.
//!
//! [`containerd_config`] holds the configuration logic as pure functions (public: the
//! fuzz target drives it), `containerd` and `crio` run it against the node (`host`),
//! `files` makes the changes one transaction, `install` is the procedure and `cli` the
//! command line, whose [`run`] is all the `moat-node` binary calls.

#![deny(missing_docs)]

mod cli;
mod containerd;
pub mod containerd_config;
mod crio;
mod files;
mod host;
mod install;
mod runtime_file;

pub use cli::run;

/// Why the installer stopped. Every file it changed has been put back by then.
#[derive(Debug, thiserror::Error)]
pub(crate) enum NodeError {
    /// A file could not be read or written.
    #[error(transparent)]
    File(#[from] files::FileError),
    /// A configuration file cannot be parsed or edited.
    #[error(transparent)]
    Config(#[from] containerd_config::ConfigError),
    /// A host program failed.
    #[error("{what}: {message}")]
    Command {
        /// The command.
        what: String,
        /// Its error output or the reason it could not run.
        message: String,
    },
    /// The node is not one moat-node can install on, as it is.
    #[error("{0}")]
    Refused(String),
    /// The new configuration lost or changed a setting of the node's.
    #[error("the new containerd configuration is not the node's plus moat:\n  {}", .0.join("\n  "))]
    Verify(Vec<String>),
    /// A containerd started on the new configuration did not load the CRI plugin.
    #[error("a trial containerd on the new configuration failed: {why}\n{log}")]
    Trial {
        /// What went wrong.
        why: String,
        /// containerd's own lines about it.
        log: String,
    },
    /// The restarted runtime did not come back.
    #[error("after the restart: {0}")]
    Restart(String),
}
