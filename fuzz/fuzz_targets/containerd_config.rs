//! Feeds arbitrary text to moat-node as a containerd configuration file: parse, register
//! the `moat` runtime in each layout, remove it again. Nothing may panic; an edit that
//! succeeds leaves a document that parses, holds the runtime, and (removed again) the
//! data the operator had.
#![no_main]

use libfuzzer_sys::fuzz_target;
use moat_node::containerd_config::{self as cfg, Layout, HANDLER};
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let file = Path::new("config.toml");
    let Ok(doc) = cfg::parse(file, text) else {
        return;
    };
    let before: Result<toml::Table, _> = toml::from_str(text);
    for layout in [Layout::V1, Layout::V2, Layout::V3] {
        let mut d = doc.clone();
        let had = cfg::runtimes(&d, layout).is_some_and(|r| r.contains_key(HANDLER));
        if cfg::set_runtime(&mut d, layout, HANDLER, cfg::moat_entry(None, "/b"), file).is_err() {
            continue;
        }
        let edited = d.to_string();
        let data: toml::Table =
            toml::from_str(&edited).unwrap_or_else(|e| panic!("{text:?} -> {edited:?}: {e}"));
        let r = cfg::lookup(&data, &layout.runtimes_path()).expect("runtimes");
        assert!(r.get(HANDLER).is_some(), "{edited:?}");
        if !had {
            cfg::remove_runtime(&mut d, layout, HANDLER, false);
            if let Ok(b) = &before {
                let again: toml::Table = toml::from_str(&d.to_string()).unwrap();
                assert!(kept(b, &again), "{text:?} -> {}", d);
            }
        }
    }
    let _ = cfg::trial_config(text, &cfg::TrialDirs { base: "/w".into() });
});

/// Every leaf of `old` is in `new` with the same value.
fn kept(old: &toml::Table, new: &toml::Table) -> bool {
    old.iter().all(|(k, v)| match (v, new.get(k)) {
        (toml::Value::Table(a), Some(toml::Value::Table(b))) => kept(a, b),
        (a, Some(b)) => a == b,
        (_, None) => false,
    })
}
