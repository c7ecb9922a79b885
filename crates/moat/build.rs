//! Links `moat` with launch.ld, which gathers the functions a launch executes before the
//! rest of the code (see bench/launch_order.py, which writes it, and docs/PERFORMANCE.md).
//! Only the `moat` binary and only on Linux: the script uses GNU ld's and lld's `INSERT`,
//! and its patterns name this toolchain's symbols; where nothing matches, nothing moves.

fn main() {
    println!("cargo:rerun-if-changed=launch.ld");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let Ok(dir) = std::env::var("CARGO_MANIFEST_DIR") else {
        return;
    };
    let script = std::path::Path::new(&dir).join("launch.ld");
    if os == "linux" && script.exists() {
        println!("cargo:rustc-link-arg-bin=moat=-Wl,-T,{}", script.display());
    }
}
