//! `moat-k8s`: the admission webhook and `render`. See `moat_k8s::cli`.

fn main() -> std::process::ExitCode {
    moat_k8s::cli::run(std::env::args_os())
}
