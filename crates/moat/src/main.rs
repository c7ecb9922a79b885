//! `moat`: the command-line front of moat. Parsing and reporting live here; the work is
//! done by the `moat-policy` and `moat-sandbox` libraries.
//!
//! `no_main`: moat is a launcher that runs in front of every sandboxed command, so it skips
//! the Rust runtime's start-up work (the main thread's stack-guard probe parses
//! /proc/self/maps with sscanf, installs signal handlers and an alternate stack): about a
//! tenth of moat's instructions per launch. Arguments and environment still come from std,
//! which reads them on glibc independently of `main`.
#![cfg_attr(not(test), no_main)]

// In unit-test builds the C entry point is compiled out, leaving `cli::main` unused.
#[cfg_attr(test, allow(dead_code))]
mod cli;
mod launch_alloc;

/// Every allocation of moat's process goes to a bump arena first: see [`launch_alloc`].
/// The arena has a section of its own, which launch.ld places after the other
/// zero-initialised data: placed among them, its megabyte spread glibc's and std's variables
/// over more pages, each one more page fault per launch.
#[global_allocator]
#[link_section = ".bss.moat_arena"]
static ALLOC: launch_alloc::LaunchAlloc<{ launch_alloc::ARENA }> = launch_alloc::LaunchAlloc::new();

/// The C entry point.
#[cfg(not(test))]
#[no_mangle]
pub extern "C" fn main(_argc: libc::c_int, _argv: *const *const libc::c_char) -> libc::c_int {
    let code = cli::main();
    // Without Rust's runtime nobody else flushes std's stdout buffer at exit.
    let _ = std::io::Write::flush(&mut std::io::stdout());
    code
}
