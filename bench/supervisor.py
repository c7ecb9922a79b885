#!/usr/bin/env python3
"""What moat's supervisor costs (docs/policy.md, 1.15).

Two measurements, each against the same work without the supervisor (the launch with a
supervisor is a variant of bench/launch.py, the container start one of bench/runtime.py
--supervised):

  calls     one listen() and one connect() (to a unix socket and to a TCP port on
            loopback), timed inside a Python process around the call alone, median of N:
            bare, under moat with Landlock alone deciding, under moat with the supervisor.
  http      REQUESTS loopback HTTP/1.0 requests, a new connection each, between a Python
            threading HTTP server and a Python client: the server started bare and under
            moat with its port allowed (its listen() supervised), the client bare, under
            moat with Landlock's TCP connect rule, and under moat with its connects
            supervised (a named unix socket in the policy). Both servers run at once;
            ROUNDS rounds run every pair once each, shuffled; requests per second of the
            median round.

Every sandboxed Python is Debian's /usr/bin/python3. Needs a kernel where the supervisor
runs (Linux 5.6) and Landlock ABI 4 to 8 (from ABI 9 Landlock decides unix connects itself
and the connect variants need no supervisor).

usage: bench/supervisor.py [--moat PATH] [--calls N] [--requests N] [--rounds N] [--markdown]
"""
import argparse
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

PY = "/usr/bin/python3"
FLAGS = ["--rox", "/usr,/lib,/lib64,/bin", "--ro", "/etc"]

CALLS = r"""
import os, socket, statistics, sys, time
op, n, arg = sys.argv[1], int(sys.argv[2]), sys.argv[3]
ts = []
for _ in range(n):
    if op == "listen":
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", int(arg)))
        t = time.perf_counter_ns(); s.listen(8); ts.append(time.perf_counter_ns() - t)
    elif op == "unix":
        s = socket.socket(socket.AF_UNIX)
        t = time.perf_counter_ns(); s.connect(arg); ts.append(time.perf_counter_ns() - t)
    else:
        s = socket.socket()
        t = time.perf_counter_ns(); s.connect(("127.0.0.1", int(arg)))
        ts.append(time.perf_counter_ns() - t)
    s.close()
print(statistics.median(ts))
"""

CLIENT = r"""
import socket, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
t = time.perf_counter()
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"GET / HTTP/1.0\r\n\r\n")
    while s.recv(65536):
        pass
    s.close()
print(n / (time.perf_counter() - t))
"""

SERVER = r"""
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.send_header("Content-Length", "3"); self.end_headers()
        self.wfile.write(b"ok\n")
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def calls(moat, n, sock, tcp_port):
    listen_port = free_port()
    rows = []
    for op, arg, plain, supervised in (
        ("listen", listen_port, None, ["--bind-tcp", str(listen_port)]),
        ("unix", sock, None, ["--unix", sock]),
        ("tcp", tcp_port, ["--connect-tcp", str(tcp_port)],
         ["--connect-tcp", str(tcp_port), "--unix", sock]),
    ):
        row = [op]
        for flags in (None, plain, supervised):
            if flags is None and len(row) > 1:
                row.append(None)  # no Landlock-only variant for this call
                continue
            cmd = [PY, "-c", CALLS, op, str(n), str(arg)]
            if flags is not None:
                cmd = [moat, "run", *FLAGS, *flags, "--", *cmd]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            row.append(float(out) / 1e3)
        rows.append(row)
    return rows


def http(moat, requests, rounds, sock):
    """Requests per second of each (server, client) pair: both servers run at once, and
    every round runs each pair once, in a shuffled order, with requests / rounds requests;
    the median round is reported."""
    servers, procs = [], []
    try:
        for name, flags in (("bare", None),
                            ("moat, port allowed (listen supervised)", ["--bind-tcp"])):
            port = free_port()
            cmd = [PY, "-c", SERVER, str(port)]
            if flags:
                cmd = [moat, "run", *FLAGS, *flags, str(port), "--", *cmd]
            procs.append(subprocess.Popen(cmd))
            servers.append((name, port))
        for _, port in servers:
            for _ in range(200):
                try:
                    socket.create_connection(("127.0.0.1", port)).close()
                    break
                except OSError:
                    time.sleep(0.05)
        pairs = []
        for server, port in servers:
            for client, flags in (("bare", None),
                                  ("moat, Landlock connect rule", ["--connect-tcp", str(port)]),
                                  ("moat, connects supervised",
                                   ["--connect-tcp", str(port), "--unix", sock])):
                cmd = [PY, "-c", CLIENT, str(port), str(requests // rounds)]
                if flags:
                    cmd = [moat, "run", *FLAGS, *flags, "--", *cmd]
                pairs.append(((server, client), cmd))
        rates = {k: [] for k, _ in pairs}
        for _ in range(rounds):
            random.shuffle(pairs)
            for key, cmd in pairs:
                out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
                rates[key].append(float(out))
        return [(s, c, statistics.median(r)) for (s, c), r in sorted(rates.items())]
    finally:
        for p in procs:
            p.kill()
            p.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--moat", default=os.path.join(
        here, "..", "target/x86_64-unknown-linux-gnu/release/moat"))
    ap.add_argument("--calls", type=int, default=2000, help="calls per measurement")
    ap.add_argument("--requests", type=int, default=10000, help="HTTP requests per pair")
    ap.add_argument("--rounds", type=int, default=10, help="HTTP rounds (shuffled pairs)")
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()
    if not os.access(PY, os.X_OK):
        sys.exit(f"needs {PY}")

    tmp = tempfile.mkdtemp(prefix="moat-bench-supervisor-")
    sock = os.path.join(tmp, "s.sock")
    unix = socket.socket(socket.AF_UNIX)
    unix.bind(sock)
    unix.listen(4096)
    tcp = socket.socket()
    tcp.bind(("127.0.0.1", 0))
    tcp.listen(4096)
    # Accept (and drop) what the call measurements connect, so the queues never fill.
    for srv in (unix, tcp):
        threading.Thread(target=lambda s=srv: [s.accept()[0].close() for _ in iter(int, 1)],
                         daemon=True).start()

    c = calls(args.moat, args.calls, sock, tcp.getsockname()[1])
    h = http(args.moat, args.requests, args.rounds, sock)

    md = args.markdown
    fmt = lambda x: "-" if x is None else f"{x:.1f}"
    print("| call (median us) | bare | moat, Landlock decides | moat, supervised |" if md
          else "calls, median us (bare / Landlock decides / supervised):")
    if md:
        print("|---|---:|---:|---:|")
    for op, bare, plain, sup in c:
        print(f"| {op} | {fmt(bare)} | {fmt(plain)} | {fmt(sup)} |" if md else
              f"  {op}: {fmt(bare)} / {fmt(plain)} / {fmt(sup)}")
    print()
    print(f"| {args.requests} HTTP requests: server | client | requests/s |" if md else
          f"{args.requests} HTTP requests, a connection each:")
    if md:
        print("|---|---|---:|")
    for server, client, rps in h:
        print(f"| {server} | {client} | {rps:.0f} |" if md else
              f"  server {server}, client {client}: {rps:.0f} requests/s")


if __name__ == "__main__":
    main()
