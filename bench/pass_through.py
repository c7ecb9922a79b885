#!/usr/bin/env python3
"""What moat-runtime adds to a command it only passes through, on a node set up by
moat-node: `state` of a container that does not exist (runc answers at once, so the
runtime's own start-up is most of what is measured), run as an engine runs it.

Variants, interleaved in shuffled rounds:

  runc                                  runc alone
  moat-runtime, no config               no /etc/moat/runtime.toml: the early path
  moat-runtime, node config             the file moat-node writes (MOAT_RUNTIME_CONFIG
                                        points at it): the early path reads it
  moat-runtime, config not read early   the same settings with quoted keys: the early
                                        path leaves it to the full path (glibc start-up,
                                        TOML), which is what every configured node paid
                                        before the early path learnt to read the file

Each invocation is one posix_spawn and waitpid from this process (no shell), timed with
perf_counter; moat-runtime runs as an installed copy. Medians, paired differences to
runc's invocation of the same round, and with --ci N 95% intervals from N bootstrap
resamples of the rounds.

usage: bench/pass_through.py [--runs N] [--moat-runtime PATH] [--ci N] [--markdown]
"""
import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import time


def invoke(argv, env):
    t0 = time.perf_counter()
    pid = os.posix_spawn(argv[0], argv, env)
    os.waitpid(pid, 0)
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=2000)
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--moat-runtime", default=os.path.join(
        here, "..", "target/x86_64-unknown-linux-gnu/release/moat-runtime"))
    ap.add_argument("--ci", type=int, default=0, metavar="N")
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()
    runc = shutil.which("runc")
    if not runc:
        sys.exit("needs runc")
    tmp = tempfile.mkdtemp(prefix="moat-pass-")
    try:
        mr = os.path.join(tmp, "moat-runtime")
        shutil.copyfile(os.path.abspath(args.moat_runtime), mr)
        os.chmod(mr, 0o755)
        node = os.path.join(tmp, "runtime.toml")
        with open(node, "w") as f:
            f.write("# Written by moat-node (moat's node installer)\n"
                    f'runtime = "{runc}"\nlauncher = "/opt/moat/bin/moat"\n')
        quoted = os.path.join(tmp, "quoted.toml")
        with open(quoted, "w") as f:
            f.write(f'"runtime" = "{runc}"\n"launcher" = "/opt/moat/bin/moat"\n')
        base = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")}
        missing = os.path.join(tmp, "none.toml")
        tail = ["--root", os.path.join(tmp, "state"), "state", "none"]
        variants = [
            ("runc", [runc] + tail, base),
            ("moat-runtime, no config", [mr] + tail, dict(base, MOAT_RUNTIME_CONFIG=missing)),
            ("moat-runtime, node config", [mr] + tail, dict(base, MOAT_RUNTIME_CONFIG=node)),
            ("moat-runtime, config not read early", [mr] + tail,
             dict(base, MOAT_RUNTIME_CONFIG=quoted)),
        ]
        times = {v[0]: [] for v in variants}
        devnull = os.open(os.devnull, os.O_WRONLY)
        saved = os.dup(2)
        os.dup2(devnull, 2)  # runc's "container does not exist"
        try:
            for i in range(args.runs + 20):
                order = variants[:]
                random.shuffle(order)
                for name, argv, env in order:
                    t = invoke(argv, env)
                    if i >= 20:
                        times[name].append(t)
        finally:
            os.dup2(saved, 2)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    b = statistics.median(times["runc"])
    if args.markdown:
        print(f"| variant ({args.runs} invocations) | median | added | added, paired |")
        print("|---|---:|---:|---:|")
    for name, *_ in variants:
        med = statistics.median(times[name])
        paired = statistics.median(t - r for t, r in zip(times[name], times["runc"]))
        ci = ""
        if args.ci and name != "runc":
            rng = random.Random(1)
            n = len(times["runc"])
            ps = []
            for _ in range(args.ci):
                idx = [rng.randrange(n) for _ in range(n)]
                ps.append(statistics.median(times[name][i] - times["runc"][i] for i in idx))
            ps.sort()
            ci = (f" (95%: {ps[int(args.ci * 0.025)] * 1e6:+.0f}.."
                  f"{ps[int(args.ci * 0.975) - 1] * 1e6:+.0f} us)")
        if args.markdown:
            print(f"| {name} | {med * 1e3:.3f} ms | {(med - b) * 1e6:+.0f} us "
                  f"| {paired * 1e6:+.0f} us{ci} |")
        else:
            print(f"{name:38} median {med * 1e3:.3f} ms  added {(med - b) * 1e6:+5.0f} us"
                  f"  paired {paired * 1e6:+5.0f} us{ci}")


if __name__ == "__main__":
    main()
