#!/usr/bin/env python3
"""moat-runtime's own `create` work, two builds side by side.

Runs `moat-runtime --moat-runtime /bin/true create` (so no container is made: what is
timed is moat-runtime reading the bundle, deciding, writing config.json and its record,
and exec'ing the runtime) for two builds A and B, in interleaved shuffled rounds, on
bundles shaped three ways:

  standalone, policy      a runc bundle with a moat.dev/policy annotation
  containerd, policy      a pod container as containerd writes it, with the webhook's
                          per-container policy, its sandbox's bundle beside it (moat-runtime
                          compares the pod's moat annotations with the sandbox's)
  containerd, no policy   the same without a policy (the node's default applies)

config.json is restored and <bundle>/moat removed before every run, outside the timing.
Both builds run as installed copies (copied to a temporary directory). Prints medians and
the median of the paired differences B - A with a 95% bootstrap interval.

usage: bench/runtime_create.py --a DIR --b DIR [--runs N] [--ci N] [--tmp DIR]
  (DIR holds moat-runtime and moat; --tmp: where the bundles go, e.g. /dev/shm, a tmpfs
  like the /run where containerd and CRI-O keep theirs)
"""
import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import tempfile
import time

POLICY = '{"filesystem":{"read_exec":["/bin"],"read":["/etc"],"read_write":["/tmp"]}}'


def install(src, dst):
    os.makedirs(dst)
    for name in ("moat-runtime", "moat"):
        with open(os.path.join(src, name), "rb") as f:
            data = f.read()
        path = os.path.join(dst, name)
        with open(path, "wb") as f:
            f.write(data)
        os.chmod(path, 0o755)
    return os.path.join(dst, "moat-runtime")


def bundles(base):
    subprocess.run(["runc", "spec"], cwd=base, check=True)
    with open(os.path.join(base, "config.json")) as f:
        cfg = json.load(f)
    os.remove(os.path.join(base, "config.json"))
    cfg["process"]["args"] = ["/bin/true"]
    pod = {
        "io.kubernetes.cri.container-type": "container",
        "io.kubernetes.cri.container-name": "web",
        "io.kubernetes.cri.sandbox-id": "5f1c6a0a52b5",
        "io.kubernetes.container.ports": '[{"containerPort":80,"protocol":"TCP"}]',
        "moat.dev/enforce": "true",
    }
    webhook = "[network]\nhandled = [\"bind_tcp\"]\nbind_tcp = [80]\n"
    shapes = {
        "standalone, policy": {"moat.dev/policy": POLICY},
        "containerd, policy": dict(pod, **{"container.moat.dev/web": webhook}),
        "containerd, no policy": dict(pod),
    }
    out = {}
    for i, (name, ann) in enumerate(shapes.items()):
        b = os.path.join(base, f"b{i}")
        os.makedirs(b)
        c = dict(cfg, annotations=ann)
        out[name] = (b, json.dumps(c))
    # The pod's sandbox, beside the containerd bundles, created with the same pod
    # annotations.
    sandbox = os.path.join(base, "5f1c6a0a52b5")
    os.makedirs(sandbox)
    sann = {k: v for k, v in pod.items() if not k.startswith("io.kubernetes.container")}
    sann["io.kubernetes.cri.container-type"] = "sandbox"
    sann["container.moat.dev/web"] = webhook
    with open(os.path.join(sandbox, "config.json"), "w") as f:
        json.dump(dict(cfg, annotations=sann), f)
    # The no-policy container's pod has no policy annotation, its sandbox neither.
    return out, sandbox


def once(runtime, bundle, text, cfgfile):
    with open(os.path.join(bundle, "config.json"), "w") as f:
        f.write(text)
    shutil.rmtree(os.path.join(bundle, "moat"), ignore_errors=True)
    env = dict(os.environ, MOAT_RUNTIME_CONFIG=cfgfile)
    t0 = time.perf_counter()
    r = subprocess.run(
        [runtime, "--moat-runtime", "/bin/true", "create", "--bundle", bundle, "x"],
        stdin=subprocess.DEVNULL, env=env,
    )
    t = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"{runtime} create failed on {bundle}")
    return t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--a", required=True)
    ap.add_argument("--b", required=True)
    ap.add_argument("--runs", type=int, default=500)
    ap.add_argument("--ci", type=int, default=1000)
    ap.add_argument("--tmp", default=None)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=args.tmp) as d:
        ra = install(args.a, os.path.join(d, "a"))
        rb = install(args.b, os.path.join(d, "b"))
        cfgfile = os.path.join(d, "runtime.toml")
        open(cfgfile, "w").close()
        shapes, sandbox = bundles(d)
        results = {name: ([], []) for name in shapes}
        for _ in range(args.runs):
            jobs = [(n, w) for n in shapes for w in (0, 1)]
            random.shuffle(jobs)
            for name, which in jobs:
                b, text = shapes[name]
                # The no-policy pod's sandbox has no policy either.
                with open(os.path.join(sandbox, "config.json")) as f:
                    sc = json.load(f)
                if name == "containerd, no policy":
                    sc["annotations"].pop("container.moat.dev/web", None)
                else:
                    sc["annotations"]["container.moat.dev/web"] = json.loads(text)[
                        "annotations"].get("container.moat.dev/web", "")
                    if not sc["annotations"]["container.moat.dev/web"]:
                        sc["annotations"].pop("container.moat.dev/web")
                with open(os.path.join(sandbox, "config.json"), "w") as f:
                    json.dump(sc, f)
                t = once((ra, rb)[which], b, text, cfgfile)
                results[name][which].append(t)
        print(f"| bundle ({args.runs} runs each) | A | B | B - A, paired (95%) |")
        print("|---|---|---|---|")
        for name, (a, b) in results.items():
            diffs = [y - x for x, y in zip(a, b)]
            boot = sorted(
                statistics.median(random.choices(diffs, k=len(diffs)))
                for _ in range(args.ci)
            )
            lo, hi = boot[int(0.025 * args.ci)], boot[int(0.975 * args.ci)]
            print(
                f"| {name} | {statistics.median(a) * 1e3:.3f} ms | "
                f"{statistics.median(b) * 1e3:.3f} ms | "
                f"{statistics.median(diffs) * 1e6:+.0f} us ({lo * 1e6:+.0f}..{hi * 1e6:+.0f}) |"
            )


if __name__ == "__main__":
    main()
