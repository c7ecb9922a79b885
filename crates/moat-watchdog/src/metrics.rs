//! Prometheus metrics, served on `metrics_port` (8081) at `/metrics`.
//!
//! The classic watchdog's three families, with its names, help texts, labels and buckets:
//! `http_requests_total{code,method}`, `http_request_duration_seconds{code,method}` (a
//! histogram with the Go client's default buckets) and `http_requests_in_flight`, counting
//! the function's requests (not `/_/health`). Then moat's own: calls refused because their
//! sandbox could not be applied, leftover processes killed, orphans reaped.
//!
//! The exposition is written by hand in the Prometheus text format 0.0.4, which the classic
//! watchdog serves: the `prometheus-client` crate writes only OpenMetrics text, and three
//! fixed families with two small label sets need no registry. Method labels are lower case
//! for HTTP's methods and `other` for the rest, so a client cannot grow the label set.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// The Go client's default histogram buckets, in seconds.
pub const BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The Content-Type of the exposition.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Debug, Default, Clone)]
struct Series {
    count: u64,
    sum: f64,
    buckets: [u64; BUCKETS.len()],
}

/// The watchdog's metrics.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(u16, &'static str), Series>>,
    in_flight: AtomicI64,
    /// Calls refused because their sandbox could not be applied.
    pub sandbox_refusals: AtomicU64,
    /// Calls that ran with part of their sandbox missing (best effort).
    pub sandbox_degraded: AtomicU64,
}

impl Metrics {
    /// Counts a request in flight, until [`Metrics::leave`].
    pub fn enter(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    /// A request is no longer in flight.
    pub fn leave(&self) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }

    /// Records a finished request.
    pub fn observe(&self, code: u16, method: &'static str, took: Duration) {
        let secs = took.as_secs_f64();
        let mut map = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        let s = map.entry((code, method)).or_default();
        s.count += 1;
        s.sum += secs;
        for (i, le) in BUCKETS.iter().enumerate() {
            if secs <= *le {
                s.buckets[i] += 1;
            }
        }
    }

    /// The exposition text, with the classic families, then `counters` (`(name, help,
    /// value)`, moat's own) and the spawn summary `spawn` (count, total nanoseconds).
    pub fn render(&self, counters: &[(&str, &str, u64)], spawn: (u64, u64)) -> String {
        let map = self
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let mut out = String::with_capacity(1024 + map.len() * 1024);
        // Writing to a String cannot fail.
        let _ = writeln!(
            out,
            "# HELP http_request_duration_seconds Seconds spent serving HTTP requests.\n\
             # TYPE http_request_duration_seconds histogram"
        );
        for ((code, method), s) in &map {
            for (le, n) in BUCKETS.iter().zip(s.buckets) {
                let _ = writeln!(
                    out,
                    "http_request_duration_seconds_bucket{{code=\"{code}\",method=\"{method}\",le=\"{le}\"}} {n}"
                );
            }
            let _ = writeln!(
                out,
                "http_request_duration_seconds_bucket{{code=\"{code}\",method=\"{method}\",le=\"+Inf\"}} {}\n\
                 http_request_duration_seconds_sum{{code=\"{code}\",method=\"{method}\"}} {}\n\
                 http_request_duration_seconds_count{{code=\"{code}\",method=\"{method}\"}} {}",
                s.count, s.sum, s.count
            );
        }
        let _ = writeln!(
            out,
            "# HELP http_requests_in_flight total HTTP requests in-flight\n\
             # TYPE http_requests_in_flight gauge\n\
             http_requests_in_flight {}",
            self.in_flight.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP http_requests_total total HTTP requests processed\n\
             # TYPE http_requests_total counter"
        );
        for ((code, method), s) in &map {
            let _ = writeln!(
                out,
                "http_requests_total{{code=\"{code}\",method=\"{method}\"}} {}",
                s.count
            );
        }
        for (name, help, value) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP moat_watchdog_spawn_seconds time to start a call's process, from clone to exec\n\
             # TYPE moat_watchdog_spawn_seconds summary\n\
             moat_watchdog_spawn_seconds_sum {}\n\
             moat_watchdog_spawn_seconds_count {}",
            spawn.1 as f64 / 1e9,
            spawn.0
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_classic_families() {
        let m = Metrics::default();
        m.enter();
        m.observe(200, "post", Duration::from_millis(7));
        m.observe(200, "post", Duration::from_millis(30));
        m.observe(500, "get", Duration::from_secs(20));
        let text = m.render(&[("x_total", "x", 3)], (2, 500_000));
        assert!(text.contains("http_requests_total{code=\"200\",method=\"post\"} 2\n"));
        assert!(text.contains("http_requests_total{code=\"500\",method=\"get\"} 1\n"));
        assert!(text.contains(
            "http_request_duration_seconds_bucket{code=\"200\",method=\"post\",le=\"0.01\"} 1\n"
        ));
        assert!(text.contains(
            "http_request_duration_seconds_bucket{code=\"200\",method=\"post\",le=\"0.05\"} 2\n"
        ));
        assert!(text.contains(
            "http_request_duration_seconds_bucket{code=\"500\",method=\"get\",le=\"+Inf\"} 1\n"
        ));
        assert!(text.contains("http_requests_in_flight 1\n"));
        assert!(text.contains("# TYPE x_total counter\nx_total 3\n"));
        assert!(text.contains("moat_watchdog_spawn_seconds_sum 0.0005\n"));
        assert!(text.contains("moat_watchdog_spawn_seconds_count 2\n"));
        m.leave();
        assert!(m
            .render(&[], (0, 0))
            .contains("http_requests_in_flight 0\n"));
    }
}
