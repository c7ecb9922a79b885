//! `moat exporter`: the containers' counters as Prometheus metrics on `/metrics`.
//!
//! Every scrape reads the pins afresh ([`crate::scan`], which also removes the pins of
//! containers that are gone) into a new registry: the kernel's maps hold the totals, so
//! the exporter keeps no state and a restart loses nothing.

use crate::pins::{self, Snapshot};
use crate::programs::Direction;
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Method, Request, Response, StatusCode};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

/// The content type of the text exposition prometheus-client writes (OpenMetrics), served
/// to scrapers that accept it.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The classic Prometheus text format, for everything else (promtool, curl, older
/// scrapers): see [`to_prometheus_text`].
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// OpenMetrics text as the classic Prometheus text format. The two differ, for these
/// metrics, in a counter's family name (OpenMetrics names the family `x` and its sample
/// `x_total`; the classic format names both `x_total`) and in the `# EOF` line.
pub fn to_prometheus_text(openmetrics: &str) -> String {
    let counters: Vec<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let meta = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|p| Some((p, line.strip_prefix(p)?)));
        match meta {
            Some((prefix, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                if counters.contains(&name) {
                    out.push_str(&format!("{prefix}{name}_total {tail}"));
                } else {
                    out.push_str(line);
                }
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

type Labels = Vec<(String, String)>;

fn container_labels(s: &Snapshot) -> Labels {
    let mut l = vec![("container_id".to_string(), s.info.container_id.clone())];
    for (k, v) in [
        ("namespace", &s.info.namespace),
        ("pod", &s.info.pod),
        ("container", &s.info.container),
    ] {
        if let Some(v) = v {
            l.push((k.to_string(), v.clone()));
        }
    }
    l
}

/// The metrics text for these snapshots.
pub fn render(snaps: &[Snapshot]) -> String {
    let mut reg = Registry::default();
    let family = || Family::<Labels, Counter>::default();
    let (rx_b, tx_b, rx_p, tx_p, denied) = (family(), family(), family(), family(), family());
    reg.register(
        "moat_network_receive_bytes",
        "Bytes of IP packets received by the container's sockets, per local port",
        rx_b.clone(),
    );
    reg.register(
        "moat_network_transmit_bytes",
        "Bytes of IP packets sent by the container's sockets, per local port",
        tx_b.clone(),
    );
    reg.register(
        "moat_network_receive_packets",
        "Packets received by the container's sockets, per local port",
        rx_p.clone(),
    );
    reg.register(
        "moat_network_transmit_packets",
        "Packets sent by the container's sockets, per local port",
        tx_p.clone(),
    );
    reg.register(
        "moat_denied",
        "Socket operations moat's cgroup-bpf hooks refused, per operation",
        denied.clone(),
    );
    for s in snaps {
        let base = container_labels(s);
        for (dir, port, count) in &s.traffic {
            let mut l = base.clone();
            l.push((
                "port".to_string(),
                port.map_or_else(|| "other".to_string(), |p| p.to_string()),
            ));
            let (b, p) = match dir {
                Direction::Receive => (&rx_b, &rx_p),
                Direction::Transmit => (&tx_b, &tx_p),
            };
            b.get_or_create(&l).inc_by(count.bytes);
            p.get_or_create(&l).inc_by(count.packets);
        }
        for (op, n) in &s.denied {
            let mut l = base.clone();
            l.push(("operation".to_string(), op.to_string()));
            denied.get_or_create(&l).inc_by(*n);
        }
    }
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = encode(&mut out, &reg);
    out
}

/// Where the exporter reads: moat's pin directory, and where the host's cgroup paths are
/// (under `host`).
#[derive(Clone, Debug)]
pub struct Sources {
    /// moat's directory in bpffs.
    pub pins: PathBuf,
    /// The host's root as the exporter sees it (`/` on the host itself).
    pub host: PathBuf,
    /// Possible CPUs (slots of a per-CPU value).
    pub cpus: crate::sys::PossibleCpus,
}

/// Reads the pins and renders them (OpenMetrics); unreadable containers are logged.
pub fn scrape(src: &Sources) -> String {
    let (snaps, errors) = pins::scan(&src.pins, &src.host, src.cpus);
    for e in errors {
        eprintln!("moat-exporter: {e}");
    }
    render(&snaps)
}

/// Parses `--listen`: `HOST:PORT`, `[V6]:PORT`, or `:PORT` for every address.
pub fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    let full = match text.strip_prefix(':') {
        Some(port) => format!("[::]:{port}"),
        None => text.to_string(),
    };
    full.parse()
        .map_err(|_| format!("--listen `{text}`: expected HOST:PORT, [IPV6]:PORT or :PORT"))
}

async fn answer(
    req: Request<hyper::body::Incoming>,
    src: Arc<Sources>,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    let reply = |status, ctype: &str, body: String| {
        let mut r = Response::new(Full::new(Bytes::from(body)));
        *r.status_mut() = status;
        if let Ok(v) = ctype.parse() {
            r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
        }
        Ok(r)
    };
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/metrics") => {
            let openmetrics = req
                .headers()
                .get_all(hyper::header::ACCEPT)
                .iter()
                .any(|v| {
                    v.to_str()
                        .is_ok_and(|v| v.contains("application/openmetrics-text"))
                });
            // Reading maps is blocking syscalls: off the async threads.
            let body = tokio::task::spawn_blocking(move || scrape(&src))
                .await
                .unwrap_or_default();
            if openmetrics {
                reply(StatusCode::OK, OPENMETRICS, body)
            } else {
                reply(StatusCode::OK, PROMETHEUS_TEXT, to_prometheus_text(&body))
            }
        }
        (_, "/metrics") => reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "GET only\n".into(),
        ),
        _ => reply(
            StatusCode::NOT_FOUND,
            "text/plain",
            "moat exporter: metrics are at /metrics\n".into(),
        ),
    }
}

/// Serves `/metrics` on `listen` until SIGTERM or SIGINT.
pub async fn serve(listen: SocketAddr, src: Sources) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    eprintln!(
        "moat-exporter: serving /metrics on {} from {}",
        listener.local_addr()?,
        src.pins.display()
    );
    let src = Arc::new(src);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        let (stream, _) = tokio::select! {
            r = listener.accept() => r?,
            _ = term.recv() => return Ok(()),
            _ = tokio::signal::ctrl_c() => return Ok(()),
        };
        let src = src.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| answer(req, src.clone()));
            let io = hyper_util::rt::TokioIo::new(stream);
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(std::time::Duration::from_secs(10))
                .serve_connection(io, svc);
            let _ = tokio::time::timeout(std::time::Duration::from_secs(60), conn).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pins::{Count, Info};

    #[test]
    fn classic_text_names_counter_families_with_total() {
        let om = "# HELP a_bytes Bytes.\n# TYPE a_bytes counter\na_bytes_total{x=\"1\"} 3\n# EOF\n";
        assert_eq!(
            to_prometheus_text(om),
            "# HELP a_bytes_total Bytes.\n# TYPE a_bytes_total counter\na_bytes_total{x=\"1\"} 3\n"
        );
    }

    #[test]
    fn listen_addresses() {
        assert_eq!(parse_listen(":9477").unwrap().port(), 9477);
        assert!(parse_listen("127.0.0.1:1").is_ok());
        assert!(parse_listen("[::1]:1").is_ok());
        assert!(parse_listen("9477").is_err());
        assert!(parse_listen(":99999").is_err());
    }

    #[test]
    fn renders_the_issue_names() {
        let s = Snapshot {
            info: Info {
                container_id: "c1".into(),
                cgroup: "/x".into(),
                cgroup_id: 7,
                namespace: Some("ns".into()),
                pod: Some("p".into()),
                container: Some("web".into()),
            },
            traffic: vec![
                (
                    Direction::Receive,
                    Some(443),
                    Count {
                        bytes: 10,
                        packets: 1,
                    },
                ),
                (
                    Direction::Transmit,
                    None,
                    Count {
                        bytes: 7,
                        packets: 2,
                    },
                ),
            ],
            denied: vec![("sendmsg4", 3)],
        };
        let t = render(&[s]);
        assert!(t.contains(
            "moat_network_receive_bytes_total{container_id=\"c1\",namespace=\"ns\",pod=\"p\",container=\"web\",port=\"443\"} 10"
        ), "{t}");
        assert!(t.contains("moat_network_transmit_packets_total{container_id=\"c1\",namespace=\"ns\",pod=\"p\",container=\"web\",port=\"other\"} 2"), "{t}");
        assert!(t.contains("moat_denied_total{container_id=\"c1\",namespace=\"ns\",pod=\"p\",container=\"web\",operation=\"sendmsg4\"} 3"), "{t}");
    }
}
