//! When requests are sent: the load models.
//!
//! - **Closed loop**: every connection sends its next request as soon as the previous
//!   answer arrives, so exactly `concurrency` requests are always in flight. This measures
//!   capacity; latency is then queueing (Little's law: in flight / throughput).
//! - **Open loop at a fixed rate**: request `i` is due at `i / rate` seconds, whatever
//!   happened before, and goes out on the first free connection. Latency counts from the
//!   due time, so time spent waiting for a free connection (or behind a late pacer) is
//!   counted, not hidden (no coordinated omission).
//! - **Bursts**: `concurrency` requests are due at the same instant, every `every`; what a
//!   ReplicaSet scaling up sends. Latency counts from the burst's instant.

use std::time::{Duration, Instant};
use tokio::sync::mpsc::UnboundedSender;

/// How requests arrive.
#[derive(Clone, Copy, Debug)]
pub enum Arrivals {
    /// Each connection sends again as soon as it is answered.
    Closed,
    /// Open loop: this many requests per second, evenly spaced.
    Rate(f64),
    /// Open loop: all connections' requests at once, this often.
    Bursts(Duration),
}

impl Arrivals {
    /// When request `i` is due, after the start; `None` in a closed loop.
    pub fn due(self, i: usize, concurrency: usize) -> Option<Duration> {
        match self {
            Arrivals::Closed => None,
            Arrivals::Rate(rate) => Some(Duration::from_secs_f64(i as f64 / rate)),
            Arrivals::Bursts(every) => {
                let burst = u32::try_from(i / concurrency.max(1)).unwrap_or(u32::MAX);
                Some(every.saturating_mul(burst))
            }
        }
    }
}

/// Releases requests `0..total` at their due times into `tx`, each with the instant it was
/// due, stopping at `deadline`. Runs on its own thread: a tokio timer has millisecond
/// granularity, too coarse for 5,000 requests a second.
pub fn pace(
    arrivals: Arrivals,
    concurrency: usize,
    total: usize,
    start: Instant,
    deadline: Instant,
    tx: UnboundedSender<(usize, Instant)>,
) {
    // The default timer slack (50 µs) would make every sleep late by that much.
    // SAFETY: prctl on this thread only, with an integer argument.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong) };
    for i in 0..total {
        let Some(offset) = arrivals.due(i, concurrency) else {
            return;
        };
        let due = start + offset;
        if due > deadline {
            return;
        }
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        if tx.send((i, due)).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_times() {
        assert_eq!(Arrivals::Closed.due(5, 10), None);
        assert_eq!(
            Arrivals::Rate(1000.0).due(5, 10),
            Some(Duration::from_millis(5))
        );
        let b = Arrivals::Bursts(Duration::from_millis(20));
        assert_eq!(b.due(9, 10), Some(Duration::ZERO));
        assert_eq!(b.due(10, 10), Some(Duration::from_millis(20)));
    }
}
