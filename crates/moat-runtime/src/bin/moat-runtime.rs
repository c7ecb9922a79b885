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

// The ELF entry point (set by build.rs): before glibc starts, hand a plain pass-through
// straight to the real runtime (`moat_runtime::early`), then go on to glibc's `_start` with
// the stack exactly as the kernel left it. The test harness build keeps the plain path: its
// own arguments are no runtime's.
#[cfg(all(target_arch = "x86_64", target_os = "linux", not(test)))]
core::arch::global_asm!(
    ".globl moat_runtime_entry",
    "moat_runtime_entry:",
    // The initial stack pointer, kept in a register the callee preserves.
    "mov r12, rsp",
    "mov rdi, rsp",
    "and rsp, -16",
    "call {pass_through}",
    // Not handled: back to the kernel's state (rdx is 0 at entry: no rtld_fini).
    "mov rsp, r12",
    "xor edx, edx",
    "xor r12d, r12d",
    "jmp _start",
    pass_through = sym moat_runtime::pass_through,
);
#[cfg(all(target_arch = "x86_64", target_os = "linux", test))]
core::arch::global_asm!(
    ".globl moat_runtime_entry",
    "moat_runtime_entry:",
    "jmp _start"
);

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
