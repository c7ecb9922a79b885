//! Latency percentiles, and the CPU time each side spent, from /proc.
//!
//! Both processes share the machine's cores, so throughput alone does not say who spent
//! what. The CPU time of the webhook, of this process and of everything else on the
//! machine over the measured interval tells the cost per request of each side, and
//! whether another load was competing for the cores during the run.

use std::time::Duration;

/// The value at quantile `q` (0..=1) of sorted latencies (nearest rank).
pub fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// CPU time, in clock ticks, at one instant.
#[derive(Clone, Copy, Debug, Default)]
pub struct CpuSample {
    /// The webhook process (all its threads, user and system).
    pub server: u64,
    /// This process.
    pub client: u64,
    /// All cores, busy (not idle or waiting for I/O).
    pub machine_busy: u64,
    /// All cores, every state.
    pub machine_total: u64,
}

/// User plus system ticks of process `pid` (fields 14 and 15 of /proc/PID/stat).
fn process_ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; the fields after it do not.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split(' ').skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some(user + system)
}

/// Busy and total ticks of all cores (the `cpu` line of /proc/stat).
fn machine_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let v: Vec<u64> = line
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    Some((total.saturating_sub(idle), total))
}

impl CpuSample {
    /// Now, for the webhook with process id `server`. Missing values read as 0.
    pub fn now(server: u32) -> CpuSample {
        let (machine_busy, machine_total) = machine_ticks().unwrap_or_default();
        CpuSample {
            server: process_ticks(&server.to_string()).unwrap_or(0),
            client: process_ticks("self").unwrap_or(0),
            machine_busy,
            machine_total,
        }
    }
}

/// What the CPU did between two samples.
pub struct CpuUse {
    /// Webhook CPU time per answered request.
    pub server_per_request: Duration,
    /// Load generator CPU time per answered request.
    pub client_per_request: Duration,
    /// Share of the machine's cores busy with other processes (0..=1).
    pub others: f64,
    /// Share of the machine's cores busy in all (0..=1).
    pub busy: f64,
}

/// The CPU use between `a` and `b`, for `requests` answered.
pub fn cpu_use(a: CpuSample, b: CpuSample, requests: usize) -> CpuUse {
    // SAFETY: sysconf with a valid name has no preconditions.
    let hz = match unsafe { libc::sysconf(libc::_SC_CLK_TCK) } {
        n if n > 0 => n as f64,
        _ => 100.0,
    };
    let per_request =
        |ticks: u64| Duration::from_secs_f64(ticks as f64 / hz / requests.max(1) as f64);
    let server = b.server.saturating_sub(a.server);
    let client = b.client.saturating_sub(a.client);
    let busy = b.machine_busy.saturating_sub(a.machine_busy);
    let total = b.machine_total.saturating_sub(a.machine_total).max(1) as f64;
    CpuUse {
        server_per_request: per_request(server),
        client_per_request: per_request(client),
        others: busy.saturating_sub(server + client) as f64 / total,
        busy: busy as f64 / total,
    }
}

/// A process's memory and descriptors, from /proc.
pub struct Resources {
    rss_kb: u64,
    hwm_kb: u64,
    fds: usize,
}

impl Resources {
    /// Now, for `pid`.
    pub fn now(pid: u32) -> Resources {
        use moat_serve::process::{descriptors, status_kb};
        Resources {
            rss_kb: status_kb(pid, "VmRSS"),
            hwm_kb: status_kb(pid, "VmHWM"),
            fds: descriptors(pid),
        }
    }
}

impl std::fmt::Display for Resources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "RSS {} kB (high-water mark {} kB), {} descriptors",
            self.rss_kb, self.hwm_kb, self.fds
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_own_cpu_time() {
        let d: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&d, 0.5), Duration::from_millis(51));
        assert_eq!(percentile(&d, 0.99), Duration::from_millis(99));
        assert_eq!(percentile(&[], 0.5), Duration::ZERO);
        assert!(process_ticks("self").is_some());
        assert!(machine_ticks().is_some_and(|(busy, total)| busy <= total && total > 0));
    }
}
