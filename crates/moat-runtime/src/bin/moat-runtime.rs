//! `moat-runtime`: an OCI runtime with runc's command line that confines containers with
//! Landlock. See the `moat_runtime` library and docs/containers.md.

fn main() {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    std::process::exit(moat_runtime::main(args));
}
