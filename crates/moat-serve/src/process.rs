//! What `/proc` says of a process's memory and descriptors: for logs, tests and the
//! benchmarks that watch a server under load.

/// A field of `/proc/<pid>/status` given in kB (`VmRSS`, `VmHWM`), 0 if it cannot be read.
pub fn status_kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field).and_then(|v| v.strip_prefix(':')))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// How many descriptors `pid` has open, 0 if it cannot be read.
pub fn descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let me = std::process::id();
        assert!(status_kb(me, "VmRSS") > 0);
        assert!(status_kb(me, "VmHWM") >= status_kb(me, "VmRSS") / 2);
        assert!(descriptors(me) >= 3);
        assert_eq!(status_kb(me, "NoSuchField"), 0);
    }
}
