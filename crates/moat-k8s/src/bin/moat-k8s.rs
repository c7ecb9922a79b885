//! `moat-k8s`: the admission webhook and `render`. See `moat_k8s::run_with`.

// mimalloc: see the dependency's note in Cargo.toml.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

extern "C" {
    /// mimalloc's own: frees what the calling thread's heap no longer uses and gives the
    /// empty pages back to the system (`force`: everything it can, at once).
    fn mi_collect(force: bool);
}

fn give_back() {
    // SAFETY: mi_collect only works on the calling thread's heap and mimalloc's shared
    // free lists; mimalloc is the global allocator, so the symbol is linked.
    unsafe { mi_collect(true) }
}

fn main() -> std::process::ExitCode {
    moat_k8s::run_with(std::env::args_os(), Some(give_back))
}
