#!/usr/bin/env python3
"""Launch-time benchmark: how much time a sandbox launcher adds to starting /bin/true.

Every variant is started with posix_spawn and waited for, in interleaved rounds (one run of
each variant per round, in a shuffled order) so that machine noise hits all variants alike.
Reports the median, p10 and p90 wall time per variant and the median added over bare
/bin/true. Peers are measured only when present on this machine: the C peers built by
bench/peers/build.sh (the kernel's sample sandboxer, moat's enforcement in minimal C, an
exec-only launcher), bwrap and firejail from Debian; nothing is downloaded or built here.

With --paired, also the median of per-round differences between moat (flags) and the floor
(moat's enforcement in minimal C), with a bootstrap 95% interval (--ci resamples): the same
round holds one run of each, so machine drift cancels out. With --icount, the user-space
instructions each launcher executes from its exec to the exec of /bin/true, counted by
bench/peers/icount (ptrace single-steps: independent of load and clock).

With --baseline PATH, another build of moat runs the same command line in the same rounds
(variant "moat run (flags), baseline"), and --paired also reports moat minus the baseline:
how a change moves the launch, with drift cancelled.

usage: bench/launch.py [--runs N] [--moat PATH] [--baseline PATH] [--markdown] [--only LIST]
                       [--paired] [--ci N] [--icount]
"""
import argparse
import os
import random
import shutil
import statistics
import subprocess
import tempfile
import time

FLAGS = ["--rox", "/usr,/lib,/lib64,/bin", "--ro", "/etc"]


def variants(moat, baseline=None):
    v = [("bare /bin/true", ["/bin/true"])]
    v.append(("moat run (flags)", [moat, "run", *FLAGS, "--", "/bin/true"]))
    if baseline:
        v.append(("moat run (flags), baseline", [baseline, "run", *FLAGS, "--", "/bin/true"]))
    # moat started as `landrun` (a link beside the copy): landrun's command line, the same
    # rules; --best-effort because landrun 0.1.18's rule needs ABI 9 without it.
    v.append(("moat as landrun (--best-effort)",
              [os.path.join(os.path.dirname(moat), "landrun"), "--best-effort", *FLAGS,
               "/bin/true"]))
    v.append(("moat run (default preset)", [moat, "run", "--", "/bin/true"]))
    # A bind port: moat forks its supervisor for listen() (docs/policy.md, 1.15).
    v.append(("moat run (flags, --bind-tcp 8080: supervisor)",
              [moat, "run", *FLAGS, "--bind-tcp", "8080", "--", "/bin/true"]))
    peers = os.environ.get("MOAT_BENCH_PEERS", "")
    def peer(name):
        path = os.path.join(peers, name)
        return path if peers and os.access(path, os.X_OK) else None
    if peer("exec-only"):
        v.append(("exec-only launcher (static C, no sandbox)", [peer("exec-only"), "/bin/true"]))
    if peer("floor"):
        # moat's enforcement for the flags above, in minimal C (bench/peers/floor.c).
        v.append(("floor: moat's enforcement in minimal C", [peer("floor"), "/bin/true"]))
        v.append(("floor without the seccomp filter", [peer("floor"), "/bin/true"],
                  {"FLOOR_NO_SECCOMP": "1"}))
    if peer("sandboxer"):
        # The kernel's sample takes its rules from the environment: the same filesystem
        # rules, TCP bind and connect handled with no port allowed, both scopes; it has no
        # seccomp layer.
        v.append(("kernel sample sandboxer (6.12, static C)", [peer("sandboxer"), "/bin/true"],
                  {"LL_FS_RO": "/usr:/lib:/lib64:/bin:/etc", "LL_FS_RW": "",
                   "LL_TCP_BIND": "", "LL_TCP_CONNECT": "", "LL_SCOPED": "a:s"}))
    landrun = shutil.which("landrun")
    if landrun:
        v.append(("landrun", [landrun, "--rox", "/usr,/lib,/lib64,/bin", "--ro", "/etc", "/bin/true"]))
    llconfig = shutil.which("llconfig")
    if llconfig:
        v.append(("landlockconfig llconfig", [llconfig, "/bin/true"]))
    sandlock = shutil.which("sandlock")
    if sandlock:
        v.append(("sandlock", [sandlock, "run", "-r", "/usr", "-r", "/lib", "-r", "/lib64", "-r", "/bin",
                               "-r", "/etc", "--", "/bin/true"]))
    bwrap = shutil.which("bwrap")
    if bwrap:
        v.append(("bwrap", [bwrap, "--ro-bind", "/usr", "/usr", "--ro-bind", "/lib", "/lib",
                            "--ro-bind", "/lib64", "/lib64", "--ro-bind", "/bin", "/bin",
                            "--ro-bind", "/etc", "/etc", "--unshare-net", "/bin/true"]))
    firejail = shutil.which("firejail")
    if firejail:
        v.append(("firejail", [firejail, "--quiet", "--noprofile", "--net=none", "/bin/true"]))
    return v


DEVNULL = os.open(os.devnull, os.O_WRONLY)


def spawn_wait(argv, env):
    path = argv[0] if argv[0].startswith("/") else shutil.which(argv[0])
    t0 = time.perf_counter_ns()
    # stderr to /dev/null for every variant: the sample sandboxer prints two lines per run.
    pid = os.posix_spawn(path, argv, env, file_actions=[(os.POSIX_SPAWN_DUP2, DEVNULL, 2)])
    _, status = os.waitpid(pid, 0)
    t1 = time.perf_counter_ns()
    return t1 - t0, os.waitstatus_to_exitcode(status)


def install(src, dst, copies):
    """Copies `src` to `dst` (and `dst.1` ... `dst.N-1` for more copies), executable."""
    for i in range(copies):
        path = dst if i == 0 else f"{dst}.{i}"
        shutil.copyfile(src, path)
        os.chmod(path, 0o755)


def copy_of(argv, i):
    """`argv` with its program replaced by copy `i` when there is one."""
    if i == 0 or not os.path.exists(f"{argv[0]}.{i}"):
        return argv
    return [f"{argv[0]}.{i}", *argv[1:]]


def bootstrap_median(values, resamples, rng):
    """A 95% interval of the median of `values`, by resampling them whole."""
    n = len(values)
    meds = sorted(
        statistics.median(values[rng.randrange(n)] for _ in range(n)) for _ in range(resamples)
    )
    return meds[int(resamples * 0.025)], meds[int(resamples * 0.975) - 1]


def icount(counter, argv, env, runs=5):
    """The median user-space instruction count of `argv` from exec to exec."""
    out = subprocess.run([counter, "-n", str(runs), *argv], env=env, capture_output=True,
                         text=True, check=True).stdout
    return int(out.strip().splitlines()[-1].split()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=500)
    ap.add_argument("--moat", default="target/x86_64-unknown-linux-gnu/release/moat")
    ap.add_argument("--baseline", help="another moat build to pair with (e.g. before a change)")
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--only", default="", help="comma list of variant name prefixes")
    ap.add_argument("--paired", action="store_true",
                    help="median of per-round differences, moat (flags) minus the floor")
    ap.add_argument("--ci", type=int, default=1000, help="bootstrap resamples for --paired")
    ap.add_argument("--icount", action="store_true",
                    help="count user-space instructions (bench/peers/icount)")
    ap.add_argument("--copies", type=int, default=1,
                    help="installed copies of each binary, used in turn round by round")
    args = ap.parse_args()
    # Measure binaries as installed copies. A file the linker has just written (through
    # mmap) sits in the page cache in small pages and costs about 0.1 ms more per exec than
    # the same bytes copied with write(), which is how `install`, cp and package managers
    # put a binary in place (measured here, docs/PERFORMANCE.md). The sample sandboxer,
    # compiled in place, gets the same treatment.
    #
    # Copies of one file do not exec equally fast: identical binaries measured 20-30 us
    # apart here, paired over thousands of rounds (where their pages landed, presumably).
    # --copies N installs N copies of moat and of each peer and uses them in turn, so that
    # no variant wins or loses by the luck of one copy.
    workdir = tempfile.mkdtemp(prefix="moat-bench-")
    moat = os.path.join(workdir, "moat")
    install(os.path.abspath(args.moat), moat, args.copies)
    os.symlink(moat, os.path.join(workdir, "landrun"))
    baseline = None
    if args.baseline:
        os.mkdir(os.path.join(workdir, "baseline"))
        baseline = os.path.join(workdir, "baseline", "moat")
        install(os.path.abspath(args.baseline), baseline, args.copies)
    # The C peers built by bench/peers/build.sh, copied for the same reason.
    built = os.path.join(os.path.dirname(os.path.abspath(args.moat)), "..", "..", "bench-peers")
    built = os.environ.get("MOAT_BENCH_PEERS", built)
    peers = os.path.join(workdir, "peers")
    os.mkdir(peers)
    for name in ("exec-only", "floor", "sandboxer", "icount"):
        src = os.path.join(built, name)
        if os.access(src, os.X_OK):
            install(src, os.path.join(peers, name), args.copies if name != "icount" else 1)
    os.environ["MOAT_BENCH_PEERS"] = peers
    env = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"}
    vs = variants(moat, baseline)
    if args.only:
        keep = [p.strip() for p in args.only.split(",")]
        vs = [x for x in vs if x[0] == "bare /bin/true" or any(x[0].startswith(k) for k in keep)]
    times = {x[0]: [] for x in vs}
    def env_of(x):
        return {**env, **(x[2] if len(x) > 2 else {})}

    for x in vs:  # warm-up and sanity check
        for _ in range(5):
            _, code = spawn_wait(x[1], env_of(x))
            if code != 0:
                raise SystemExit(f"{x[0]} exited {code}: {' '.join(x[1])}")
    for r in range(args.runs):
        order = list(vs)
        random.shuffle(order)
        for x in order:
            t, _ = spawn_wait(copy_of(x[1], r % args.copies), env_of(x))
            times[x[0]].append(t / 1000.0)
    bare = statistics.median(times["bare /bin/true"])
    rows = []
    for x in vs:
        name = x[0]
        t = sorted(times[name])
        med = statistics.median(t)
        p10 = t[len(t) // 10]
        p90 = t[(len(t) * 9) // 10]
        added = med - bare
        rows.append((name, med, p10, p90, added))
    if args.markdown:
        print(f"| variant | median us | p10 us | p90 us | added us (median) |")
        print("|---|---:|---:|---:|---:|")
        for r in rows:
            print(f"| {r[0]} | {r[1]:.0f} | {r[2]:.0f} | {r[3]:.0f} | {r[4]:+.0f} |")
    else:
        for r in rows:
            print(f"{r[0]:32} median {r[1]:8.0f} us  p10 {r[2]:8.0f}  p90 {r[3]:8.0f}  added {r[4]:+7.0f} us")
    print(f"\n{args.runs} interleaved runs per variant (posix_spawn + waitpid, shuffled order per round).")
    floor_name = "floor: moat's enforcement in minimal C"
    moat_name = "moat run (flags)"
    if args.paired and floor_name in times and moat_name in times:
        diffs = [m - f for m, f in zip(times[moat_name], times[floor_name])]
        med = statistics.median(diffs)
        lo, hi = bootstrap_median(diffs, args.ci, random.Random(1))
        print(f"moat (flags) minus the floor, paired by round: median {med:+.1f} us, "
              f"95% interval {lo:+.1f} .. {hi:+.1f} us ({args.ci} bootstrap resamples)")
    base_name = "moat run (flags), baseline"
    if args.paired and base_name in times and moat_name in times:
        diffs = [m - b for m, b in zip(times[moat_name], times[base_name])]
        med = statistics.median(diffs)
        lo, hi = bootstrap_median(diffs, args.ci, random.Random(1))
        print(f"moat (flags) minus the baseline build, paired by round: median {med:+.1f} us, "
              f"95% interval {lo:+.1f} .. {hi:+.1f} us ({args.ci} bootstrap resamples)")
    if args.icount:
        counter = os.path.join(peers, "icount")
        if not os.access(counter, os.X_OK):
            raise SystemExit("--icount needs bench/peers/build.sh to have built icount")
        for x in vs:
            if x[0] == "bare /bin/true" or not x[1][0].startswith("/"):
                continue
            n = icount(counter, x[1], env_of(x))
            print(f"instructions, exec to exec: {x[0]:45} {n:8d}")
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
