"""edgeq: compile float ONNX models to integer-only code for edge devices.

The stages, each callable alone:

    from edgeq.importer.load import import_onnx            # ONNX -> float IR graph
    from edgeq.floatexec.executor import run_float         # float execution (torch)
    from edgeq.calibration.calibrate import calibrate      # activation ranges
    from edgeq.quantization.quantize import quantize       # float graph -> ai.edgeq integer graph
    from edgeq.reference.interpreter import run_reference  # the golden integer semantics
    from edgeq.planning.memory_plan import plan_memory     # static arena
    from edgeq.targets import get_target                   # build / run / profile / flash

`edgeq.compile(...)` chains them like `edgeq compile` does.
"""
__version__ = "0.1.0"


def compile(model, target: str = "reference", out_dir=None, calib=None, **options):
    """Python form of `edgeq compile`; returns a CompileResult (graphs + report)."""
    from edgeq.driver.pipeline import CompileOptions, compile_model  # entry point
    return compile_model(model, CompileOptions(target=target, **options), out_dir, calib,
                         log=lambda m: None)
