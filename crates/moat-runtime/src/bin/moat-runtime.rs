//! `moat-runtime`: an OCI runtime with runc's command line that confines containers with
//! Landlock. See the `moat_runtime` library and docs/containers.md.
//!
//! `no_main`, as for `moat`: an engine runs this binary three times per container life
//! (create, start, delete), so it skips the Rust runtime's start-up (the main thread's
//! stack-guard probe reads /proc/self/maps, installs SIGSEGV/SIGBUS handlers and an
//! alternate stack); about 30 us per invocation here. Arguments still come from std, which
//! glibc hands them to independently of `main`. SIGPIPE keeps its default action, which is
//! what the real runtime it execs expects anyway.
#![cfg_attr(not(test), no_main)]

/// The C entry point.
#[cfg(not(test))]
#[no_mangle]
pub extern "C" fn main(_argc: libc::c_int, _argv: *const *const libc::c_char) -> libc::c_int {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let code = moat_runtime::main(args);
    // Without Rust's runtime nobody else flushes std's stdout buffer at exit.
    let _ = std::io::Write::flush(&mut std::io::stdout());
    code
}
