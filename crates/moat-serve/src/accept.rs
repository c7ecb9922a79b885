//! An accept loop that keeps serving at the connection cap and out of descriptors.

use crate::connections::{Conn, Connections};
use crate::nofile;
use std::ffi::CStr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The longest pause between two accepts while descriptors are out and no connection can
/// be shed (all busy): new clients wait in the listen queue meanwhile, nothing spins.
const MAX_BACKOFF: Duration = Duration::from_millis(200);

/// How long a refused client is given to finish sending its request before the
/// connection is closed (closing with unread data would reset it, and the client could
/// lose the refusal it has not read yet).
const REFUSAL_DRAIN: Duration = Duration::from_millis(200);

/// Accepts connections for one listener of a server; see the crate documentation.
pub struct Acceptor {
    listener: TcpListener,
    conns: Arc<Connections>,
    reserve: Arc<Mutex<Option<OwnedFd>>>,
    refusal: Arc<[u8]>,
}

impl Acceptor {
    /// Accepts on `listener`, registering connections in `conns`. `refusal` is written to
    /// a client that cannot be served (no room and nothing idle to shed) before its
    /// connection is closed: a complete HTTP/1.1 response for a plain HTTP server, empty
    /// for a TLS one (which just closes).
    pub fn new(listener: TcpListener, conns: Arc<Connections>, refusal: Vec<u8>) -> Acceptor {
        Acceptor {
            listener,
            conns,
            reserve: Arc::new(Mutex::new(open_reserve())),
            refusal: refusal.into(),
        }
    }

    /// The listener's address.
    pub fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.listener.local_addr()
    }

    /// The next connection to serve. Never fails: errors that concern one client are
    /// skipped, and a shortage of descriptors is dealt with here (see the crate
    /// documentation). Cancel-safe.
    pub async fn accept(&mut self) -> (TcpStream, Conn) {
        let mut backoff = Duration::from_millis(5);
        loop {
            let recheck = self.conns.end_if_calm(|| has_queued(&self.listener));
            let accepted = tokio::select! {
                r = self.listener.accept() => r,
                () = sleep_until(recheck), if recheck.is_some() => continue,
            };
            match accepted {
                Ok((stream, _)) => {
                    let max = self.conns.max();
                    let open = self.conns.count();
                    if open >= max {
                        self.conns
                            .pressure(&format!("connection limit reached ({max} connections)"));
                        // Idle connections go to make room for this one (more than one when
                        // the cap was just lowered); none idle and none going: no room.
                        let over = open + 1 - max;
                        if self.conns.shed_idle(over) == 0 && self.conns.closing() == 0 {
                            self.conns.refused();
                            self.refuse(stream, false);
                            continue;
                        }
                        // Its task closes it when next polled: wait for that, so that the
                        // cap holds (and the descriptors it keeps free stay free).
                        for _ in 0..4 {
                            if self.conns.count() < max {
                                break;
                            }
                            self.conns.closed_within(Duration::from_millis(25)).await;
                        }
                    }
                    return (stream, self.conns.open());
                }
                Err(e) if is_shortage(&e) => {
                    self.conns.pressure(&format!(
                        "out of file descriptors (accept: {e}; limit {})",
                        nofile::soft()
                    ));
                    self.conns.lower_cap();
                    if self.conns.shed_idle(self.conns.batch()) > 0 {
                        // Their tasks close them as soon as they are polled.
                        self.conns.closed_within(Duration::from_millis(50)).await;
                        continue;
                    }
                    // Every connection is busy: answer the client at once with the
                    // descriptor kept for this, rather than leave it waiting.
                    let reserve = self.take_reserve();
                    if let Some(fd) = reserve {
                        drop(fd);
                        match tokio::time::timeout(
                            Duration::from_millis(10),
                            self.listener.accept(),
                        )
                        .await
                        {
                            Ok(Ok((stream, _))) => {
                                self.conns.refused();
                                self.refuse(stream, true);
                                continue;
                            }
                            _ => self.restore_reserve(),
                        }
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
                // A client that went away before it was accepted, and the like.
                Err(_) => {}
            }
        }
    }

    fn take_reserve(&self) -> Option<OwnedFd> {
        self.reserve
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }

    fn restore_reserve(&self) {
        let mut r = self.reserve.lock().unwrap_or_else(|p| p.into_inner());
        if r.is_none() {
            *r = open_reserve();
        }
    }

    /// Answers `stream` with the refusal and closes it, in the background; with
    /// `restore`, it used the reserve descriptor, which is reopened once it is closed.
    fn refuse(&self, mut stream: TcpStream, restore: bool) {
        let refusal = Arc::clone(&self.refusal);
        let reserve = Arc::clone(&self.reserve);
        tokio::spawn(async move {
            if !refusal.is_empty() {
                let drain = async {
                    stream.write_all(&refusal).await?;
                    stream.shutdown().await?;
                    let mut buf = [0u8; 4096];
                    while stream.read(&mut buf).await? > 0 {}
                    Ok::<_, std::io::Error>(())
                };
                let _ = tokio::time::timeout(REFUSAL_DRAIN, drain).await;
            }
            drop(stream);
            if restore {
                let mut r = reserve.lock().unwrap_or_else(|p| p.into_inner());
                if r.is_none() {
                    *r = open_reserve();
                }
            }
        });
    }
}

async fn sleep_until(at: Option<std::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// Whether a client waits in `listener`'s queue (a zero-timeout poll: asked only when an
/// episode of pressure is about to end).
fn has_queued(listener: &TcpListener) -> bool {
    let mut pfd = libc::pollfd {
        fd: listener.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, zero timeout; the listener outlives the call.
    let n = unsafe { libc::poll(&mut pfd, 1, 0) };
    n > 0 && pfd.revents & libc::POLLIN != 0
}

/// Whether an accept error means the process or system ran out of something (descriptors,
/// buffers) rather than a problem with one client.
fn is_shortage(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// A descriptor held in reserve: closed to accept one client when none is left, so that
/// client gets an answer instead of waiting in the listen queue.
fn open_reserve() -> Option<OwnedFd> {
    const DEV_NULL: &CStr = c"/dev/null";
    // SAFETY: open with a NUL-terminated path.
    let fd = unsafe { libc::open(DEV_NULL.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    // SAFETY: a new descriptor owned by nobody else.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connections::Settings;

    fn settings(max: usize, log: Arc<Mutex<Vec<String>>>) -> Settings {
        Settings {
            max_connections: max,
            log: Box::new(move |l| log.lock().unwrap().push(l.to_string())),
            on_calm: None,
        }
    }

    #[tokio::test]
    async fn at_the_cap_the_longest_idle_is_shed_and_with_none_idle_the_client_is_refused() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let conns = Connections::new(settings(2, Arc::clone(&log)));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut acceptor = Acceptor::new(listener, Arc::clone(&conns), b"NO\n".to_vec());
        let _c1 = TcpStream::connect(addr).await.unwrap();
        let (_s1, first) = acceptor.accept().await;
        let _c2 = TcpStream::connect(addr).await.unwrap();
        let (_s2, second) = acceptor.accept().await;
        let _busy = second.request();
        // A third: the first (idle) is told to go.
        let _c3 = TcpStream::connect(addr).await.unwrap();
        let (_s3, third) = acceptor.accept().await;
        tokio::time::timeout(Duration::from_secs(1), first.shed())
            .await
            .unwrap();
        drop(first);
        let _busy3 = third.request();
        // A fourth while both are busy: refused with the answer, then closed.
        let mut c4 = TcpStream::connect(addr).await.unwrap();
        let accepting = tokio::spawn(async move {
            let _ = acceptor.accept().await;
        });
        let mut answer = Vec::new();
        tokio::time::timeout(Duration::from_secs(2), c4.read_to_end(&mut answer))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(answer, b"NO\n");
        accepting.abort();
        let log = log.lock().unwrap();
        assert_eq!(log.len(), 1, "{log:?}");
        assert!(log[0].starts_with("connection limit reached"), "{log:?}");
    }
}
