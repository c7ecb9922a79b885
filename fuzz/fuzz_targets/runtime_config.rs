//! Feeds arbitrary bytes to moat-runtime's early configuration reader (the one that runs
//! before the C library, `moat_runtime::config_runtime`). Nothing may panic, and
//! whatever it is sure of, the full path's TOML reader must read the same way: same
//! runtime, no error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use moat_runtime::{config_runtime, FileConfig, FileRuntime};

fuzz_target!(|data: &[u8]| {
    let early = match config_runtime(data) {
        FileRuntime::Unsure => return,
        FileRuntime::Default => None,
        FileRuntime::Named(a, b) => Some(
            std::str::from_utf8(&data[a..b])
                .expect("the early reader takes ASCII only")
                .to_string(),
        ),
    };
    let text = std::str::from_utf8(data).expect("the early reader takes ASCII only");
    let full = FileConfig::parse(std::path::Path::new("runtime.toml"), text)
        .unwrap_or_else(|e| panic!("{text:?}: early {early:?}, full path: {e}"));
    assert_eq!(early, full.runtime, "{text:?}");
});
