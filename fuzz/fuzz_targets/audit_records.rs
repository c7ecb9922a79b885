//! The audit record parsers behind `moat run --explain`: the kernel writes these records,
//! but any process with CAP_AUDIT_WRITE can add user records to the same stream, so the
//! parsers must take any text without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use moat_sandbox::diagnose::audit;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Some(r) = audit::parse_record(audit::AUDIT_LANDLOCK_ACCESS, &text) {
        let _ = audit::parse_access(&r.text);
        let _ = audit::parse_allocation(&r.text);
        let _ = audit::parse_syscall(&r.text);
    }
    let _ = audit::parse_access(&text);
    let _ = audit::parse_allocation(&text);
    let _ = audit::parse_syscall(&text);
    let _ = audit::string_field(&text, "path");
    let _ = audit::messages(data);
});
