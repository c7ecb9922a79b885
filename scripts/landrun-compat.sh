#!/bin/bash
# Runs landrun's own test script against moat's landrun personality.
#
# usage: scripts/landrun-compat.sh LANDRUN_CHECKOUT [MOAT_BINARY]
#
# LANDRUN_CHECKOUT is a checkout of landrun's repository (its test.sh is read from there,
# never copied into moat). moat is put first on PATH as `landrun` (a symlink), and a
# stand-in `go` answers the script's ABI probe (`go run .../landlock-abi-version`) with this
# kernel's Landlock ABI as `moat status --json` reports it; the script runs with
# `--use-system --offline` in a scratch directory. Prints the script's output and a
# summary: tests passed, failed, and the ones the script skipped.
set -euo pipefail

checkout=${1:?usage: $0 LANDRUN_CHECKOUT [MOAT_BINARY]}
moat=${2:-$(dirname "$0")/../target/x86_64-unknown-linux-gnu/debug/moat}
moat=$(realpath "$moat")
script=$(realpath "$checkout/test.sh")
[ -f "$script" ] || { echo "no test.sh in $checkout" >&2; exit 2; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/bin" "$work/run"
ln -s "$moat" "$work/bin/landrun"
abi=$("$moat" status --json | /usr/bin/python3 -c \
    'import json, sys; print(json.load(sys.stdin)["landlock"]["effective_abi"])')
cat > "$work/bin/go" <<GO
#!/bin/sh
# Stand-in for landrun's ABI probe: this kernel's Landlock ABI, from moat.
echo $abi
GO
chmod +x "$work/bin/go"

cd "$work/run"
set +e
PATH="$work/bin:$PATH" bash "$script" --use-system --offline 2>&1 | tee "$work/log"
status=${PIPESTATUS[0]}
set -e
passed=$(grep -c 'Test passed' "$work/log" || true)
failed=$(grep -c 'Test failed' "$work/log" || true)
echo "landrun test.sh against moat (kernel Landlock ABI $abi): $passed passed, $failed failed, exit $status"
grep 'Skipping' "$work/log" || true
exit "$status"
