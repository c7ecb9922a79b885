//! `moat presets`: the policies shipped inside the binary.

use super::Failure;
use moat_policy::presets::{self, PRESETS};

/// Arguments of `moat presets`.
#[derive(clap::Args, Debug)]
#[command(about = "List the built-in presets, or print one as TOML")]
pub struct PresetsArgs {
    /// Print this preset's policy (moat TOML) instead of the list.
    #[arg(value_name = "NAME")]
    name: Option<String>,
}

/// Runs `moat presets`.
pub fn presets(args: PresetsArgs) -> Result<i32, Failure> {
    match args.name {
        Some(name) => {
            let text = presets::text(&name).map_err(Failure::moat)?;
            print!("{text}");
        }
        None => {
            let width = PRESETS.iter().map(|p| p.name.len()).max().unwrap_or(0);
            for p in PRESETS {
                println!("{:width$}  {}", p.name, p.description());
            }
        }
    }
    Ok(0)
}
