//! Every open connection, busy or idle, and shedding the idle ones under pressure.
//!
//! A connection is *busy* while at least one request on it is being served (from the moment
//! its head is read until the last byte of its response is written: see [`Request`] and
//! [`crate::Tracked`]) and *idle* otherwise: waiting for the next request of a keep-alive
//! connection, sending its head slowly, or, for TLS, still in its handshake. Idle
//! connections cost a descriptor and memory and give nothing back, so under pressure they
//! go first, longest idle first: the slowloris client that has sent half a header for
//! thirty seconds before the client that finished a request a moment ago.
//!
//! Pressure comes in *episodes*: from the first time the cap is reached or a descriptor
//! cannot be had, until none of that has happened for [`CALM`] and there is room again
//! (connections and descriptors both under nine tenths of their limits). An episode is
//! logged once when it starts and once when it is over, with what was done meanwhile,
//! however many connections it touched.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// How long without pressure ends an episode.
pub const CALM: Duration = Duration::from_secs(1);

/// How soon an episode that would have ended but for clients in the listen queue is
/// looked at again (they are being accepted meanwhile).
const QUEUE_RECHECK: Duration = Duration::from_millis(50);

/// Descriptors kept free, at least, when the cap is lowered for want of them.
const HEADROOM: usize = 16;

/// Fewer open connections than this never trigger [`Settings::on_calm`] by themselves.
const TRIM_FLOOR: usize = 256;

/// How a server's connections are limited and reported.
pub struct Settings {
    /// At most this many connections are open at once; a new one beyond sheds the longest
    /// idle one, or is refused when none is idle.
    pub max_connections: usize,
    /// Writes one log line (the server adds its own prefix or level).
    pub log: Box<dyn Fn(&str) + Send + Sync>,
    /// Called when many connections have closed (at the end of an episode, or when the
    /// number open falls to a quarter of its peak): the place to give freed memory back to
    /// the system, which an allocator may otherwise keep.
    pub on_calm: Option<Box<dyn Fn() + Send + Sync>>,
}

/// Every open connection of a server (or of several listeners sharing one process's
/// descriptors); see the module documentation.
pub struct Connections {
    settings: Settings,
    state: Mutex<State>,
    closed: Notify,
    shed_total: AtomicU64,
    refused_total: AtomicU64,
    /// The cap while lowered, `usize::MAX` otherwise.
    lowered: AtomicUsize,
}

#[derive(Default)]
struct State {
    next: u64,
    open: HashMap<u64, Entry>,
    episode: Option<Episode>,
    /// The most connections open at once since `on_calm` last ran.
    high_water: usize,
}

struct Entry {
    busy: u32,
    idle_since: Instant,
    shed: Arc<Notify>,
    shedding: bool,
}

struct Episode {
    started: Instant,
    last: Instant,
    shed: u64,
    refused: u64,
    peak: usize,
}

impl Connections {
    /// An empty set of connections.
    pub fn new(settings: Settings) -> Arc<Connections> {
        Arc::new(Connections {
            settings,
            state: Mutex::new(State::default()),
            closed: Notify::new(),
            shed_total: AtomicU64::new(0),
            refused_total: AtomicU64::new(0),
            lowered: AtomicUsize::new(usize::MAX),
        })
    }

    /// Idle connections shed since the start.
    pub fn shed_total(&self) -> u64 {
        self.shed_total.load(Ordering::Relaxed)
    }

    /// Clients refused since the start.
    pub fn refused_total(&self) -> u64 {
        self.refused_total.load(Ordering::Relaxed)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The cap: `max_connections`, or lower while descriptors are short (see
    /// `Connections::lower_cap`).
    pub fn max(&self) -> usize {
        self.settings
            .max_connections
            .min(self.lowered.load(Ordering::Relaxed))
    }

    /// Descriptors ran out with fewer connections open than the cap allows (other work
    /// holds descriptors too: calls' pipes, another process of the user): until the episode
    /// is over, the cap is what is open now less some room, so that accepting new
    /// connections does not take back the descriptors that shedding frees for that work.
    pub(crate) fn lower_cap(&self) {
        let open = self.count();
        // Only when short with no more connections than the cap allows: above it, the
        // connections being shed are what will free descriptors.
        if open >= self.max() {
            return;
        }
        let room = (open / 8).max(HEADROOM);
        self.lowered
            .fetch_min(open.saturating_sub(room).max(1), Ordering::Relaxed);
    }

    /// How many connections are open.
    pub fn count(&self) -> usize {
        self.state().open.len()
    }

    /// How many connections are idle.
    pub fn idle(&self) -> usize {
        self.state().open.values().filter(|e| e.busy == 0).count()
    }

    /// How many connections were told to close and have not yet.
    pub fn closing(&self) -> usize {
        self.state().open.values().filter(|e| e.shedding).count()
    }

    /// Whether an episode of pressure is going on.
    pub fn under_pressure(&self) -> bool {
        self.state().episode.is_some()
    }

    /// Registers a new connection (idle until its first request).
    pub fn open(self: &Arc<Self>) -> Conn {
        let shed = Arc::new(Notify::new());
        let mut s = self.state();
        let id = s.next;
        s.next += 1;
        s.open.insert(
            id,
            Entry {
                busy: 0,
                idle_since: Instant::now(),
                shed: Arc::clone(&shed),
                shedding: false,
            },
        );
        let n = s.open.len();
        s.high_water = s.high_water.max(n);
        if let Some(e) = &mut s.episode {
            e.peak = e.peak.max(n);
        }
        Conn {
            id,
            shed,
            conns: Arc::clone(self),
        }
    }

    /// Someone outside the accept loop could not get a descriptor (a call's pipes, say):
    /// counts as pressure and sheds a batch of idle connections. Returns how many.
    pub fn relieve(&self, why: &str) -> usize {
        self.pressure(why);
        self.lower_cap();
        let n = self.batch();
        self.shed_idle(n)
    }

    /// Waits until a connection closes, or `within` passes.
    pub async fn closed_within(&self, within: Duration) {
        let _ = tokio::time::timeout(within, self.closed.notified()).await;
    }

    /// How many idle connections to shed at once when descriptors run out: enough that the
    /// next few accepts and calls find one, few enough that a momentary shortage does not
    /// empty the server.
    pub(crate) fn batch(&self) -> usize {
        (self.idle() / 16).max(4)
    }

    /// Tells the `n` longest idle connections to close. Returns how many were told.
    pub(crate) fn shed_idle(&self, n: usize) -> usize {
        let mut s = self.state();
        let mut idle: Vec<(Instant, u64)> = s
            .open
            .iter()
            .filter(|(_, e)| e.busy == 0 && !e.shedding)
            .map(|(id, e)| (e.idle_since, *id))
            .collect();
        let n = n.min(idle.len());
        if n == 0 {
            return 0;
        }
        if n < idle.len() {
            idle.select_nth_unstable(n - 1);
        }
        for (_, id) in &idle[..n] {
            if let Some(e) = s.open.get_mut(id) {
                e.shedding = true;
                e.shed.notify_one();
            }
        }
        if let Some(e) = &mut s.episode {
            e.shed += n as u64;
        }
        self.shed_total.fetch_add(n as u64, Ordering::Relaxed);
        n
    }

    /// Records pressure: starts an episode (one log line) unless one is going on.
    pub(crate) fn pressure(&self, why: &str) {
        let mut s = self.state();
        let now = Instant::now();
        let n = s.open.len();
        match &mut s.episode {
            Some(e) => e.last = now,
            None => {
                s.episode = Some(Episode {
                    started: now,
                    last: now,
                    shed: 0,
                    refused: 0,
                    peak: n,
                });
                let idle = s.open.values().filter(|e| e.busy == 0).count();
                drop(s);
                (self.settings.log)(&format!(
                    "{why}: shedding idle connections, longest idle first, and refusing new \
                     ones when none is idle ({n} open, {idle} idle, at most {}); one line \
                     follows when this is over",
                    self.settings.max_connections
                ));
            }
        }
    }

    /// Counts a client refused for want of room.
    pub(crate) fn refused(&self) {
        self.refused_total.fetch_add(1, Ordering::Relaxed);
        if let Some(e) = &mut self.state().episode {
            e.refused += 1;
        }
    }

    /// Ends the episode if it has been calm for [`CALM`], there is room again and no client
    /// waits in the listen queue (`queued`, asked only then: clients that queued up while
    /// descriptors were out belong to this episode, and accepting them may need shedding
    /// again, which must not be logged as a second one). One log line. Returns when to
    /// check again while it goes on.
    pub(crate) fn end_if_calm(&self, queued: impl FnOnce() -> bool) -> Option<Instant> {
        let mut s = self.state();
        let e = s.episode.as_ref()?;
        let calm_at = e.last + CALM;
        let now = Instant::now();
        if now < calm_at {
            return Some(calm_at);
        }
        let crowded = s.open.len() >= self.max() / 10 * 9;
        if crowded || crate::nofile::nearly_out() {
            return Some(now + CALM);
        }
        if queued() {
            return Some(now + QUEUE_RECHECK);
        }
        let e = s.episode.take()?;
        self.lowered.store(usize::MAX, Ordering::Relaxed);
        let open = s.open.len();
        s.high_water = open;
        drop(s);
        (self.settings.log)(&format!(
            "pressure over after {:.1} s: {} idle connections shed, {} clients refused, \
             at most {} connections open ({open} now)",
            e.last.duration_since(e.started).as_secs_f64(),
            e.shed,
            e.refused,
            e.peak,
        ));
        if let Some(f) = &self.settings.on_calm {
            f();
        }
        None
    }

    fn close(&self, id: u64) {
        let mut s = self.state();
        s.open.remove(&id);
        let n = s.open.len();
        let trim = s.episode.is_none() && s.high_water >= TRIM_FLOOR && n <= s.high_water / 4;
        if trim {
            s.high_water = n;
        }
        drop(s);
        self.closed.notify_waiters();
        if trim {
            if let Some(f) = &self.settings.on_calm {
                f();
            }
        }
    }

    fn begin(&self, id: u64) {
        if let Some(e) = self.state().open.get_mut(&id) {
            e.busy += 1;
        }
    }

    fn end(&self, id: u64) {
        if let Some(e) = self.state().open.get_mut(&id) {
            e.busy = e.busy.saturating_sub(1);
            e.idle_since = Instant::now();
        }
    }
}

/// One open connection. Dropping it unregisters it.
pub struct Conn {
    id: u64,
    shed: Arc<Notify>,
    conns: Arc<Connections>,
}

impl Conn {
    /// Completes when this connection is chosen to be shed: the server should then close
    /// it (drop its I/O). Only idle connections are chosen.
    pub async fn shed(&self) {
        self.shed.notified().await
    }

    /// Marks the connection busy until the returned guard is dropped.
    pub fn request(&self) -> Request {
        self.conns.begin(self.id);
        Request {
            id: self.id,
            conns: Arc::clone(&self.conns),
        }
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.conns.close(self.id);
    }
}

/// A request being served; its connection is idle again when this is dropped.
pub struct Request {
    id: u64,
    conns: Arc<Connections>,
}

impl Drop for Request {
    fn drop(&mut self) {
        self.conns.end(self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn conns(max: usize) -> (Arc<Connections>, Arc<Mutex<Vec<String>>>, Arc<AtomicUsize>) {
        let log = Arc::new(Mutex::new(Vec::new()));
        let calm = Arc::new(AtomicUsize::new(0));
        let (l, c) = (Arc::clone(&log), Arc::clone(&calm));
        let conns = Connections::new(Settings {
            max_connections: max,
            log: Box::new(move |line| l.lock().unwrap().push(line.to_string())),
            on_calm: Some(Box::new(move || {
                c.fetch_add(1, Ordering::SeqCst);
            })),
        });
        (conns, log, calm)
    }

    #[tokio::test]
    async fn the_longest_idle_go_first_and_busy_ones_never() {
        let (c, _, _) = conns(10);
        let a = c.open();
        std::thread::sleep(Duration::from_millis(2));
        let b = c.open();
        std::thread::sleep(Duration::from_millis(2));
        let busy = c.open();
        let _req = busy.request();
        assert_eq!((c.count(), c.idle()), (3, 2));
        assert_eq!(c.shed_idle(1), 1);
        // `a` was told, `b` not yet.
        tokio::time::timeout(Duration::from_secs(1), a.shed())
            .await
            .unwrap();
        assert!(tokio::time::timeout(Duration::from_millis(20), b.shed())
            .await
            .is_err());
        // Already told ones are not counted again; the busy one is never chosen.
        assert_eq!(c.shed_idle(5), 1);
        tokio::time::timeout(Duration::from_secs(1), b.shed())
            .await
            .unwrap();
        assert_eq!(c.shed_idle(5), 0);
        drop((a, b));
        assert_eq!(c.count(), 1);
    }

    #[test]
    fn an_episode_is_logged_once_at_each_end() {
        let (c, log, calm) = conns(10);
        for _ in 0..1000 {
            c.pressure("out of file descriptors");
            c.refused();
        }
        assert_eq!(log.lock().unwrap().len(), 1);
        assert!(c.end_if_calm(|| false).is_some());
        c.state().episode.as_mut().unwrap().last -= CALM;
        // Clients still queued from the episode keep it going.
        assert!(c.end_if_calm(|| true).is_some());
        assert_eq!(log.lock().unwrap().len(), 1);
        assert!(c.end_if_calm(|| false).is_none());
        let log = log.lock().unwrap();
        assert_eq!(log.len(), 2, "{log:?}");
        assert!(log[1].contains("1000 clients refused"), "{}", log[1]);
        assert_eq!(calm.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn short_of_descriptors_the_cap_comes_down_until_the_episode_ends() {
        let (c, _, _) = conns(1000);
        let open: Vec<Conn> = (0..200).map(|_| c.open()).collect();
        c.pressure("out of file descriptors");
        c.lower_cap();
        assert_eq!(c.max(), 200 - 25);
        // Above the lowered cap, shedding frees descriptors: no further lowering.
        c.lower_cap();
        assert_eq!(c.max(), 175);
        drop(open);
        c.state().episode.as_mut().unwrap().last -= CALM;
        assert!(c.end_if_calm(|| false).is_none());
        assert_eq!(c.max(), 1000);
    }

    #[test]
    fn many_closed_connections_trigger_on_calm() {
        let (c, _, calm) = conns(1000);
        let open: Vec<Conn> = (0..300).map(|_| c.open()).collect();
        drop(open);
        assert_eq!(calm.load(Ordering::SeqCst), 1);
        assert_eq!(c.count(), 0);
    }
}
