#!/usr/bin/env bash
# System packages for the test suite. Idempotent; skipped when already present.
# chromium: the console test's real browser. haproxy, iproute2: the fleet test
# (tests/fleet: a load balancer in front of instances in network namespaces). gcc: below.
set -euo pipefail
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v haproxy >/dev/null 2>&1 || need+=(haproxy)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
# gcc: voxhost's onnxruntime kernels (engines/onnx_ops), which tests/engines/test_onnx_ops.py builds.
command -v cc >/dev/null 2>&1 || need+=(gcc libc6-dev)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
