//! A hostile client for tests and benchmarks: it holds idle connections open against a
//! server, as a slowloris attacker or a crowd of forgotten keep-alive clients would, and
//! opens a new one for each that the server closes.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Idle connections held open by a thread until dropped.
pub struct Siege {
    stop: Arc<AtomicBool>,
    opened: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Siege {
    /// Holds `n` connections to `addr`; every other one sends `prefix` (half a request
    /// head, the first bytes of a TLS record) and nothing more.
    pub fn start(addr: SocketAddr, n: usize, prefix: &'static [u8]) -> Siege {
        let stop = Arc::new(AtomicBool::new(false));
        let opened = Arc::new(AtomicU64::new(0));
        let (s, o) = (Arc::clone(&stop), Arc::clone(&opened));
        let thread = std::thread::spawn(move || {
            let mut conns: Vec<TcpStream> = Vec::new();
            while !s.load(Ordering::Relaxed) {
                // Those the server closed read as end of file (or an error).
                conns.retain(|c| {
                    let mut b = [0u8; 1];
                    c.set_nonblocking(true).is_ok()
                        && matches!(c.peek(&mut b), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
                });
                while conns.len() < n && !s.load(Ordering::Relaxed) {
                    match TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
                        Ok(mut c) => {
                            if o.fetch_add(1, Ordering::Relaxed) % 2 == 0 {
                                let _ = c.write_all(prefix);
                            }
                            conns.push(c);
                        }
                        Err(_) => break,
                    }
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        Siege {
            stop,
            opened,
            thread: Some(thread),
        }
    }

    /// How many connections it has opened so far (those it holds, and those the server
    /// closed).
    pub fn opened(&self) -> u64 {
        self.opened.load(Ordering::Relaxed)
    }
}

impl Drop for Siege {
    /// Closes every connection.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
