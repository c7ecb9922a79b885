//! `moat-node`: moat's node installer. See `moat_node::cli`.

fn main() -> std::process::ExitCode {
    moat_node::cli::run(std::env::args_os())
}
