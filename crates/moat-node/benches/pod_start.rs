//! Pod start time through the CRI API, handler `moat` against `runc`, on the node the
//! end-to-end test builds (Debian's containerd 1.6.20, moat installed by moat-node, a CNI
//! bridge, busybox-static images): from RunPodSandbox to the container running
//! (CreateContainer and StartContainer returned), as the kubelet sees a pod start. The
//! `moat` pod carries the annotations moat's webhook writes for `containerPort: 80`, so
//! its container is confined; the `runc` pod is the same pod. Interleaved rounds (one
//! pod of each, order alternating), two warm-up rounds dropped; teardown is not timed.
//!
//! `sudo cargo bench -p moat-node --bench pod_start` (POD_START_ROUNDS, default 60).
//! Results: docs/PERFORMANCE.md.

#[path = "../tests/common/mod.rs"]
#[macro_use]
mod common;

use common::cri::{webhook_annotations, CriNode, Pod, PORTS};
use std::time::{Duration, Instant};

fn start_pod(
    node: &mut CriNode,
    handler: &str,
    n: usize,
    annotations: &std::collections::HashMap<String, String>,
) -> Duration {
    let pod = Pod::new(node, &format!("bench{n}{handler}"), annotations.clone());
    let t0 = Instant::now();
    let sandbox = node.run_pod(&pod, handler).expect("RunPodSandbox");
    let c = node
        .create(
            &pod,
            &sandbox,
            pod.container_config("web", &["httpd", "-f", "-p", "80", "-h", "/www"], PORTS),
        )
        .expect("CreateContainer");
    node.start(&c).expect("StartContainer");
    let took = t0.elapsed();
    node.remove_pod(&sandbox, &[&c]);
    took
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

fn main() {
    need_containerd!();
    let rounds: usize = std::env::var("POD_START_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    let mut node = CriNode::new();
    let annotations = webhook_annotations(&[]);
    let (mut moat, mut runc) = (Vec::new(), Vec::new());
    for i in 0..rounds + 2 {
        let order: [&str; 2] = if i % 2 == 0 {
            ["moat", "runc"]
        } else {
            ["runc", "moat"]
        };
        for handler in order {
            let t = start_pod(&mut node, handler, i, &annotations).as_secs_f64() * 1e3;
            if i >= 2 {
                if handler == "moat" {
                    moat.push(t)
                } else {
                    runc.push(t)
                }
            }
        }
    }
    let (m, r) = (median(&moat), median(&runc));
    let paired: Vec<f64> = moat.iter().zip(&runc).map(|(a, b)| a - b).collect();
    // 95% interval of the difference of medians, in % of runc's, from 2000 bootstrap
    // resamples of whole rounds (a deterministic generator: reruns agree).
    let mut state: u64 = 0x853c_49e6_748f_ea9b;
    let mut next = |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n as u64) as usize
    };
    let mut diffs: Vec<f64> = (0..2000)
        .map(|_| {
            let idx: Vec<usize> = (0..moat.len()).map(|_| next(moat.len())).collect();
            let mm = median(&idx.iter().map(|&i| moat[i]).collect::<Vec<_>>());
            let rr = median(&idx.iter().map(|&i| runc[i]).collect::<Vec<_>>());
            (mm - rr) / rr * 100.0
        })
        .collect();
    diffs.sort_by(f64::total_cmp);
    let pct = |v: &[f64], q: f64| {
        let mut s = v.to_vec();
        s.sort_by(f64::total_cmp);
        s[((s.len() as f64 - 1.0) * q) as usize]
    };
    println!(
        "pod start, RunPodSandbox to container started ({} pods per handler)",
        moat.len()
    );
    println!("| handler | median | p10 | p90 |");
    println!("|---|---:|---:|---:|");
    for (name, v) in [("runc", &runc), ("moat", &moat)] {
        println!(
            "| {name} | {:.1} ms | {:.1} ms | {:.1} ms |",
            median(v),
            pct(v, 0.1),
            pct(v, 0.9)
        );
    }
    println!(
        "moat - runc: {:+.2} ms ({:+.1}%), paired {:+.2} ms ({:+.1}%), 95% interval {:+.1}% .. {:+.1}%",
        m - r,
        (m - r) / r * 100.0,
        median(&paired),
        median(&paired) / r * 100.0,
        diffs[50],
        diffs[1949]
    );
}
