#!/usr/bin/env python3
"""Container start benchmark: what moat-runtime adds to runc.

One container life as an engine drives it: `create`, `start`, wait for the container to
exit (its stdout pipe closes), `delete`, each a separate runtime invocation, as podman and
containerd do. The container runs /bin/true from a busybox-static rootfs. Variants, in
interleaved rounds (one life of each per round, shuffled order) so machine noise hits all
alike:

  runc                        runc alone
  moat-runtime, no policy     moat-runtime in front of runc, container without policy
  moat-runtime, policy        moat-runtime in front of runc, container confined by an
                              annotation (config.json rewritten, launcher in front, and
                              cgroup-bpf counters attached, their pins removed at delete)
  moat-runtime, observe       moat-runtime in front of runc, container without policy
                              annotated moat.dev/observe: "true" (counters only)

With --node-config, the moat-runtime variants also run as on a node set up by moat-node,
whose /etc/moat/runtime.toml names the node's runc (MOAT_RUNTIME_CONFIG points at such a
file, written as moat-node writes it), and once more with a file that says the same in a
form moat-runtime's early pass-through does not read (a quoted key), which is what every
configured node paid before the early path learnt to read the file:

  moat-runtime, node config, no policy / policy
  moat-runtime, node config not read early, no policy

With --supervised, one more variant: the policy plus a TCP bind port, for which the launcher
forks moat's supervisor (docs/policy.md, 1.15) before it restricts itself:

  moat-runtime, policy with a bind port (supervisor)

With --breakdown, two more variants split the confined overhead:

  runc, moat mounts           runc on the original config.json plus the two read-only
                              bind mounts moat-runtime adds (launcher and policy)
  runc, prepared config       runc on the config.json moat-runtime writes (mounts and
                              the launcher in front of /bin/true), prepared beforehand

moat-runtime and the launcher are measured as installed copies (copied to a temporary
directory with write(), as install, cp and package managers do): a binary the linker has
just written executes about 0.1 ms slower (docs/PERFORMANCE.md, launch benchmark).

config.json is restored and <bundle>/moat removed before every life, outside the timing
(engines give each container a fresh bundle). Needs root, runc and busybox-static.

With --phases, each variant's life is also split into its four phases (create, start, the
container's run from start's return to its exit, delete), medians and paired against runc's
same phase: where an added millisecond is spent.

With --ci N, each "added" figure also gets a 95% confidence interval from N bootstrap
resamples of the rounds (a round's lives stay together, so the pairing is kept): with
lives varying by +-20% on a 2-vCPU VM, a few hundred lives leave the median uncertain by
about 1% of a life, as much as the effect measured.

With --baseline DIR, the no-policy, policy and observe variants run once more with the
moat-runtime and moat of another build in DIR, in the same rounds: a before-and-after
comparison that machine drift cannot skew.

usage: bench/runtime.py [--runs N] [--moat-runtime PATH] [--moat PATH] [--breakdown]
                        [--node-config] [--supervised] [--baseline DIR] [--ci N]
                        [--phases] [--markdown]
"""
import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

POLICY = '{"filesystem":{"read_exec":["/bin"],"read":["/etc"],"read_write":["/tmp"]}}'
# The same with a server port: the launcher forks moat's supervisor for listen().
SUPERVISED = ('{"filesystem":{"read_exec":["/bin"],"read":["/etc"],"read_write":["/tmp"]},'
              '"network":{"bind_tcp":[8080]}}')


def make_bundle(base):
    rootfs = os.path.join(base, "rootfs")
    for d in ("bin", "etc", "tmp", "proc", "dev", "sys"):
        os.makedirs(os.path.join(rootfs, d))
    shutil.copy("/bin/busybox", os.path.join(rootfs, "bin/busybox"))
    for link in ("sh", "true"):
        os.symlink("busybox", os.path.join(rootfs, "bin", link))
    subprocess.run(["runc", "spec"], cwd=base, check=True)
    with open(os.path.join(base, "config.json")) as f:
        cfg = json.load(f)
    cfg["process"]["terminal"] = False
    cfg["process"]["args"] = ["/bin/true"]
    return cfg


def life(runtime, root, bundle, cid, env=None):
    """create, start, wait for exit, delete; returns seconds for each of the four."""
    base = [runtime, "--root", root]
    r, w = os.pipe()
    t0 = time.perf_counter()
    subprocess.run(base + ["create", "--bundle", bundle, cid], stdin=subprocess.DEVNULL,
                   stdout=w, check=True, env=env)
    os.close(w)
    t1 = time.perf_counter()
    subprocess.run(base + ["start", cid], check=True, env=env)
    t2 = time.perf_counter()
    while os.read(r, 4096):
        pass
    t3 = time.perf_counter()
    # The pipe closes as the process exits, a moment before runc sees it stopped:
    # --force covers that moment (it kills nothing that still runs /bin/true).
    subprocess.run(base + ["delete", "--force", cid], check=True, env=env)
    t4 = time.perf_counter()
    os.close(r)
    return (t1 - t0, t2 - t1, t3 - t2, t4 - t3)


PHASES = ("create", "start", "run", "delete")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=100)
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--moat-runtime", default=os.path.join(
        here, "..", "target/x86_64-unknown-linux-gnu/release/moat-runtime"))
    ap.add_argument("--moat", default=os.path.join(
        here, "..", "target/x86_64-unknown-linux-gnu/release/moat"))
    ap.add_argument("--breakdown", action="store_true",
                    help="add runc variants with moat's mounts and with a prepared config")
    ap.add_argument("--node-config", action="store_true",
                    help="add moat-runtime variants with a node's /etc/moat/runtime.toml")
    ap.add_argument("--supervised", action="store_true",
                    help="add a confined variant whose policy needs moat's supervisor")
    ap.add_argument("--baseline", metavar="DIR",
                    help="also run the confined, observe and no-policy variants with the "
                         "moat-runtime and moat in DIR (another build), in the same rounds")
    ap.add_argument("--ci", type=int, default=0, metavar="N",
                    help="95%% confidence intervals from N bootstrap resamples of the rounds")
    ap.add_argument("--phases", action="store_true",
                    help="also report each phase (create, start, run, delete) apart")
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()
    if os.geteuid() != 0 or not shutil.which("runc") or not os.path.exists("/bin/busybox"):
        sys.exit("needs root, runc and busybox-static")

    tmp = tempfile.mkdtemp(prefix="moat-bench-")
    # Installed copies: moat-runtime finds the launcher next to itself.
    bindir = os.path.join(tmp, "bin")
    os.makedirs(bindir)
    for name, src in (("moat-runtime", args.moat_runtime), ("moat", args.moat)):
        dst = os.path.join(bindir, name)
        shutil.copyfile(os.path.abspath(src), dst)
        os.chmod(dst, 0o755)
    mr = os.path.join(bindir, "moat-runtime")
    base_mr = None
    if args.baseline:
        base_dir = os.path.join(tmp, "baseline")
        os.makedirs(base_dir)
        for name in ("moat-runtime", "moat"):
            dst = os.path.join(base_dir, name)
            shutil.copyfile(os.path.join(args.baseline, name), dst)
            os.chmod(dst, 0o755)
        base_mr = os.path.join(base_dir, "moat-runtime")
    root = os.path.join(tmp, "state")
    kinds = [("runc", "runc", "plain", None),
             ("moat-runtime, no policy", mr, "plain", None),
             ("moat-runtime, policy", mr, "policy", None),
             ("moat-runtime, observe", mr, "observe", None)]
    if args.node_config:
        # As moat-node writes it (crates/moat-node/src/runtime_file.rs), and the same
        # settings in a form the early pass-through leaves to the full path.
        runc = shutil.which("runc")
        node = os.path.join(tmp, "runtime.toml")
        with open(node, "w") as f:
            f.write("# Written by moat-node (moat's node installer)\n"
                    f'runtime = "{runc}"\nlauncher = "{bindir}/moat"\n')
        skipped = os.path.join(tmp, "runtime-quoted.toml")
        with open(skipped, "w") as f:
            f.write(f'"runtime" = "{runc}"\n"launcher" = "{bindir}/moat"\n')
        env = lambda path: dict(os.environ, MOAT_RUNTIME_CONFIG=path)
        kinds += [("moat-runtime, node config, no policy", mr, "plain", env(node)),
                  ("moat-runtime, node config, policy", mr, "policy", env(node)),
                  ("moat-runtime, node config not read early, no policy", mr, "plain",
                   env(skipped))]
    if base_mr:
        kinds += [("baseline: moat-runtime, no policy", base_mr, "plain", None),
                  ("baseline: moat-runtime, policy", base_mr, "policy", None),
                  ("baseline: moat-runtime, observe", base_mr, "observe", None)]
    if args.supervised:
        kinds += [("moat-runtime, policy with a bind port (supervisor)", mr, "supervised", None)]
    if args.breakdown:
        kinds += [("runc, moat mounts", "runc", "mounts", None),
                  ("runc, prepared config", "runc", "prepared", None)]
    variants = []
    prepared_ids = []
    for name, runtime, kind, env in kinds:
        bundle = os.path.join(tmp, "".join(c if c.isalnum() else "-" for c in name))
        os.makedirs(bundle)
        cfg = make_bundle(bundle)
        if kind == "observe":
            cfg.setdefault("annotations", {})["moat.dev/observe"] = "true"
        elif kind != "plain":
            cfg.setdefault("annotations", {})["moat.dev/policy"] = (
                SUPERVISED if kind == "supervised" else POLICY)
        text = json.dumps(cfg, indent=2)
        if kind in ("mounts", "prepared"):
            # Let moat-runtime prepare the bundle once, without running anything.
            with open(os.path.join(bundle, "config.json"), "w") as f:
                f.write(text)
            # Its own id: the counters it attaches to that id's cgroup stay until the end.
            prep_id = f"moat-bench-prepare-{kind}"
            subprocess.run([mr, "--moat-runtime", "/bin/true", "create", "--bundle", bundle,
                            prep_id], check=True)
            prepared_ids.append(prep_id)
            with open(os.path.join(bundle, "config.json")) as f:
                prepared = json.load(f)
            if kind == "mounts":
                cfg["mounts"] = prepared["mounts"]
                text = json.dumps(cfg, indent=2)
            else:
                text = json.dumps(prepared, indent=2)
        variants.append((name, runtime, bundle, text, env))

    phases = {v[0]: [] for v in variants}
    try:
        for i in range(args.runs + 3):
            order = variants[:]
            random.shuffle(order)
            for name, runtime, bundle, text, env in order:
                with open(os.path.join(bundle, "config.json"), "w") as f:
                    f.write(text)
                if runtime in (mr, base_mr):
                    # A fresh bundle, as engines give each container: moat-runtime's
                    # files of the previous life go too.
                    shutil.rmtree(os.path.join(bundle, "moat"), ignore_errors=True)
                t = life(runtime, root, bundle, f"bench-{os.path.basename(bundle)}-{i}", env)
                if i >= 3:  # warm-up rounds are dropped
                    phases[name].append(t)
    finally:
        for prep_id in prepared_ids:
            # The pins and the cgroup moat-runtime made for the preparing `create`.
            subprocess.run([mr, "--moat-runtime", "/bin/true", "delete", prep_id])
            for line in open("/proc/self/mounts"):
                dev, mnt, fstype = line.split()[:3]
                if fstype == "cgroup2" and os.path.isdir(os.path.join(mnt, prep_id)):
                    os.rmdir(os.path.join(mnt, prep_id))
        shutil.rmtree(tmp, ignore_errors=True)

    times = {name: [sum(p) for p in ps] for name, ps in phases.items()}
    base = statistics.median(times["runc"])
    cis = bootstrap(times, args.ci) if args.ci else {}
    rows = []
    for name, *_ in variants:
        # Paired: the difference to runc's life in the same round, whose machine load was
        # about the same; steadier than the difference of the two medians.
        paired = statistics.median(t - b for t, b in zip(times[name], times["runc"]))
        ts = sorted(times[name])
        med = statistics.median(ts)
        p10, p90 = ts[len(ts) // 10], ts[len(ts) * 9 // 10]
        rows.append((name, med, p10, p90, med - base, (med - base) / base * 100, paired))
    if cis:
        print(f"95% confidence intervals of what each variant adds to runc ({args.ci} "
              "bootstrap resamples of the rounds):")
        for name, (diff, paired) in cis.items():
            print(f"  {name}: added {diff[0]:+.1f}% .. {diff[1]:+.1f}%, "
                  f"paired {paired[0]:+.1f}% .. {paired[1]:+.1f}%")
    if args.markdown:
        print(f"| variant ({args.runs} lives each) | median | p10 | p90 | added | added % "
              "| added, paired |")
        print("|---|---|---|---|---|---|---|")
        for n, med, p10, p90, add, pct, paired in rows:
            print(f"| {n} | {med*1e3:.1f} ms | {p10*1e3:.1f} ms | {p90*1e3:.1f} ms "
                  f"| {add*1e3:+.2f} ms | {pct:+.1f}% | {paired*1e3:+.2f} ms "
                  f"({paired / base * 100:+.1f}%) |")
    else:
        for n, med, p10, p90, add, pct, paired in rows:
            print(f"{n:28} median {med*1e3:7.2f} ms  p10 {p10*1e3:7.2f}  p90 {p90*1e3:7.2f}"
                  f"  added {add*1e3:+6.2f} ms ({pct:+.1f}%)  paired {paired*1e3:+6.2f} ms")
    if args.phases:
        # Where a variant's time goes: each runtime invocation (create, start, delete)
        # and the container's run (start's return to the exit), paired with runc's
        # same phase in the same round.
        print()
        print("| variant: paired added per phase | " + " | ".join(PHASES) + " |")
        print("|---|" + "---:|" * len(PHASES))
        for name, *_ in variants:
            cells = []
            for k in range(len(PHASES)):
                own = [p[k] for p in phases[name]]
                ref = [p[k] for p in phases["runc"]]
                paired = statistics.median(a - b for a, b in zip(own, ref))
                cells.append(f"{statistics.median(own)*1e3:.2f} ms ({paired*1e3:+.2f})")
            print(f"| {name} | " + " | ".join(cells) + " |")


def bootstrap(times, resamples):
    """95% intervals of (median - runc's median) and of the median paired difference, both
    in % of runc's median, from `resamples` resamples of whole rounds."""
    n = len(times["runc"])
    rng = random.Random(1)
    out = {}
    for name, ts in times.items():
        if name == "runc":
            continue
        diffs, paired = [], []
        for _ in range(resamples):
            idx = [rng.randrange(n) for _ in range(n)]
            b = statistics.median(times["runc"][i] for i in idx)
            diffs.append((statistics.median(ts[i] for i in idx) - b) / b * 100)
            paired.append(statistics.median(ts[i] - times["runc"][i] for i in idx) / b * 100)
        diffs.sort()
        paired.sort()
        lo, hi = int(resamples * 0.025), int(resamples * 0.975) - 1
        out[name] = ((diffs[lo], diffs[hi]), (paired[lo], paired[hi]))
    return out


if __name__ == "__main__":
    main()
