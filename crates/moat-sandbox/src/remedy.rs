//! What would let a refused launch or a denied operation through, as facts about the
//! policy rather than as advice in some front end's words.
//!
//! The enforcement library serves several front ends, and each has its own way of changing
//! a policy: `moat run` has flags, the function watchdog has environment variables,
//! moat-runtime has annotations and policy files. An error of this crate says what went
//! wrong and lists its [`Remedy`]s; each front end renders them in its own language with
//! [`Advised::advise`], which places them where the message has always had its advice.

use moat_policy::{FsGroup, NetRight, Right, Scope};
use std::path::{Path, PathBuf};

/// One change to the policy (or to the way it is applied) that would remove a refusal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Remedy {
    /// Grant the rights of `group` on `path` itself.
    Grant {
        /// The object.
        path: PathBuf,
        /// The smallest intent group holding the rights it lacked.
        group: FsGroup,
    },
    /// Grant read and execute on a directory above `path` (a program, or its interpreter).
    GrantExecAbove {
        /// The file that lacks execute.
        path: PathBuf,
    },
    /// Grant execute on the program being started, and on nothing else.
    GrantProgram,
    /// Grant what the program needs to run: its ELF interpreter and libraries.
    GrantDependencies,
    /// Mark the rule of a path that does not exist optional.
    MarkOptional,
    /// Skip every rule whose path does not exist.
    IgnoreMissing,
    /// Allow `right` on `port`.
    AllowPort {
        /// The right.
        right: NetRight,
        /// The port.
        port: u16,
    },
    /// Turn a scope off, so the sandbox may reach processes outside it that way.
    Unscope(Scope),
    /// Run with what this kernel enforces (best-effort mode), reporting what it does not.
    BestEffort,
}

impl Remedy {
    /// The line of a moat policy file that applies the remedy, when one does.
    pub fn policy_line(&self) -> Option<String> {
        match self {
            Remedy::Grant { path, group } => Some(format!(
                "[filesystem] {} = [{}]",
                group.name(),
                quoted(path)
            )),
            Remedy::GrantExecAbove { .. } => None,
            Remedy::AllowPort { right, port } => {
                Some(format!("[network] {} = [{port}]", right.name()))
            }
            // The `[scopes]` keys are the scopes' kernel names.
            Remedy::Unscope(s) => Some(format!("[scopes] {} = false", s.name())),
            Remedy::GrantProgram
            | Remedy::GrantDependencies
            | Remedy::MarkOptional
            | Remedy::IgnoreMissing
            | Remedy::BestEffort => None,
        }
    }
}

/// A remedy in the words of a container's policy (policy keys and moat's annotations), or
/// `None` when a container has no way to apply it. The container front end is two
/// binaries, moat-runtime on the host and its launcher inside the container, so both
/// render from here.
pub fn container_words(remedy: &Remedy) -> Option<String> {
    use moat_policy::annotations::COMPAT;
    let in_policy = |line: String| format!("add `{line}` to the container's policy");
    match remedy {
        Remedy::Grant { .. } | Remedy::AllowPort { .. } | Remedy::Unscope(_) => {
            remedy.policy_line().map(in_policy)
        }
        Remedy::GrantExecAbove { .. } => {
            Some("grant read_exec on a directory above it in the container's policy".into())
        }
        Remedy::GrantProgram | Remedy::GrantDependencies => None,
        Remedy::MarkOptional => {
            Some("mark it optional in the container's policy (`optional = true`)".into())
        }
        Remedy::IgnoreMissing => None,
        Remedy::BestEffort => Some(format!(
            "set the annotation {COMPAT}=best-effort to run with what this kernel enforces"
        )),
    }
}

fn quoted(p: &Path) -> String {
    format!("{:?}", p.to_string_lossy())
}

/// An error whose message has a place for remedies.
pub trait Advised: std::fmt::Display {
    /// The remedies, in the order a message offers them.
    fn remedies(&self) -> Vec<Remedy>;

    /// Where the remedies go: the text before them, between two of them and after them.
    /// `None` when the message has no advice.
    fn advice_frame(&self) -> Option<Frame> {
        None
    }

    /// The message with its remedies in a front end's words: `words` renders one, or
    /// gives `None` when the front end has no way to apply it.
    fn advise(&self, words: &dyn Fn(&Remedy) -> Option<String>) -> String {
        let mut s = self.to_string();
        let said: Vec<String> = self.remedies().iter().filter_map(words).collect();
        let Some(frame) = self.advice_frame().filter(|_| !said.is_empty()) else {
            return s;
        };
        s.push_str(frame.before);
        s.push_str(&said.join(frame.between));
        s.push_str(frame.after);
        s
    }
}

/// How an error's message frames its remedies.
#[derive(Clone, Copy, Debug)]
pub struct Frame {
    /// Between the message and the first remedy.
    pub before: &'static str,
    /// Between two remedies.
    pub between: &'static str,
    /// After the last remedy.
    pub after: &'static str,
}
