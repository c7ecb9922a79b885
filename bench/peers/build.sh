#!/bin/sh
# Builds the launchers bench/launch.py compares moat with, into target/bench-peers/:
#   sandboxer  the kernel's sample sandboxer (samples/landlock/sandboxer.c) from Debian's
#              linux-source-6.12 package (installed with apt-get when missing), static
#   floor      bench/peers/floor.c: moat's enforcement in minimal C, static
#   exec-only  a static C program that only execs its arguments: the cost of any launcher
#   icount     bench/peers/icount.c: user-space instructions from exec to exec (ptrace)
# Needs gcc, xz and tar; run as root on Debian 12 for the apt-get step.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out="$here/../../target/bench-peers"
mkdir -p "$out"
tarball=/usr/src/linux-source-6.12.tar.xz
if [ ! -f "$tarball" ]; then
    apt-get install -y -q linux-source-6.12 >/dev/null
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tar -C "$work" -xf "$tarball" \
    linux-source-6.12/samples/landlock/sandboxer.c \
    linux-source-6.12/include/uapi/linux/landlock.h
# The sample needs the 6.12 UAPI header; Debian 12's linux-libc-dev is older.
mkdir -p "$work/include/linux"
cp "$work/linux-source-6.12/include/uapi/linux/landlock.h" "$work/include/linux/"
gcc -O2 -static -I "$work/include" -o "$out/sandboxer" \
    "$work/linux-source-6.12/samples/landlock/sandboxer.c"
gcc -O2 -Wall -static -o "$out/floor" "$here/floor.c"
gcc -O2 -Wall -o "$out/icount" "$here/icount.c"
printf '#include <unistd.h>\nint main(int c, char **v) { execv(v[1], v + 1); return 127; }\n' \
    > "$work/exec-only.c"
gcc -O2 -static -o "$out/exec-only" "$work/exec-only.c"
echo "built: $out/sandboxer $out/floor $out/exec-only $out/icount"
