#!/usr/bin/env python3
"""Tracing overhead of `moat record`: each workload run plain and under `moat record`
(policy written to /dev/null), interleaved, medians of wall time.

usage: bench/record.py [--runs N] [--moat PATH] [--markdown]
"""
import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time


def workloads(tmp):
    git = shutil.which("git")
    w = [
        ("sh: 20 small files written and read back",
         ["/bin/sh", "-c", "for i in $(seq 20); do echo $i > f$i; cat f$i > /dev/null; done; rm f*"]),
        ("python3 -c 'import json, socket'", ["/usr/bin/python3", "-c", "import json, socket"]),
        ("find /usr/lib -name '*.so*' (stat-heavy, few opens)",
         ["/usr/bin/find", "/usr/lib", "-name", "*.so*"]),
        ("tar cf /dev/null /usr/share/doc (open-heavy)",
         ["/bin/tar", "cf", "/dev/null", "/usr/share/doc"]),
    ]
    if git:
        w.append(("git init + add + commit in a scratch repo",
                  ["/bin/sh", "-c", "rm -rf r && mkdir r && cd r && git init -q && echo x > f && "
                   "git add f && git -c user.name=a -c user.email=b@c commit -qm m"]))
    return w


def timed(argv, cwd):
    t0 = time.perf_counter()
    subprocess.run(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--moat", default="target/x86_64-unknown-linux-gnu/release/moat")
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="moat-record-bench-")
    moat = os.path.join(tmp, "moat")
    shutil.copyfile(args.moat, moat)
    os.chmod(moat, 0o755)
    rows = []
    for name, argv in workloads(tmp):
        plain, traced = [], []
        rec = [moat, "record", "-o", "/dev/null", "--"] + argv
        timed(argv, tmp)
        timed(rec, tmp)
        for _ in range(args.runs):
            plain.append(timed(argv, tmp))
            traced.append(timed(rec, tmp))
        p, t = statistics.median(plain) * 1000, statistics.median(traced) * 1000
        rows.append((name, p, t, t / p))
    if args.markdown:
        print("| workload | plain ms | under `moat record` ms | ratio |")
        print("|---|---:|---:|---:|")
        for r in rows:
            print(f"| {r[0]} | {r[1]:.1f} | {r[2]:.1f} | {r[3]:.2f}x |")
    else:
        for r in rows:
            print(f"{r[0]:55} plain {r[1]:8.1f} ms  recorded {r[2]:8.1f} ms  {r[3]:5.2f}x")
    print(f"\n{args.runs} interleaved runs each, medians.")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
