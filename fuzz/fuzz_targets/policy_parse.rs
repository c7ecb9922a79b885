//! Feeds arbitrary bytes to every policy parser: moat's dialect, landlockconfig and the OCI
//! shapes, in TOML, JSON and YAML, and the writers on whatever parses. Nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    // The first byte picks how the document is named, so each format path gets inputs.
    let name = match selector % 4 {
        0 => "fuzz.toml",
        1 => "fuzz.json",
        2 => "fuzz.yaml",
        _ => "fuzz",
    };
    if let Ok(policy) = moat_policy::parse_str(name, text) {
        let _ = moat_policy::write::to_moat_toml(&policy);
        let _ = moat_policy::write::to_landlockconfig_json(&policy);
        let _ = moat_policy::write::to_oci_json(&policy);
        let mut vars = moat_policy::Vars::new();
        vars.set("HOME", "/home/fuzz");
        vars.set("CWD", "/work");
        vars.set("TMPDIR", "/tmp");
        for rule in &policy.fs.rules {
            let _ = vars.expand(&rule.path, "fuzz");
        }
        for exception in &policy.fs.except {
            let _ = vars.expand(&exception.path, "fuzz");
        }
        if let Some(keep) = policy.caps {
            let _ = keep.names();
        }
    }
});
