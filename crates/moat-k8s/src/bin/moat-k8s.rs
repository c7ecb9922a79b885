//! `moat-k8s`: the admission webhook and `render`. See `moat_k8s::cli`.

// mimalloc: see the dependency's note in Cargo.toml.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    moat_k8s::cli::run(std::env::args_os())
}
