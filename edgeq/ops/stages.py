"""The per-op stages, in data-flow order. Each stage's package registers its
implementations with `@implements(stage, op)` when it is imported; a stage listed with
expected=False is open for the branch that builds it (its column in `edgeq ops` is empty
until then, and the completeness test does not ask for it yet).

How a stage plugs in (docs/architecture.md, "adding a stage"):
- tvm (issue 18): edgeq/lower_tvm/lower.py registers `@implements("tvm", "QConv")` for each
  integer op it lowers; the arm64 target picks `--lowering tvm|c` and falls back to the C
  kernel for an op without a TVM one (or refuses, naming it: lookup's error).
- backward (issue 19): the integer training reference registers
  `@implements("backward", "QConv")` (the rule for the gradients of one op's inputs and
  parameters); the training compile walks the graph backwards calling lookup("backward", node).
"""
from __future__ import annotations

from edgeq.ops.registry import REGISTRY, Stage

_C_FIX = "use --target reference or tflite, or a model without this op"

IMPORT = REGISTRY.add_stage(Stage(
    "import", "onnx", "ONNX importer", "replace the op in the model before export",
    "edgeq.importer.load",  # registers every converter module (converters, select, rnn, convtranspose)
    emits_into="float"))
TFLITE_IMPORT = REGISTRY.add_stage(Stage(
    "tflite-import", "tflite", "TFLite importer",
    "edgeq imports the int8 TFLite builtins listed in docs/ops.md; run this model with TFLite Micro",
    "edgeq.tflite_import", emits_into="integer", expected=False,
    note="keyed by TFLite builtin: `edgeq compile model.tflite` takes an int8 model as it is"))
FLOAT = REGISTRY.add_stage(Stage(
    "float", "float", "float executor (torch)", "run the float passes on a canonical float graph",
    "edgeq.floatexec.executor"))
QUANTIZE = REGISTRY.add_stage(Stage(
    "quantize", "float", "quantization rule", "run the float passes first (edgeq compile does)",
    "edgeq.quantization.rules", emits_into="integer"))
REFERENCE = REGISTRY.add_stage(Stage(
    "reference", "integer", "integer reference kernel", "quantize with edgeq.quantization.quantize",
    "edgeq.reference"))
C = REGISTRY.add_stage(Stage(
    "c", "integer", "C kernel", _C_FIX, "edgeq.codegen", variants=True, variant_key="kernel",
    note="one entry per kernel variant (weight bits, ISA, layout); the build options pick one"))
TFLITE = REGISTRY.add_stage(Stage(
    "tflite", "integer", "TFLite converter",
    "use a C target (host, cortex-m*) for this model, or change the model so the op is not needed",
    "edgeq.export.tflite"))
NPU = REGISTRY.add_stage(Stage(
    "npu", "integer", "Ethos-U NPU operator", "the op runs on the CPU beside the NPU (Vela's fallback)",
    "edgeq.export.tflite", expected=False,
    note="derived: the TFLite operators its converter writes that Vela maps to the NPU (CPU: the others)"))
TVM = REGISTRY.add_stage(Stage(
    "tvm", "integer", "TVM kernel", "use --lowering c", "edgeq.lower_tvm", expected=False,
    note="arm64 target (issue 18); ops without one run their C kernel"))
BACKWARD = REGISTRY.add_stage(Stage(
    "backward", "integer", "integer backward rule", "train only layers after this op (a smaller --train last:N)",
    "edgeq.training.rules", expected=False, note="issue 19: the integer training reference"))
C_BACKWARD = REGISTRY.add_stage(Stage(
    "c-backward", "integer", "C backward kernel", "train only layers after this op (a smaller --train last:N), "
    "or train with the Python reference (edgeq.training)", "edgeq.codegen.train", expected=False,
    note="issue 19: the training step of the C targets"))
