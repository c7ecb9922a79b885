//! Makes `moat_runtime_entry` (src/bin/moat-runtime.rs) the binary's ELF entry point on
//! x86_64 Linux: it runs before glibc's start-up to pass plain pass-through invocations
//! straight to the real runtime (`moat_runtime::early`).

fn main() {
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if arch == "x86_64" && os == "linux" {
        println!("cargo:rustc-link-arg-bin=moat-runtime=-Wl,--entry=moat_runtime_entry");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
