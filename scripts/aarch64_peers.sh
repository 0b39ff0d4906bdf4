#!/usr/bin/env bash
# Assembles an arm64 Python 3.11 root for measuring LiteRT and onnxruntime under
# qemu-aarch64 (benchmarks/arm64_speed.py); safe to run again (each step is skipped
# when its result is already there).
#
#   bash scripts/aarch64_peers.sh [ROOT]      default ROOT: ~/.cache/edgeq/aarch64-peers
#
# ROOT/ gets Debian's arm64 python3.11 and the shared libraries it and the wheels need
# (apt-get download + dpkg -x: nothing is installed into the system), ROOT/site the
# aarch64 wheels (pip --platform: numpy, ai-edge-litert, onnxruntime), and
# ROOT/cpuinfo_shim.so, which serves a Cortex-A76 /proc/cpuinfo to LiteRT (qemu-user
# shows the host's x86 one, on which LiteRT's cpuinfo crashes).
# Run a peer with:
#   QEMU_LD_PREFIX=ROOT QEMU_SET_ENV=LD_PRELOAD=/cpuinfo_shim.so,PYTHONPATH=/site \
#     qemu-aarch64 -cpu cortex-a76 ROOT/usr/bin/python3.11 script.py
set -euo pipefail
cd "$(dirname "$0")"
ROOT=${1:-${EDGEQ_AARCH64_ROOT:-${XDG_CACHE_HOME:-$HOME/.cache}/edgeq/aarch64-peers}}
PY=${PYTHON:-python3}
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
# The wheels the benchmark measures: the same versions as edgeq's own environment.
WHEELS=(numpy==2.4.6 ai-edge-litert==2.3.0 onnxruntime==1.32.0)
# Debian packages whose files the interpreter and the wheels load (with their dependencies).
DEBS=(python3.11-minimal libpython3.11-stdlib libstdc++6 libgcc-s1 libgomp1)

mkdir -p "$ROOT"
for tool in qemu-aarch64 aarch64-linux-gnu-gcc; do
  command -v "$tool" >/dev/null || { echo "aarch64_peers: $tool is missing: run make setup" >&2; exit 1; }
done

if [ ! -x "$ROOT/usr/bin/python3.11" ]; then
  if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    echo "aarch64_peers: enabling arm64 package lists (dpkg --add-architecture arm64)"
    $SUDO dpkg --add-architecture arm64
  fi
  $SUDO apt-get update -qq
  debs=$(mktemp -d); chmod 0755 "$debs"  # apt-get download writes as user _apt
  # Every arm64 package the list depends on (real packages only; virtual ones start with <).
  pkgs=$(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
           --no-replaces --no-enhances "${DEBS[@]/%/:arm64}" | grep -E '^[a-z0-9]' | grep ':arm64$' | sort -u)
  (cd "$debs" && apt-get download -qq $pkgs)
  for deb in "$debs"/*.deb; do dpkg -x "$deb" "$ROOT"; done
  rm -rf "$debs"
  echo "aarch64_peers: unpacked $(echo "$pkgs" | wc -w) arm64 packages into $ROOT"
fi

stamp="$ROOT/site/.wheels-$(echo "${WHEELS[*]}" | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  rm -rf "$ROOT/site"
  $PY -m pip install -q --disable-pip-version-check --root-user-action=ignore --target "$ROOT/site" \
      --platform manylinux_2_28_aarch64 --platform manylinux_2_27_aarch64 \
      --platform manylinux_2_17_aarch64 --platform manylinux2014_aarch64 \
      --only-binary=:all: --python-version 3.11 --implementation cp "${WHEELS[@]}"
  touch "$stamp"
fi

if [ ! -f "$ROOT/cpuinfo_shim.so" ] || [ aarch64/cpuinfo_shim.c -nt "$ROOT/cpuinfo_shim.so" ]; then
  aarch64-linux-gnu-gcc -shared -fPIC -O2 -Wall -Wextra -Werror aarch64/cpuinfo_shim.c \
      -o "$ROOT/cpuinfo_shim.so" -ldl
fi

# The check that it all loads: one line from the emulated interpreter.
QEMU_LD_PREFIX="$ROOT" QEMU_SET_ENV="LD_PRELOAD=/cpuinfo_shim.so,PYTHONPATH=/site" \
  qemu-aarch64 -cpu cortex-a76 "$ROOT/usr/bin/python3.11" -c \
  'import platform, numpy, onnxruntime, ai_edge_litert.interpreter as l; print("aarch64_peers:", platform.machine(), "python", platform.python_version(), "numpy", numpy.__version__, "onnxruntime", onnxruntime.__version__, "ready")'
