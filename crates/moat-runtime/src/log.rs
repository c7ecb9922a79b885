//! Error reports in runc's log format, so the engine that called the runtime (podman,
//! containerd, CRI-O) shows them: with `--log-format json`, one line
//! `{"level":"error","msg":"...","time":"<RFC 3339>"}` appended to the `--log` file; in
//! text format, a logrus-style `time=... level=error msg=...` line.

use std::io::Write;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

/// Writes `msg` to stderr and, when a log file is named, appends it there in `format`.
pub fn error(log: Option<&Path>, format: Option<&str>, msg: &str) {
    eprintln!("moat-runtime: {msg}");
    let Some(path) = log else { return };
    let line = render(format, msg, SystemTime::now());
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = f.write_all(line.as_bytes());
    }
}

/// One log line (with its newline) in runc's `format` (`json`, else text).
pub fn render(format: Option<&str>, msg: &str, at: SystemTime) -> String {
    let time = rfc3339(at);
    let msg = format!("moat-runtime: {msg}");
    if format == Some("json") {
        let v = serde_json::json!({ "level": "error", "msg": msg, "time": time });
        format!("{v}\n")
    } else {
        let quoted = serde_json::Value::String(msg).to_string();
        format!("time=\"{time}\" level=error msg={quoted}\n")
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ` in UTC.
pub fn rfc3339(at: SystemTime) -> String {
    let secs = at
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_709_210_096);
        assert_eq!(rfc3339(t), "2024-02-29T12:34:56Z");
    }

    #[test]
    fn json_line_is_what_runc_writes() {
        let line = render(Some("json"), "bad \"policy\"", UNIX_EPOCH);
        let v: serde_json::Value = serde_json::from_str(line.trim_end()).unwrap();
        assert_eq!(v["level"], "error");
        assert_eq!(v["msg"], "moat-runtime: bad \"policy\"");
        assert_eq!(v["time"], "1970-01-01T00:00:00Z");
        assert!(render(None, "x", UNIX_EPOCH).contains("level=error msg=\"moat-runtime: x\""));
    }
}
