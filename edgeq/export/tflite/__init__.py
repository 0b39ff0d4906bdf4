"""Export an `ai.edgeq` quantized graph to an int8 TFLite flatbuffer (no TensorFlow).

    from edgeq.export.tflite import export_tflite
    data = export_tflite(qgraph)                 # bytes, file identifier "TFL3"

The exported model is bit-identical to `run_reference(qgraph, feeds)` in LiteRT's
reference kernels and in TFLite Micro (tests/test_tflite_export.py): the quantizer's
scales are float32 and its multipliers are the ones TFLite derives from them
(edgeq.quantization.rules.multipliers), and the converters refuse any node whose multipliers
TFLite would derive differently (a graph quantized elsewhere), naming it.

Layout: edgeq is NCHW, the file is NHWC (layout.py); the metadata entry "edgeq_io"
(JSON) records, for every graph input and output, the permutation from the edgeq array
to the TFLite array, so runners can feed and return edgeq-shaped arrays
(edgeq.export.tflite_run). I/O stays raw int8 unless float_io=True, which adds QUANTIZE /
DEQUANTIZE at the edges (TFLite then rounds half away from zero where edgeq rounds half
to even: ties can differ by one step).
One module per op family: ops_conv, ops_eltwise, ops_pool, ops_shape, ops_softmax,
ops_lut (QLut / QPrelu as an exact table GATHER); docs/tflite.md lists what is refused.
"""
from __future__ import annotations

import json

from edgeq.export.tflite.convert import METADATA_KEY, Exporter, refuse
from edgeq.ir import Graph
from edgeq.ops import REGISTRY, holds, implements
from edgeq.ops.registry import import_submodules

import_submodules(__name__, __path__)  # the ops_*.py converters register themselves

SUPPORTED_OPS = sorted(REGISTRY.implemented("tflite"))

# The TFLite operators Vela (5.x, Ethos-U55/U65) places on the NPU, among those the
# converters write (a subset of Vela's supported-operator list; tests/test_npu.py checks it
# against the installed Vela). CAST, GATHER and PADV2 run on the CPU beside the NPU.
NPU_BUILTINS = frozenset({
    "ADD", "AVERAGE_POOL_2D", "CONCATENATION", "CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED",
    "HARD_SWISH", "LOGISTIC", "MAXIMUM", "MAX_POOL_2D", "MINIMUM", "MUL", "PAD", "QUANTIZE",
    "RESHAPE", "SOFTMAX", "TANH", "TRANSPOSE"})


def _derive_npu() -> None:
    """The npu stage, derived: an op runs on the NPU when its own operator (the first of
    its converter's `builtins`) does; `cpu` names the others it may write that Vela leaves
    on the CPU (e.g. PADV2 for a max pool's explicit padding)."""
    for op, (impl,) in REGISTRY.implemented("tflite").items():
        builtins = impl.meta["builtins"]
        if builtins[0] in NPU_BUILTINS:
            implements("npu", op, builtins=tuple(b for b in builtins if b in NPU_BUILTINS),
                       cpu=tuple(b for b in builtins if b not in NPU_BUILTINS))(impl.fn)


_derive_npu()


def export_tflite(qgraph: Graph, float_io: bool = False, gemm_as: str = "conv",
                  lut_as: str = "gather") -> bytes:
    """Quantized graph -> .tflite bytes. Raises EdgeqError naming the node for anything
    that cannot be exported bit-exactly.

    float_io: float32 model I/O with QUANTIZE/DEQUANTIZE at the edges (default raw int8).
    gemm_as: "conv" writes QGemm as a 1x1 CONV_2D (exact in LiteRT and TFLM), "fc" as
    FULLY_CONNECTED (exact in TFLM only: LiteRT's FC rounds once; see ops_conv).
    lut_as: "gather" writes QLut / QPrelu as CAST + ADD + GATHER of edgeq's own table
    (exact; CPU ops on an NPU), "refuse" raises EdgeqError for them (see ops_lut)."""
    if gemm_as not in ("conv", "fc"):
        raise ValueError("gemm_as must be 'conv' or 'fc'")
    if lut_as not in ("gather", "refuse"):
        raise ValueError("lut_as must be 'gather' or 'refuse'")
    refuse_narrow_weights(qgraph)
    return Exporter(qgraph, float_io=float_io, gemm_as=gemm_as, lut_as=lut_as).run()


def refuse_narrow_weights(qgraph: Graph) -> None:
    """int4 (any < 8-bit) weights are not exported: TFLite's INT4 tensor type is packed
    differently and only some builtin kernels read it, so edgeq cannot promise the same
    bytes in LiteRT, TFLite Micro and Vela as it does for int8. Refuse, naming the layer."""
    for node in qgraph.nodes:
        if not holds("weighted", node) or len(node.inputs) < 2:
            continue
        t = qgraph.tensors.get(node.inputs[1])
        if t is not None and t.q is not None and t.q.bits < 8:
            raise refuse(node, f"its weights are {t.q.bits}-bit; the TFLite export writes "
                               "int8 weights only (TFLite's INT4 tensors are not exported)",
                         "compile with --weight-bits 8 for tflite / ethos-u targets (or give "
                         "this layer 8 bits), or use a C target (host, cortex-m*) for int4")


def read_io_metadata(model: bytes) -> dict | None:
    """The "edgeq_io" metadata of an exported model (None for other .tflite files)."""
    import tflite
    m = tflite.Model.GetRootAs(model, 0)
    for i in range(m.MetadataLength()):
        md = m.Metadata(i)
        if md.Name().decode() == METADATA_KEY:
            return json.loads(m.Buffers(md.Buffer()).DataAsNumpy().tobytes())
    return None


__all__ = ["export_tflite", "read_io_metadata", "SUPPORTED_OPS", "NPU_BUILTINS"]
