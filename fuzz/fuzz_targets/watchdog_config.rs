//! Feeds arbitrary text to the watchdog's configuration reader and its duration parser: the
//! input is read as `name=value` lines, the environment the watchdog would see. Nothing may
//! panic, and a value that parses must mean what it says.
#![no_main]

use libfuzzer_sys::fuzz_target;
use moat_watchdog::config::Config;
use moat_watchdog::duration::{parse_go_duration, parse_seconds_or_duration};
use std::collections::HashMap;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut env: HashMap<String, String> = HashMap::new();
    for line in text.lines() {
        if let Some((k, v)) = line.split_once('=') {
            env.insert(k.to_string(), v.to_string());
        }
        // Every line is also a duration on its own.
        if let Ok(d) = parse_seconds_or_duration(line) {
            assert!(d.as_nanos() <= i64::MAX as u128, "{line:?} -> {d:?}");
            if line.bytes().all(|b| b.is_ascii_digit()) {
                assert_eq!(d.subsec_nanos(), 0, "{line:?}");
            }
        }
        if let Ok(d) = parse_go_duration(line) {
            assert!(!line.starts_with('-') || d.is_zero(), "{line:?} -> {d:?}");
        }
    }
    match Config::from_lookup(&|k: &str| env.get(k).cloned()) {
        Ok(c) => {
            assert!(!c.fprocess.is_empty());
            assert!(c.fprocess.iter().all(|a| !a.is_empty() && !a.contains(' ')));
            assert!(c.max_inflight != Some(0));
            assert!(c.read_timeout.is_none_or(|d| !d.is_zero()));
        }
        Err(e) => {
            // Errors name a variable.
            let msg = e.to_string();
            assert!(
                moat_watchdog::config::VARIABLES
                    .iter()
                    .any(|v| msg.contains(v.name)),
                "{msg}"
            );
        }
    }
});
