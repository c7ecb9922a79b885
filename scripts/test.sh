#!/usr/bin/env bash
# Runs moat's whole test suite on a Debian 12 machine (as root), installing what the tests
# need when it is missing. CI calls exactly this (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."

need_pkgs=()
command -v cc >/dev/null || need_pkgs+=(gcc)
# moat links statically (.cargo/config.toml): glibc's static archives come with libc6-dev.
dpkg -s libc6-dev >/dev/null 2>&1 || need_pkgs+=(libc6-dev)
# Debian's own interpreter: the record tests replay /usr/bin/python3, not a version manager's.
[ -x /usr/bin/python3 ] || need_pkgs+=(python3)
command -v curl >/dev/null || need_pkgs+=(curl)
# `moat record` is tested on git in a scratch repository.
command -v git >/dev/null || need_pkgs+=(git)
# ... and on node (it reads its own control group's files) and a C build with make and cc.
command -v node >/dev/null || need_pkgs+=(nodejs)
command -v make >/dev/null || need_pkgs+=(make)
# moat-runtime's tests run real containers: runc, a static busybox for the rootfs, podman.
command -v runc >/dev/null || need_pkgs+=(runc)
dpkg -s busybox-static >/dev/null 2>&1 || need_pkgs+=(busybox-static)
command -v podman >/dev/null || need_pkgs+=(podman)
# The node tests (crates/moat-node): Debian's containerd, run by hand, with a CNI bridge;
# the CRI client (k8s-cri) is generated from its .proto files at build time.
command -v containerd >/dev/null || need_pkgs+=(containerd)
[ -x /usr/lib/cni/bridge ] || need_pkgs+=(containernetworking-plugins)
command -v protoc >/dev/null || need_pkgs+=(protobuf-compiler)
command -v ip >/dev/null || need_pkgs+=(iproute2)
# Which way moat-runtime's forced delete went (before libc or not) is read from strace.
command -v strace >/dev/null || need_pkgs+=(strace)
# The exporter's output is checked by Prometheus' own linter (crates/moat-runtime/tests/cgroup_bpf.rs).
command -v promtool >/dev/null || need_pkgs+=(prometheus)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "test.sh: installing ${need_pkgs[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_pkgs[@]}"
  else
    echo "test.sh: missing ${need_pkgs[*]} and cannot install them (need root and apt-get)" >&2
    exit 1
  fi
fi

cargo build --workspace --all-targets --quiet
cargo test --workspace --no-fail-fast -- --test-threads="$(nproc)" "$@"
