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
