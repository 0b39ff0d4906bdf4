"""TVM lowering for ARM application CPUs: ai.edgeq integer ops as TVM-generated kernels.

The "tvm" stage of the op registry (issue 18); the `arm64` target (targets/arm64.py)
links these kernels under edgeq's own model.c:

    from edgeq.lower_tvm.cpus import get_cpu
    from edgeq.lower_tvm.lower import lower_node
    kernel = lower_node(node, qgraph, get_cpu("cortex-a76"))
    kernel.prototype()      # "void eqtvm_qconv_<hash>(const int8_t *x, const int8_t *w, ...);"
    kernel.obj              # freestanding aarch64 object defining only that function
    kernel.consts()         # pre-packed weights and per-channel arrays to store beside it

Activations are NHWC inside these kernels; see docs/arm64.md for the layout contract,
the whole-model lowering (edgeq.lower_tvm.model) and the measurements. Generating a
kernel needs the `tvm` extra (apache-tvm 0.27.0.post1 with apache-tvm-ffi 0.1.14.post1);
importing this package does not (TVM is imported when a kernel is built).
"""
from edgeq.lower_tvm import lower  # noqa: F401  (registers the "tvm" stage's kernels)
