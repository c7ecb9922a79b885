//! `moat completions SHELL` and `moat man`: shell completions and manual pages generated
//! from the one clap definition of the command line, so they cannot drift from it.

use super::Failure;
use std::io::Write;
use std::path::PathBuf;

/// Arguments of `moat completions`.
#[derive(clap::Args, Debug)]
#[command(
    about = "Print shell completions for moat",
    after_help = "Examples:\n  moat completions bash > /etc/bash_completion.d/moat\n  moat completions zsh > \"${fpath[1]}/_moat\"\n  moat completions fish > ~/.config/fish/completions/moat.fish"
)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    shell: clap_complete::Shell,
}

/// Arguments of `moat man`.
#[derive(clap::Args, Debug)]
#[command(
    about = "Print moat's manual page, or write one page per subcommand",
    after_help = "Examples:\n  moat man | man -l -\n  moat man --dir /usr/local/share/man/man1"
)]
pub struct ManArgs {
    /// Write moat.1 and moat-SUBCOMMAND.1 into this directory instead of printing moat.1.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

/// Prints the completions of `cmd` for the chosen shell.
pub fn completions(args: CompletionsArgs, mut cmd: clap::Command) -> Result<i32, Failure> {
    let mut out = std::io::stdout().lock();
    clap_complete::generate(args.shell, &mut cmd, "moat", &mut out);
    out.flush()
        .map_err(|e| Failure::moat(format!("writing completions: {e}")))?;
    Ok(0)
}

/// Prints moat(1), or writes every page into `--dir`.
pub fn man(args: ManArgs, cmd: clap::Command) -> Result<i32, Failure> {
    let render = |cmd: clap::Command| -> std::io::Result<Vec<u8>> {
        let mut page = Vec::new();
        clap_mangen::Man::new(cmd).render(&mut page)?;
        Ok(page)
    };
    let io = |what: String| move |e: std::io::Error| Failure::moat(format!("{what}: {e}"));
    let Some(dir) = args.dir else {
        let page = render(cmd).map_err(io("rendering moat.1".into()))?;
        std::io::stdout()
            .write_all(&page)
            .map_err(io("writing moat.1".into()))?;
        return Ok(0);
    };
    let cmd = cmd.bin_name("moat");
    let mut pages = vec![("moat".to_string(), cmd.clone())];
    // The companions (webhook, k8s, watchdog) are other binaries with their own --help;
    // here they are only a word that hands over, with nothing to document.
    let own = |s: &&clap::Command| !s.is_hide_set() && !s.is_disable_help_flag_set();
    for sub in cmd.get_subcommands().filter(own) {
        let name = format!("moat-{}", sub.get_name());
        // The page's title and synopsis name the subcommand as it is typed.
        let sub = sub
            .clone()
            .name(name.clone())
            .bin_name(format!("moat {}", sub.get_name()));
        pages.push((name, sub));
    }
    for (name, page) in pages {
        let path = dir.join(format!("{name}.1"));
        let text = render(page).map_err(io(format!("rendering {name}.1")))?;
        std::fs::write(&path, text).map_err(io(path.display().to_string()))?;
    }
    Ok(0)
}

/// Arguments of `moat install-landrun-link`.
#[derive(clap::Args, Debug)]
#[command(
    about = "Make a `landrun` symlink to moat, so landrun's scripts run on moat unchanged",
    long_about = "Make a `landrun` symlink to moat, so landrun's scripts run on moat unchanged.\n\n\
Started under the name `landrun`, moat takes landrun's flags and keeps its rules: without a \
path flag everything is denied, the command gets only the variables --env names, landrun's own \
failures exit 1, and without --best-effort Landlock ABI 9 is required. moat's own protections \
still apply (docs/compatibility.md). The same as `ln -s \"$(command -v moat)\" DIR/landrun`.",
    after_help = "Examples:\n  moat install-landrun-link                  next to moat's own binary\n  moat install-landrun-link ~/bin             the link in ~/bin\n  landrun --rox /usr --ro /etc -- whoami"
)]
pub struct LandrunLinkArgs {
    /// Directory for the link (default: the directory holding moat's binary).
    #[arg(value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Replace an existing `landrun` there (otherwise moat refuses to touch it).
    #[arg(long)]
    force: bool,
}

/// Creates DIR/landrun pointing at this moat binary.
pub fn landrun_link(args: LandrunLinkArgs) -> Result<i32, Failure> {
    let exe = std::env::current_exe()
        .map_err(|e| Failure::moat(format!("cannot find moat's own binary: {e}")))?;
    let dir = match args.dir {
        Some(d) => d,
        None => exe
            .parent()
            .map(PathBuf::from)
            .ok_or_else(|| Failure::moat("moat's binary has no directory"))?,
    };
    if !dir.is_dir() {
        return Err(Failure::moat(format!("{}: not a directory", dir.display())));
    }
    let link = dir.join(super::landrun::NAME);
    match std::fs::symlink_metadata(&link) {
        Ok(_) if std::fs::read_link(&link).is_ok_and(|t| t == exe) => {
            println!("{} already points to {}", link.display(), exe.display());
            return Ok(0);
        }
        Ok(_) if !args.force => {
            return Err(Failure::moat(format!(
                "{} exists and is not a link to {}: remove it, or pass --force",
                link.display(),
                exe.display()
            )))
        }
        Ok(_) => std::fs::remove_file(&link)
            .map_err(|e| Failure::moat(format!("{}: {e}", link.display())))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Failure::moat(format!("{}: {e}", link.display()))),
    }
    std::os::unix::fs::symlink(&exe, &link)
        .map_err(|e| Failure::moat(format!("{}: {e}", link.display())))?;
    println!("{} -> {}", link.display(), exe.display());
    Ok(0)
}
