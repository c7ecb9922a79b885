//! Probes while an attacker exhausts the webhook's descriptors: `idle` TCP connections held
//! open (those the webhook closes are reopened), every other one having sent the first
//! bytes of a TLS record and nothing more (an unfinished handshake); every 200 ms a probe
//! opens a fresh TLS connection and asks `/healthz`. Reports how many probes were
//! answered and how long they took.

use crate::http::Connection;
use crate::stats::percentile;
use moat_serve::siege::Siege;
use std::net::SocketAddr;
use std::process::Child;
use std::time::{Duration, Instant};
use tokio_rustls::TlsConnector;

const PROBE: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: moat-webhook.moat-system.svc\r\n\r\n";

pub fn run(
    server: &Child,
    addr: SocketAddr,
    connector: &TlsConnector,
    idle: usize,
    seconds: u64,
) -> Result<(), String> {
    let siege = Siege::start(addr, idle, &[0x16, 0x03, 0x01, 0x02]);
    std::thread::sleep(Duration::from_secs(2));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("runtime: {e}"))?;
    let mut ms = Vec::new();
    let (mut sent, mut answered) = (0usize, 0usize);
    let end = Instant::now() + Duration::from_secs(seconds);
    while Instant::now() < end {
        let tick = Instant::now();
        sent += 1;
        let ok = runtime.block_on(async {
            let probe = async {
                let mut c = Connection::open(connector, addr).await?;
                c.exchange(PROBE).await
            };
            matches!(
                tokio::time::timeout(Duration::from_secs(30), probe).await,
                Ok(Ok((200, _)))
            )
        });
        if ok {
            answered += 1;
            ms.push(tick.elapsed());
        }
        if let Some(rest) = Duration::from_millis(200).checked_sub(tick.elapsed()) {
            std::thread::sleep(rest);
        }
    }
    let opened = siege.opened();
    drop(siege);
    ms.sort_unstable();
    let q = |p: f64| {
        if ms.is_empty() {
            f64::NAN
        } else {
            percentile(&ms, p).as_secs_f64() * 1e3
        }
    };
    println!("attack: {idle} idle connections held; {opened} opened in all");
    println!(
        "probes (fresh TLS connection + GET /healthz): {sent} sent, {answered} answered 200; latency p50 {:.2} ms, p90 {:.2} ms, max {:.2} ms",
        q(0.5),
        q(0.9),
        q(1.0)
    );
    std::thread::sleep(Duration::from_secs(3));
    println!(
        "webhook after the attack: {}",
        crate::stats::Resources::now(server.id())
    );
    Ok(())
}
