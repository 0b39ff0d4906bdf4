"""Target `tflite`: an int8 .tflite flatbuffer, run by LiteRT's reference kernels.

build: write model.tflite from the quantized graph every target shares (DIR/model.q.onnx:
its scales are float32 and its multipliers are the ones TFLite derives from them, so the
file computes what the C targets compute), load it in LiteRT (BUILTIN_REF) and in TFLite
Micro, run the test vectors through both and require the integer reference's bytes;
report the file size and TFLM's measured arena.
run: LiteRT BUILTIN_REF (bit-identical to TFLite Micro's reference kernels).
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from edgeq.errors import EdgeqError
from edgeq.export.tflite import export_tflite
from edgeq.export.tflite_run import run_litert, run_tflm, tflm_allocations
from edgeq.options import BuildOptions
from edgeq.reference.interpreter import run_reference_streamed

MODEL_FILE = "model.tflite"


def op_histogram(data: bytes) -> dict[str, int]:
    """Builtin operator name -> count in a .tflite file."""
    import tflite
    from tflite.BuiltinOperator import BuiltinOperator
    names = {v: k for k, v in vars(BuiltinOperator).items() if not k.startswith("_")}
    m = tflite.Model.GetRootAs(data, 0)
    sg = m.Subgraphs(0)
    codes = [m.OperatorCodes(sg.Operators(i).OpcodeIndex()).BuiltinCode() for i in range(sg.OperatorsLength())]
    return dict(Counter(names.get(c, str(c)) for c in codes))


def export_build(qgraph, out_dir: Path, report: dict, gemm_as: str = "conv") -> bytes:
    """Shared by the tflite and NPU targets: model.tflite in out_dir."""
    data = export_tflite(qgraph, gemm_as=gemm_as)
    (Path(out_dir) / MODEL_FILE).write_bytes(data)
    report["tflite"] = {"file": MODEL_FILE, "ops": op_histogram(data)}
    report["tflite_bytes"] = len(data)
    return data


def verify(qgraph, data: bytes, vectors, report: dict) -> None:
    """Both interpreters load the file and reproduce the integer reference on the vectors."""
    if not vectors:
        rng = np.random.default_rng(0)
        vectors = {n: rng.integers(-128, 128, (2,) + tuple(qgraph.tensors[n].shape[1:])).astype(np.int8)
                   for n in qgraph.inputs}
    expected = run_reference_streamed(qgraph, vectors, progress=False)
    result = {"vectors": int(len(next(iter(vectors.values()))))}
    for runner in (run_litert, run_tflm):
        got = runner(data, vectors)
        bad = [n for n in qgraph.outputs if not np.array_equal(got[n], expected[n])]
        result[runner.__name__.removeprefix("run_")] = "bit-identical" if not bad else f"differs on {bad}"
        if bad:
            report["self_check"] = result
            raise EdgeqError(f"the exported model differs from the integer reference in "
                             f"{runner.__name__.removeprefix('run_')} on outputs {bad}",
                             "report this as an edgeq bug, with the model")
    result["passed"] = True
    report["self_check"] = result


class TfliteTarget:
    name = "tflite"
    stages = ("reference", "tflite")  # checked against the reference in LiteRT and TFLM (edgeq ops)
    description = "int8 .tflite flatbuffer (NHWC), run by LiteRT reference kernels = TFLite Micro"

    def build(self, qgraph, out_dir: Path, report: dict, options: BuildOptions | dict | None = None) -> None:
        test_vectors = BuildOptions.of(options).test_vectors
        data = export_build(qgraph, out_dir, report)
        verify(qgraph, data, test_vectors, report)
        alloc = tflm_allocations(data)
        report.update(
            tflm_arena_bytes=alloc["total"],
            flash_bytes=len(data),
            arena_bytes=alloc["total"],
            sram_bytes=alloc["total"],
            runner="LiteRT BUILTIN_REF (ai-edge-litert)",
        )
        report["tflite"]["tflm_arena"] = {**alloc, "note": "TFLM host build (64-bit pointers, "
                                          "reference kernels): the tail is smaller on a 32-bit MCU"}

    def run(self, out_dir: Path, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        path = Path(out_dir) / MODEL_FILE
        if not path.is_file():
            raise EdgeqError(f"{path} is missing", f"rebuild with `edgeq compile ... --target tflite -o {out_dir}`")
        return run_litert(path, feeds)

    def profile(self, out_dir: Path, device: str = "host") -> dict:
        raise EdgeqError("profile is not supported for this target (tflite)",
                         "compile for host or a cortex-m target to profile generated code")

    def flash(self, out_dir: Path, probe: str, dry_run: bool = False) -> dict:
        raise EdgeqError("flash is not supported for this target (tflite): it builds a model file, "
                         "not firmware", "link model.tflite into a TFLite Micro application")


TARGETS = [TfliteTarget()]
