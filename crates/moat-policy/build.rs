//! Converts the built-in presets from TOML (what users read with `moat presets NAME`) to
//! JSON (what moat parses at run time). The default preset is parsed on every plain
//! `moat run`, and the JSON path is several times cheaper at start-up than the TOML one
//! (measured in docs/PERFORMANCE.md); both describe the same document, and a unit test
//! checks that they parse to the same policy.

use std::path::Path;

fn main() {
    let out = std::env::var("OUT_DIR").map(std::path::PathBuf::from);
    let Ok(out) = out else {
        panic!("cargo sets OUT_DIR for build scripts");
    };
    let dir = Path::new("presets");
    println!("cargo:rerun-if-changed=presets");
    let Ok(entries) = std::fs::read_dir(dir) else {
        panic!("presets/ is missing");
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        println!("cargo:rerun-if-changed={}", path.display());
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let value: toml::Value =
            toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let json =
            serde_json::to_string(&value).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let name = path.with_extension("json");
        let Some(file) = name.file_name() else {
            continue;
        };
        std::fs::write(out.join(file), json).unwrap_or_else(|e| panic!("{e}"));
    }
}
