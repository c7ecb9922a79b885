#!/usr/bin/env python3
"""What moat's cgroup-bpf counters cost a container's network throughput.

iperf3 server and client both run inside one container on the host network (loopback),
so every segment passes the container's egress hook once and its ingress hook once (the
worst case: a container talking to itself). Variants, in interleaved rounds (one run of
each per round, shuffled order) so machine noise hits both alike:

  runc                        runc alone, no programs on the container's cgroup
  moat-runtime, observe       moat-runtime in front of runc with moat.dev/observe: "true":
                              the cgroup_skb counting programs on the container's cgroup

With --floor, no container: iperf3's server and client run in a bare cgroup v2 directory
(server on CPU 1, client on CPU 0), which gets, per variant:

  no programs                 nothing attached
  empty programs              a cgroup_skb program on ingress and egress that only lets
                              the packet through: what the kernel's hooks cost by themselves
  moat's counters             moat's counting programs (maps of the node's shapes, the
                              cgroup registered as a container's)

so that moat's own share (counters against empty programs) is told apart from the
kernel's (empty programs against none). Needs the attach_programs example
(cargo build --release -p moat-cgroup --example attach_programs).

Modes: TCP (iperf3 defaults: 128 KiB writes, segments up to the loopback MTU) and, with
--udp, UDP datagrams of 1400 bytes at full speed (-b 0), where the per-packet cost shows
most. Reported: median throughput per variant and the median of the per-round ratio.

The rootfs is busybox-static plus iperf3 and the libraries it links (found with ldd).
Needs root, runc, busybox-static and iperf3 (apt-get install iperf3), and moat-runtime
and moat built (cargo build --release -p moat -p moat-runtime).

usage: bench/cgroup_bpf.py [--runs N] [--seconds S] [--udp] [--moat-runtime PATH]
                           [--moat PATH] [--floor [--attach-programs PATH]] [--markdown]
"""
import argparse
import json
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time


def make_bundle(base, port, seconds, udp):
    rootfs = os.path.join(base, "rootfs")
    for d in ("bin", "tmp", "proc", "dev", "sys"):
        os.makedirs(os.path.join(rootfs, d), exist_ok=True)
    shutil.copy("/bin/busybox", os.path.join(rootfs, "bin/busybox"))
    for link in ("sh", "sleep"):
        os.symlink("busybox", os.path.join(rootfs, "bin", link))
    iperf = shutil.which("iperf3")
    libs = re.findall(r"(/\S+) \(0x", subprocess.run(
        ["ldd", iperf], capture_output=True, text=True, check=True).stdout)
    for path in [iperf] + libs:
        dst = os.path.join(rootfs, path.lstrip("/"))
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copy(path, dst)
    subprocess.run(["runc", "spec"], cwd=base, check=True)
    with open(os.path.join(base, "config.json")) as f:
        cfg = json.load(f)
    cfg["process"]["terminal"] = False
    cfg["root"]["readonly"] = False
    cfg["linux"]["namespaces"] = [n for n in cfg["linux"]["namespaces"]
                                  if n["type"] != "network"]
    client = f"iperf3 -c 127.0.0.1 -p {port} -t {seconds} -J"
    if udp:
        client += " -u -b 0 -l 1400"
    cfg["process"]["args"] = [
        "/bin/sh", "-c",
        f"{iperf} -s -1 -p {port} >/dev/null 2>&1 & sleep 0.5; exec /{iperf.lstrip('/')}"
        + client[len("iperf3"):]]
    return cfg


def throughput(out, udp):
    end = json.loads(out)["end"]
    if udp:
        s = end["sum"]
        return s["bits_per_second"] * (1 - s.get("lost_percent", 0) / 100)
    return end["sum_received"]["bits_per_second"]


def cgroup2_mount():
    for line in open("/proc/self/mounts"):
        dev, mnt, fstype = line.split()[:3]
        if fstype == "cgroup2":
            return mnt
    sys.exit("no cgroup2 mount")


def floor_round(cgroup, mode, attach, seconds, udp):
    """One iperf3 run in a fresh cgroup with `mode`'s programs; bits per second."""
    os.mkdir(cgroup)
    try:
        if mode != "none":
            subprocess.run([attach, cgroup, mode], check=True)

        def enter():
            with open(os.path.join(cgroup, "cgroup.procs"), "w") as f:
                f.write(str(os.getpid()))
        port = free_port()
        server = subprocess.Popen(["iperf3", "-A", "1", "-s", "-1", "-p", str(port)],
                                  stdout=subprocess.DEVNULL, preexec_fn=enter)
        time.sleep(0.3)
        client = ["iperf3", "-A", "0", "-c", "127.0.0.1", "-p", str(port), "-t",
                  str(seconds), "-J"] + (["-u", "-b", "0", "-l", "1400"] if udp else [])
        out = subprocess.run(client, capture_output=True, text=True, preexec_fn=enter)
        server.wait()
        if out.returncode != 0:
            sys.exit(f"iperf3: {out.stderr}{out.stdout[-2000:]}")
        return throughput(out.stdout, udp)
    finally:
        os.rmdir(cgroup)


def floor(args):
    variants = [("no programs", "none"), ("empty programs", "empty"),
                ("moat's counters", "counter")]
    base = os.path.join(cgroup2_mount(), f"moat-bench-floor-{os.getpid()}")
    results = {v[0]: [] for v in variants}
    for i in range(args.runs + 1):
        order = variants[:]
        random.shuffle(order)
        for name, mode in order:
            t = floor_round(f"{base}-{mode}", mode, args.attach_programs, args.seconds,
                            args.udp)
            if i >= 1:
                results[name].append(t)
    return results


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--seconds", type=int, default=3)
    ap.add_argument("--udp", action="store_true")
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--moat-runtime", default=os.path.join(
        here, "..", "target/x86_64-unknown-linux-gnu/release/moat-runtime"))
    ap.add_argument("--moat", default=os.path.join(
        here, "..", "target/x86_64-unknown-linux-gnu/release/moat"))
    ap.add_argument("--floor", action="store_true",
                    help="bare cgroup: no programs, empty programs, moat's counters")
    ap.add_argument("--attach-programs", default=os.path.join(
        here, "..", "target/x86_64-unknown-linux-gnu/release/examples/attach_programs"))
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()
    if args.floor:
        if os.geteuid() != 0 or not shutil.which("iperf3"):
            sys.exit("needs root and iperf3")
        report(args, floor(args), "no programs")
        return
    if os.geteuid() != 0 or not shutil.which("runc") or not shutil.which("iperf3") \
            or not os.path.exists("/bin/busybox"):
        sys.exit("needs root, runc, iperf3 and busybox-static")

    tmp = tempfile.mkdtemp(prefix="moat-bench-bpf-")
    bindir = os.path.join(tmp, "bin")
    os.makedirs(bindir)
    for name, src in (("moat-runtime", args.moat_runtime), ("moat", args.moat)):
        dst = os.path.join(bindir, name)
        shutil.copyfile(os.path.abspath(src), dst)
        os.chmod(dst, 0o755)
    mr = os.path.join(bindir, "moat-runtime")
    root = os.path.join(tmp, "state")
    variants = []
    for name, runtime in (("runc", "runc"), ("moat-runtime, observe", mr)):
        bundle = os.path.join(tmp, name.replace(" ", "").replace(",", "-"))
        os.makedirs(bundle)
        variants.append((name, runtime, bundle))
    results = {v[0]: [] for v in variants}
    try:
        for i in range(args.runs + 1):
            order = variants[:]
            random.shuffle(order)
            for name, runtime, bundle in order:
                cfg = make_bundle(bundle, free_port(), args.seconds, args.udp) \
                    if i == 0 else json.load(open(os.path.join(bundle, "config.json.base")))
                if i == 0:
                    with open(os.path.join(bundle, "config.json.base"), "w") as f:
                        json.dump(cfg, f)
                if runtime == mr:
                    cfg.setdefault("annotations", {})["moat.dev/observe"] = "true"
                with open(os.path.join(bundle, "config.json"), "w") as f:
                    json.dump(cfg, f)
                cid = f"bench-bpf-{os.getpid()}-{i}-{len(name)}"
                out = subprocess.run([runtime, "--root", root, "run", "--bundle", bundle, cid],
                                     stdin=subprocess.DEVNULL, capture_output=True, text=True)
                # `run` leaves moat's pins (moat-runtime's `delete` or the exporter removes
                # them): remove them here.
                shutil.rmtree(f"/sys/fs/bpf/moat/{cid}", ignore_errors=True)
                if out.returncode != 0:
                    sys.exit(f"{name}: {out.stderr}{out.stdout[-2000:]}")
                if i >= 1:  # the first round warms up
                    results[name].append(throughput(out.stdout, args.udp))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    report(args, results, "runc")


def report(args, results, reference):
    base = results[reference]
    mode = "UDP 1400 B" if args.udp else "TCP"
    rows = []
    for name in results:
        ratio = statistics.median(t / b for t, b in zip(results[name], base))
        rows.append((name, statistics.median(results[name]), min(results[name]),
                     max(results[name]), ratio))
    if args.markdown:
        print(f"| {mode}, {args.runs} runs of {args.seconds} s | median | min | max "
              f"| vs {reference} (median of per-round ratios) |")
        print("|---|---|---|---|---|")
        for n, med, lo, hi, r in rows:
            print(f"| {n} | {med/1e9:.2f} Gbit/s | {lo/1e9:.2f} | {hi/1e9:.2f} "
                  f"| {(r - 1) * 100:+.1f}% |")
    else:
        for n, med, lo, hi, r in rows:
            print(f"{mode} {n:24} median {med/1e9:6.2f} Gbit/s  min {lo/1e9:6.2f}  "
                  f"max {hi/1e9:6.2f}  vs {reference} {(r - 1) * 100:+.1f}%")


if __name__ == "__main__":
    main()
