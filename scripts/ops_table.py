"""Write docs/ops.md: the ONNX ops edgeq compiles, beside TFLite Micro's and onnxruntime's.

    python scripts/ops_table.py            # rewrites docs/ops.md
    python scripts/ops_table.py --check    # exit 1 if docs/ops.md is not what this writes

edgeq's columns are read from the op registry (edgeq.ops, every stage loaded as `edgeq ops`
loads them): the ONNX importer's converters and the canonical ops they emit, the
quantization rules and the integer ops they emit, the integer reference, C kernels and
TFLite converters, the TFLite importer's builtins.
onnxruntime's column is read from the installed package (quantize_static's default op
list: onnxruntime.quantization.registry). TFLite Micro's column is the builtin the TFLite
converter writes for each ONNX op (BUILTINS below, from the TFLite schema) checked against
the kernels TFLite Micro's MicroMutableOpResolver registers (TFLM_KERNELS, read from
tensorflow/lite/micro/micro_mutable_op_resolver.h at TFLM_COMMIT).
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "ops.md"

TFLM_COMMIT = "90b983c2b3f1480642e040bbd2ddb37b998f3424 (2026-08-20)"
# MicroMutableOpResolver::Add<Name>() at TFLM_COMMIT, as builtin names
TFLM_KERNELS = set("""ABS ADD ADD_N ARG_MAX ARG_MIN ASSIGN_VARIABLE AVERAGE_POOL_2D BATCH_MATMUL
BATCH_TO_SPACE_ND BROADCAST_ARGS BROADCAST_TO CALL_ONCE CAST CEIL CONCATENATION CONV_2D COS CUMSUM
DEPTH_TO_SPACE DEPTHWISE_CONV_2D DEQUANTIZE DIV DYNAMIC_UPDATE_SLICE EMBEDDING_LOOKUP ELU EQUAL EXP
EXPAND_DIMS FILL FLOOR FLOOR_DIV FLOOR_MOD FULLY_CONNECTED GATHER GATHER_ND GREATER GREATER_EQUAL
HARD_SWISH IF L2_NORMALIZATION L2_POOL_2D LEAKY_RELU LESS LESS_EQUAL LOG LOGICAL_AND LOGICAL_NOT
LOGICAL_OR LOGISTIC LOG_SOFTMAX MAXIMUM MAX_POOL_2D MIRROR_PAD MEAN MINIMUM MUL NEG NOT_EQUAL PACK PAD
PADV2 PRELU QUANTIZE READ_VARIABLE REDUCE_ALL REDUCE_MAX REDUCE_MIN RELU RELU6 RESHAPE RESIZE_BILINEAR
RESIZE_NEAREST_NEIGHBOR REVERSE_V2 ROUND RSQRT SELECT_V2 SHAPE SIN SLICE SOFTMAX SPACE_TO_BATCH_ND
SPACE_TO_DEPTH SPLIT SPLIT_V SQUEEZE SQRT SQUARE SQUARED_DIFFERENCE STRIDED_SLICE SUB SUM SVDF TANH
TRANSPOSE_CONV TRANSPOSE UNIDIRECTIONAL_SEQUENCE_LSTM UNPACK VAR_HANDLE WHILE ZEROS_LIKE""".split())

# ONNX op -> the TFLite builtin(s) a converter writes for it (the usual lowering; a MatMul
# of two activations is BATCH_MATMUL, of a constant FULLY_CONNECTED)
BUILTINS = {
    "Add": "ADD", "AveragePool": "AVERAGE_POOL_2D", "BatchNormalization": "(folded into the conv)",
    "Cast": "CAST", "Clip": "RELU6 / RELU_N1_TO_1 / MINIMUM+MAXIMUM", "Concat": "CONCATENATION",
    "Conv": "CONV_2D / DEPTHWISE_CONV_2D", "ConvTranspose": "TRANSPOSE_CONV", "Div": "DIV",
    "Dropout": "(removed)", "Exp": "EXP", "Flatten": "RESHAPE", "GRU": "(unrolled: FULLY_CONNECTED, LOGISTIC, TANH, MUL, ADD)",
    "Gather": "GATHER", "Gemm": "FULLY_CONNECTED", "GlobalAveragePool": "MEAN / AVERAGE_POOL_2D",
    "GlobalMaxPool": "MAX_POOL_2D / REDUCE_MAX", "HardSigmoid": "(no builtin: composed of elementwise ops)",
    "HardSwish": "HARD_SWISH", "Identity": "(removed)", "LSTM": "UNIDIRECTIONAL_SEQUENCE_LSTM",
    "LeakyRelu": "LEAKY_RELU", "MatMul": "FULLY_CONNECTED / BATCH_MATMUL", "MaxPool": "MAX_POOL_2D",
    "Mul": "MUL", "PRelu": "PRELU", "Pad": "PAD / PADV2 / MIRROR_PAD", "Pow": "POW (no TFLM kernel) / SQUARE / MUL",
    "ReduceMax": "REDUCE_MAX", "ReduceMean": "MEAN", "Relu": "RELU", "Reshape": "RESHAPE",
    "Resize": "RESIZE_NEAREST_NEIGHBOR / RESIZE_BILINEAR", "Sigmoid": "LOGISTIC", "Slice": "SLICE / STRIDED_SLICE",
    "Softmax": "SOFTMAX", "Split": "SPLIT / SPLIT_V", "Sqrt": "SQRT", "Squeeze": "SQUEEZE / RESHAPE",
    "Sub": "SUB", "Tanh": "TANH", "Transpose": "TRANSPOSE", "Unsqueeze": "EXPAND_DIMS / RESHAPE",
}
# ONNX ops the table lists although edgeq does not import them: the ones issue 20 names
# (models users deploy need them) and their neighbours
NOT_YET = ["ConvTranspose", "Exp", "GRU", "Gather", "LSTM", "Pow", "ReduceMax", "Resize", "Slice", "Split", "Sqrt"]


def load_stages() -> None:
    """Import every stage that registers (the registry imports none itself)."""
    from edgeq.driver.ops_table import load_stages as load
    load()


def integer_ops_of(float_op: str) -> list[str] | None:
    """The ai.edgeq ops the quantization rule of `float_op` declares it writes (None: no rule)."""
    from edgeq.ops import implementations
    impls = implementations("quantize", float_op)
    return list(impls[0].meta.get("emits", ())) if impls else None


def exported(int_op: str) -> bool:
    from edgeq.ops import implementations
    return bool(implementations("tflite", int_op))


def edgeq_cells(onnx_op: str) -> tuple[str, str]:
    """(imports as -> int8 ops, targets) for one ONNX op."""
    from edgeq.ops import implementations
    impls = implementations("import", onnx_op)
    if not impls:
        return "-", "-"
    canon = [c for c in impls[0].meta.get("emits", ()) if c not in ("Reshape", "Identity") or onnx_op in
             ("Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Dropout", "Cast")]
    int_ops: list[str] = []
    missing = []
    for c in canon:
        q = integer_ops_of(c)
        if q is None and c not in ("Identity", "BatchNormalization"):
            missing.append(c)
        int_ops += [o for o in q or [] if o not in int_ops]
    if onnx_op == "BatchNormalization":
        return "folded into the conv before it (or Mul + Add)", "all"
    if not int_ops:
        return " ".join(canon) + (" (removed by the float passes)" if not missing else " (no int8 rule)"), "all" if not missing else "-"
    targets = ["reference", "C (host, cortex-m*)"]
    from edgeq.ops.table import GAPS
    passed = [o for o in int_ops if not exported(o) and ("tflite", o) in GAPS]  # never reach a TFLite target
    if all(exported(o) for o in int_ops if o not in passed):
        targets.append("tflite (ethos-u through Vela)" + (f" (int8 state: without {', '.join(passed)})" if passed else ""))
    return f"{' '.join(canon)} -> {', '.join(int_ops)}", ", ".join(targets)


def tflm_cell(onnx_op: str) -> str:
    from edgeq.tflite_import import supported_builtins
    text = BUILTINS.get(onnx_op, "?")
    names = re.findall(r"\b[A-Z][A-Z0-9_]+\b", text)
    have = [n for n in names if n in TFLM_KERNELS]
    if not names or text.startswith("("):
        return text
    imported = sorted(set(have) & set(supported_builtins()))
    note = f"; edgeq imports {', '.join(imported)}" if imported else ""
    if len(have) == len(names):
        return f"{text}{note}"
    return f"{text} (TFLM kernels: {', '.join(have) or 'none'}){note}"


def ort_cell(onnx_op: str) -> str:
    from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry
    fmts = [f for f, reg in (("QDQ", QDQRegistry), ("QOperator", QLinearOpsRegistry)) if onnx_op in reg]
    default = onnx_op in set(QDQRegistry) | set(QLinearOpsRegistry)
    if not default:
        return "float only"
    return "int8 (" + ", ".join(fmts) + ")" if fmts else "int8"


def render() -> str:
    import onnxruntime
    from edgeq.ops import REGISTRY, table
    from edgeq.tflite_import import supported_builtins
    load_stages()
    onnx_ops = sorted(set(REGISTRY.implemented("import")) | set(NOT_YET))
    lines = [
        "# Supported operators: edgeq beside TFLite Micro and onnxruntime",
        "",
        "Generated by `python scripts/ops_table.py` (do not edit by hand; `--check` fails when",
        "this file is stale). edgeq's columns come from its op registry (as `edgeq ops`, which",
        "prints every op x stage and op x target). The peers' columns:",
        "",
        f"- **TFLite Micro**: the builtin a TFLite converter writes for the ONNX op, and whether",
        f"  TFLite Micro registers a kernel for it (`MicroMutableOpResolver` at commit {TFLM_COMMIT}).",
        "  A kernel may still lack int8 for some parameters; edgeq's tests run these int8 builtins",
        "  in TFLite Micro or in LiteRT's reference kernels (bit-identical to it): CONV_2D,",
        "  DEPTHWISE_CONV_2D, FULLY_CONNECTED, ADD, MUL, AVERAGE_POOL_2D, MAX_POOL_2D, SOFTMAX,",
        "  RESHAPE, PAD, CONCATENATION, HARD_SWISH, LOGISTIC, TANH, PRELU, QUANTIZE, TRANSPOSE and",
        "  GATHER.",
        f"- **onnxruntime {onnxruntime.__version__}**: whether `quantize_static` quantizes the op by default",
        "  (`onnxruntime.quantization.registry`: the QDQ and QOperator op lists; QOperator means a",
        "  QLinear* int8 kernel). Every other op runs in float on its CPU provider.",
        "",
        "edgeq: *imports as* is the canonical float op(s) the importer writes and the `ai.edgeq`",
        "integer op(s) the quantizer makes of them (docs/semantics.md); *targets* lists where",
        "those integer ops run. `-` means refused with one line naming the op. A Relu or Clip",
        "after a Conv, Gemm, Add or Mul is fused into that op's output clamp; QLut is its form",
        "where nothing can take it.",
        "",
        "| ONNX op | edgeq: imports as -> int8 ops | edgeq targets | TFLite Micro builtin | onnxruntime quantize_static |",
        "|---|---|---|---|---|",
    ]
    for op in onnx_ops:
        imports, targets = edgeq_cells(op)
        lines.append(f"| {op} | {imports} | {targets} | {tflm_cell(op)} | {ort_cell(op)} |")
    lines += [
        "",
        "## Integer ops by stage",
        "",
        "Each `ai.edgeq` op (docs/semantics.md) and its implementations: the integer reference,",
        "the C kernels (per weight width), the TFLite export's builtins.",
        "",
    ]
    header, rows = table.rows("integer")
    keep = [i for i, h in enumerate(header) if h in ("op", "reference", "c")]
    lines.append("| " + " | ".join([header[i] for i in keep] + ["tflite export"]) + " |")
    lines.append("|" + "---|" * (len(keep) + 1))
    for r in rows:
        lines.append("| " + " | ".join([r[i] for i in keep] + ["✓" if exported(r[0]) else "-"]) + " |")
    lines += [
        "",
        "## TFLite builtins `edgeq compile model.tflite` imports",
        "",
        "An int8 .tflite model compiles as it is (docs/tflite.md): "
        + ", ".join(supported_builtins()) + ". Any other builtin is refused, naming it.",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="fail if docs/ops.md is stale")
    args = ap.parse_args()
    text = render()
    if args.check:
        if not DOC.is_file() or DOC.read_text() != text:
            print(f"{DOC} is stale: run python scripts/ops_table.py", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(text)
    print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
