#!/usr/bin/env python3
"""Writes crates/moat/launch.ld: the functions `moat run` executes at launch, gathered in
one place of the binary.

Why: moat is a static binary of about 3 MB, and the functions one launch executes (its own,
the standard library's, glibc's start-up) were spread over 26 of its 64 KiB code windows;
the kernel maps code on first touch a window at a time (fault-around), so each window cost a
page fault, about 17 more than the C floor (bench/peers/floor.c) takes. Grouping those
functions into one output section, placed before the rest of the code, removes most of them
(docs/PERFORMANCE.md). The linker script names input sections by pattern, with the hashes in
Rust symbol names replaced by `*`, so it keeps working after unrelated changes; a function it
does not name simply stays where the linker puts it.

How: builds an unstripped release moat (in its own target directory), runs it under
bench/peers/icount -p on the launches that matter (the benchmark's command line, the default
preset, a container launcher's --policy-text), and writes the patterns of every function
executed, in first-touch order: Rust functions by section name, glibc's by archive member.
Re-run it after changes to the launch path, then rebuild.

usage: bench/launch_order.py [--check]
  --check  only report how many executed functions the current launch.ld misses
"""
import argparse
import bisect
import json
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "crates", "moat", "launch.ld")
TARGET = "x86_64-unknown-linux-gnu"

# What a container launcher's policy looks like (moat-runtime writes moat JSON).
POLICY_TEXT = json.dumps({
    "version": 1,
    "filesystem": {"read_exec": ["/usr", "/bin"], "read": ["/etc"], "write": ["/tmp"]},
    "network": {"bind_tcp": [8080]},
    "capabilities": {"keep": ["all"]},
})

WORKLOADS = [
    ["run", "--rox", "/usr,/lib,/lib64,/bin", "--ro", "/etc", "--", "/bin/true"],
    ["run", "--", "/bin/true"],
    ["run", "--policy-text", POLICY_TEXT, "--", "/bin/true"],
]


def symbols(binary):
    out = subprocess.run(["nm", "-n", binary], capture_output=True, text=True, check=True).stdout
    syms = []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] in "tTwW":
            syms.append((int(parts[0], 16), parts[2]))
    return syms


def executed(binary, counter):
    """Functions executed by the workloads, in first-touch order."""
    syms = symbols(binary)
    addrs = [a for a, _ in syms]
    seen, order = set(), []
    env = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"}
    for args in WORKLOADS:
        with tempfile.NamedTemporaryFile(prefix="moat-order-") as trace:
            subprocess.run([counter, "-n", "1", "-p", trace.name, binary, *args], env=env,
                           check=True, capture_output=True)
            for line in open(trace.name):
                i = bisect.bisect_right(addrs, int(line, 16)) - 1
                if i >= 0 and syms[i][1] not in seen:
                    seen.add(syms[i][1])
                    order.append(syms[i][1])
    return order


def rust_pattern(name):
    """The input sections a Rust function can be in (the standard library puts cold ones in
    `.text.unlikely.`), with the hashes of its name as wildcards."""
    name = re.sub(r"17h[0-9a-f]{16}E$", "17h*E", name)  # legacy mangling
    name = re.sub(r"Cs[0-9A-Za-z]+_", "Cs*_", name)  # v0: crate disambiguators
    return f".text.{name} .text.unlikely.{name} .text.hot.{name}"


# The C run-time objects gcc links into every static program: `_start` and the start-up
# and shut-down helpers.
CRT_OBJECTS = ["crt1.o", "crti.o", "crtbeginT.o", "crtend.o", "crtn.o"]


def c_members(names):
    """The archive member (`libc.a:member.o`, `libm.a:...`) defining each C function, in
    order; names no archive defines come back as plain section names."""
    where = {}
    libdir = os.path.dirname(subprocess.run(["gcc", "-print-file-name=libc.a"],
                                            capture_output=True, text=True,
                                            check=True).stdout.strip())
    # libm.a is a linker script naming the real archive (libm-<version>.a on Debian).
    libm = sorted(f for f in os.listdir(libdir) if re.fullmatch(r"libm-[0-9.]+\.a", f))
    for archive in ["libc.a", *libm]:
        path = os.path.join(libdir, archive)
        out = subprocess.run(["nm", "-A", "--defined-only", path], capture_output=True,
                             text=True).stdout
        for line in out.splitlines():
            fields = line.split(":")
            if len(fields) < 3:
                continue
            parts = fields[2].split()
            if len(parts) == 3 and parts[1] in "tTwWiI":
                where.setdefault(parts[2], f"{archive}:{fields[1]}")
    members, sections = [], []
    for n in names:
        m = where.get(n)
        if m:
            if m not in members:
                members.append(m)
        else:
            sections.append(f".text.{n}")
    return members, sections


def build():
    target_dir = os.path.join(ROOT, "target", "launch-order")
    env = {**os.environ, "CARGO_PROFILE_RELEASE_STRIP": "none", "CARGO_TARGET_DIR": target_dir}
    subprocess.run(["cargo", "build", "--release", "-p", "moat", "--quiet"], cwd=ROOT, env=env,
                   check=True)
    return os.path.join(target_dir, TARGET, "release", "moat")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()
    counter = os.path.join(ROOT, "target", "bench-peers", "icount")
    if not os.access(counter, os.X_OK):
        sys.exit("needs target/bench-peers/icount: run bench/peers/build.sh first")
    binary = build()
    order = executed(binary, counter)
    rust = [n for n in order if n.startswith(("_ZN", "_RN", "_RIN"))]
    other = [n for n in order if n not in rust]
    patterns = []
    for n in rust:
        p = rust_pattern(n)
        if p not in patterns:
            patterns.append(p)
    members, sections = c_members(other)
    if args.check:
        text = open(SCRIPT).read() if os.path.exists(SCRIPT) else ""
        missing = [p for p in patterns if p not in text]
        print(f"{len(order)} functions executed; {len(missing)} Rust patterns not in launch.ld")
        for p in missing[:20]:
            print("  " + p)
        return
    lines = [
        "/* Generated by bench/launch_order.py: the functions `moat run` executes at launch,",
        " * in first-touch order, gathered before the rest of the code so that a launch",
        " * touches few code pages (see that script and docs/PERFORMANCE.md). A pattern",
        " * that matches nothing is harmless; re-run the script after changing the launch",
        " * path. */",
        "SECTIONS",
        "{",
        "  .text.moat_launch : {",
    ]
    for crt in CRT_OBJECTS:
        lines.append(f"    *{crt}(.text .text.*)")
    for m in members:
        lines.append(f"    *{m}(.text .text.*)")
    for p in sections + patterns:
        lines.append(f"    *({p})")
    lines += [
        "  }",
        "}",
        "INSERT BEFORE .text;",
        "",
        "/* The allocator's arena (crates/moat/src/main.rs) after every other zero-initialised",
        " * variable, so that those share few pages. */",
        "SECTIONS",
        "{",
        "  .bss.moat_arena (NOLOAD) : { *(.bss.moat_arena) }",
        "}",
        "INSERT AFTER .bss;",
        "",
    ]
    with open(SCRIPT, "w") as f:
        f.write("\n".join(lines))
    print(f"wrote {SCRIPT}: {len(members)} C library members, {len(patterns)} Rust patterns "
          f"({len(order)} functions executed)")


if __name__ == "__main__":
    main()
