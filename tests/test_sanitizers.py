"""The C runtime and generated models under AddressSanitizer and UBSan (`make sanitize`).

The kernel tests (every parametrised grid and the fuzzed-shape pass) run again in a child
pytest whose runtime library (tests/_cbuild.py, EDGEQ_SANITIZE=1) is built with
-fsanitize=address,undefined -fno-sanitize-recover=all, with the ASan runtime preloaded
into Python; any report ends the child with a non-zero status. The three Fashion-MNIST
models' generated model.c, runtime and host main are built with the same flags and run
their embedded vectors and a raw batch. Canaries first: an out-of-bounds kernel call and
an oversized shift must kill the child, or the runs would prove nothing.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from . import _cbuild as cb

REPO = Path(__file__).resolve().parents[1]
KERNEL_TESTS = ["tests/test_c_kernels.py", "tests/test_c_kernels_pool_softmax.py",
                "tests/test_c_kernels_fuzz.py", "tests/test_int4.py::test_conv2d_s4",
                "tests/test_int4.py::test_conv2d_s4_no_bias_and_bad_args",
                "tests/test_int4.py::test_fully_connected_s4"]
HOST_SANITIZE = ["-O2", "-std=c99", "-Wall", "-Wextra", "-Werror", "-g", *cb.SANITIZE_FLAGS]

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="host gcc is missing")


def sanitizer_env() -> dict[str, str]:
    asan = subprocess.run(["gcc", "-print-file-name=libasan.so"], capture_output=True, text=True).stdout.strip()
    if not Path(asan).is_file():
        pytest.skip("gcc's AddressSanitizer runtime (libasan) is not installed")
    # Python's own allocations outlive it by design: leak reports would be noise
    return dict(os.environ, EDGEQ_SANITIZE="1", LD_PRELOAD=asan, ASAN_OPTIONS="detect_leaks=0",
                UBSAN_OPTIONS="print_stacktrace=1")


CANARY = """
import sys
import numpy as np
from tests import _cbuild as cb
x, table, y = np.zeros(8, np.int8), np.zeros(256, np.int8), np.zeros(8, np.int8)
if sys.argv[1] == "address":
    cb.call("eq_lut_s8", 9, x, table, y)  # one byte past x and y
else:
    cb.call("shim_rdbp", 1, cb.i32([1]), cb.i32([40]), cb.i32([0]))  # 1 << 40 in a uint32
print("survived")
"""


@pytest.mark.parametrize("kind,report", [("address", "heap-buffer-overflow"), ("undefined", "shift exponent 40")])
def test_sanitizers_catch_a_planted_bug(kind, report):
    res = subprocess.run([sys.executable, "-c", CANARY, kind], cwd=REPO, env=sanitizer_env(),
                         capture_output=True, text=True, timeout=300)
    assert res.returncode != 0 and "survived" not in res.stdout, res.stdout + res.stderr
    assert report in res.stderr, res.stderr[-2000:]


def test_kernel_grid_and_fuzz_under_sanitizers():
    res = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rs", *KERNEL_TESTS],
                         cwd=REPO, env=sanitizer_env(), capture_output=True, text=True, timeout=1800)
    summary = res.stdout.strip().splitlines()[-1] if res.stdout.strip() else ""
    print("sanitized kernel tests:", summary)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    passed = int(re.search(r"(\d+) passed", summary).group(1))
    assert passed >= 250 and not re.search(r"skipped|failed|error", summary), summary


@pytest.mark.parametrize("model", ["dscnn", "mobilenetv2", "resnet8"])
def test_fmnist_model_under_sanitizers(model, tmp_path):
    """The generated C of a real model: its 16 embedded vectors (self-check against the
    integer reference) and a raw batch of 16 more, all under the sanitizers."""
    from edgeq.reference.interpreter import run_reference
    from edgeq.models.fmnist import available, load_fmnist, preprocess
    from edgeq.models.registry import model_path
    from edgeq.targets import c_project as cp
    from edgeq.targets.host import HostTarget
    from edgeq.driver.pipeline import CompileOptions, compile_model
    if not available():
        pytest.skip("Fashion-MNIST is not installed (make setup)")
    images, _ = load_fmnist("test")
    x = preprocess(images[:32])
    opts = CompileOptions(target="host", test_vectors=16, int_bias_correction=False, progress=False)
    res = compile_model(model_path(model), opts, tmp_path / "out", calib=x[:16], log=lambda _: None)
    out = tmp_path / "out"
    HostTarget()._compile(out, out / "src", cflags=HOST_SANITIZE)
    run = subprocess.run([str(out / "model_host")], capture_output=True, text=True, timeout=300,
                         env=dict(os.environ, UBSAN_OPTIONS="print_stacktrace=1"))
    assert run.returncode == 0, run.stderr[-3000:]
    parsed = cp.parse_lines(run.stdout, cp.load_info(out, "host")["io"])
    assert parsed["runs"] == 16 and not parsed["mismatches"] and not parsed["errors"]
    from edgeq.reference.interpreter import quantize_inputs
    feeds = quantize_inputs(res.qgraph, {res.qgraph.inputs[0]: x[16:]})
    got = HostTarget().run(out, feeds)
    want = run_reference(res.qgraph, feeds)
    assert all(np.array_equal(got[k], want[k]) for k in res.qgraph.outputs)
