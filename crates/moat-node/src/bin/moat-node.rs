//! `moat-node`: moat's node installer. See `moat_node::run`.

fn main() -> std::process::ExitCode {
    moat_node::run(std::env::args_os())
}
