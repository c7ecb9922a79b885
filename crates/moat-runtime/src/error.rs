//! Why moat-runtime refused to start a container.

use std::path::PathBuf;

/// Everything that makes moat-runtime refuse a command. Each message says what to fix.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The command line could not be read.
    #[error(transparent)]
    Cli(#[from] crate::cli::CliError),
    /// A bundle's config.json could not be read or is not valid JSON.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The container's policy is malformed or names something unknown.
    #[error(transparent)]
    Source(#[from] crate::policy_source::SourceError),
    /// The policy cannot be enforced as asked on this kernel.
    #[error("container policy: {}", moat_sandbox::remedy::Advised::advise(.0, &moat_sandbox::remedy::container_words))]
    Plan(#[from] moat_sandbox::plan::PlanError),
    /// The policy cannot be written out for the launcher without changing its meaning.
    #[error("container policy cannot be handed to the launcher unchanged: {0} (set annotation moat.dev/compat=best-effort to accept)")]
    Lossy(String),
    /// The policy cannot be written out for the launcher at all.
    #[error("container policy: {0}")]
    Write(#[from] moat_policy::write::WriteError),
    /// moat-runtime's own configuration is wrong.
    #[error(transparent)]
    Setup(#[from] crate::runtime_config::SetupError),
    /// A file moat-runtime must write could not be written.
    #[error("cannot write `{}`: {source}", path.display())]
    WriteFile {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// `restore` of a confined container: CRIU brings the processes back without running
    /// the launcher, and does not restore Landlock domains, so they would run unconfined.
    #[error("refusing to restore into bundle `{}`: its container is confined by moat, and a restored process would come back without its Landlock sandbox (CRIU does not restore Landlock domains and the launcher does not run again); start a new container instead", bundle.display())]
    RestoreConfined {
        /// The bundle.
        bundle: PathBuf,
    },
    /// moat-runtime's record of a confined container cannot be used.
    #[error("`{}`: {message} (moat-runtime's record of the container it confined; the container's processes are not started without it)", path.display())]
    State {
        /// The record.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A pod container whose moat annotations are not those its sandbox was created with.
    #[error("the pod's moat annotations changed after the pod was created ({0}); moat applies the annotations a pod was admitted with, so it starts no container with others: create the pod again to change its policy")]
    PodChanged(String),
    /// The real runtime could not be run.
    #[error("cannot run the real runtime `{}`: {source}", runtime.to_string_lossy())]
    Runtime {
        /// Its path or name.
        runtime: std::ffi::OsString,
        /// The error.
        source: std::io::Error,
    },
    /// The real runtime's answer could not be used.
    #[error("the real runtime's `{command}` failed: {message}")]
    RuntimeOutput {
        /// The subcommand.
        command: String,
        /// What went wrong.
        message: String,
    },
    /// cgroup-bpf (counters, UDP port rules) could not be set up.
    #[error("{0}\n(a confined container's UDP port rules below Landlock ABI 10 and its counters need cgroup-bpf; the annotation moat.dev/compat=best-effort starts it without what failed)")]
    CgroupBpf(#[from] crate::cgroup_bpf::CgroupBpfError),
    /// An exec into a confined container whose process cannot be confined.
    #[error("exec: {0}")]
    Exec(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use moat_sandbox::plan::PlanError;

    #[test]
    fn plan_remedies_name_annotations_and_policy_keys() {
        let missing = RuntimeError::Plan(PlanError::MissingPath {
            path: "/data".into(),
            origin: moat_policy::Origin::new("moat.dev/policy: filesystem.read"),
        });
        assert_eq!(
            missing.to_string(),
            "container policy: moat.dev/policy: filesystem.read: path `/data` does not exist \
             (mark it optional in the container's policy (`optional = true`))"
        );
        let best_effort =
            moat_sandbox::remedy::container_words(&moat_sandbox::remedy::Remedy::BestEffort);
        assert_eq!(
            best_effort.as_deref(),
            Some("set the annotation moat.dev/compat=best-effort to run with what this kernel enforces")
        );
    }
}
