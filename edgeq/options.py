"""Typed options: every compile setting has one field, one default and one check, here.

    opts = CompileOptions(target="cortex-m7", weight_bits=4, calib_percentile=99.999)

`CompileOptions` is what the CLI and `edgeq.compile(...)` build: constructing it checks every
setting that can be checked without the model (an EdgeqError with the flag's name and the
fix), before any work. The stages then receive the typed view they need, already checked:

    opts.calibration -> CalibrationOptions   (edgeq.calibration.calibrate)
    opts.passes      -> PassOptions          (PassContext.options: the float passes read fields, no .get)
    opts.build(vectors) -> BuildOptions      (Target.build: test vectors, scratch policy, budgets)

The defaults' reasons live beside the code they tune (e.g. edgeq/calibration/calibrate.py
for the percentile method); the values live here.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgeq.errors import EdgeqError

GRANULARITIES = ("per-channel", "per-tensor")
CALIB_METHODS = ("minmax", "percentile", "mse")
DEFAULT_CALIB_METHOD = "percentile"
DEFAULT_PERCENTILE = 99.99
CALIB_LIMIT = 512
WEIGHT_ROUNDINGS = ("gptq", "nearest")
SCRATCH_POLICIES = ("fast", "fit", "always")
BITS_SENSITIVITIES = ("measured", "hawq")
CLE_RELU6 = ("bounded", "relu", "skip")
BIAS_CORRECTION_MODES = ("auto", "empirical", "data-free")
CPU_TARGETS = ("arm64",)   # the targets that take --cpu and --lowering (targets/arm64.py)
LOWERINGS = ("tvm", "c")
STATE_BITS = (16, 8)
_UNITS = {"": 1, "b": 1, "kb": 1000, "kib": 1024, "mb": 1000 ** 2, "mib": 1024 ** 2,
          "k": 1000, "m": 1000 ** 2}


def _tflite_based(target: str) -> bool:
    return target == "tflite" or target.startswith("ethos-u")


def _one_of(value, allowed: tuple, what: str):
    if value not in allowed:
        raise EdgeqError(f"unknown {what} {value!r}", f"use {' or '.join(map(str, allowed))}")
    return value


def parse_budget(text, reference: float, what: str) -> float:
    """A number with an optional unit, or a percentage of `reference` (the all-int8 value)."""
    s = str(text).strip().lower().replace(" ", "").replace("_", "")
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(%|[a-z]*)", s)
    if not m or (m.group(2) not in _UNITS and m.group(2) != "%"):
        raise EdgeqError(f"cannot read {what} {text!r}",
                         "write bytes/instructions as 200000, 200KB, 196KiB, 1.5M, or a share of "
                         "all-int8 as 60%")
    v = float(m.group(1))
    return reference * v / 100 if m.group(2) == "%" else v * _UNITS[m.group(2)]


# A part's memory is counted in binary units, as datasheets do: 512K = 512 KB = 524,288 bytes.
_MEMORY_UNITS = {"": 1, "b": 1, "k": 1 << 10, "kb": 1 << 10, "kib": 1 << 10,
                 "m": 1 << 20, "mb": 1 << 20, "mib": 1 << 20}


def parse_memory_size(text, what: str) -> int:
    """A part's memory size in bytes: 524288, 512K, 512KB, 1M, 1.5MB (K = 1024 bytes)."""
    s = str(text).strip().lower().replace(" ", "").replace("_", "")
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([a-z]*)", s)
    if not m or m.group(2) not in _MEMORY_UNITS or float(m.group(1)) * _MEMORY_UNITS[m.group(2)] < 1:
        raise EdgeqError(f"cannot read {what} {text!r}",
                         "write a size in bytes as 524288, 512K or 1M (K = 1024 bytes, as datasheets count)")
    return int(float(m.group(1)) * _MEMORY_UNITS[m.group(2)])


@dataclass(frozen=True)
class CalibrationOptions:
    """How activation ranges are found. `percentile` is the percentile method's upper
    percentile when given explicitly (None: DEFAULT_PERCENTILE)."""
    method: str = DEFAULT_CALIB_METHOD
    percentile: float | None = None

    def __post_init__(self):
        method = self.method or DEFAULT_CALIB_METHOD  # None: the measured default
        object.__setattr__(self, "method", method)
        if method not in CALIB_METHODS:
            raise EdgeqError(f"unknown calibration method {method!r}", f"use one of {', '.join(CALIB_METHODS)}")
        p = self.percentile
        if p is None:
            return
        if method != "percentile":
            raise EdgeqError(f"a percentile ({p:g}) was given for calibration method {method!r}",
                             "drop --calib-percentile, or use --calib-method percentile")
        if not 50.0 < float(p) <= 100.0:
            raise EdgeqError(f"calibration percentile {p:g} is outside (50, 100]",
                             f"give the upper percentile of each range, e.g. {DEFAULT_PERCENTILE:g} "
                             "(the default) or 99.999")

    @property
    def upper_percentile(self) -> float:
        return DEFAULT_PERCENTILE if self.percentile is None else float(self.percentile)

    def describe(self, samples: int) -> dict:
        """report.json's options.calibration entry."""
        info: dict[str, Any] = {"method": self.method, "samples": int(samples)}
        if self.method == "percentile":
            info["percentile"] = self.upper_percentile
        return info


@dataclass(frozen=True)
class PassOptions:
    """What the float passes read from PassContext.options (tests and benchmarks may give
    a dict of these names instead; PassContext turns it into this, checking the names).

    weight_granularity, weight_bits: the quantization the passes prepare for (bias
    correction rounds exactly as the quantizer will; "auto" bits are planned after the
    float passes, so those see 8, and GPTQ rounding sees the plan). calibration: what the
    DFQ guard calibrates with. cle_relu6, cle_max_iter, cle_tol: equalize_cross_layer.
    absorb_padded: absorb_high_bias. bias_correction_mode: correct_bias. weight_rounding:
    round_weights_gptq. progress: progress bars for the long passes."""
    weight_granularity: str = "per-channel"
    weight_bits: int | dict = 8
    calibration: CalibrationOptions = field(default_factory=CalibrationOptions)
    cle_relu6: str = "bounded"
    cle_max_iter: int = 100
    cle_tol: float = 1e-6
    absorb_padded: bool = False
    bias_correction_mode: str = "auto"
    weight_rounding: str = "gptq"
    progress: bool = False

    def __post_init__(self):
        _one_of(self.weight_granularity, GRANULARITIES, "weight granularity")
        if self.cle_relu6 not in CLE_RELU6:
            raise ValueError(f"cle_relu6 must be relu, bounded or skip, got {self.cle_relu6!r}")
        if self.bias_correction_mode not in BIAS_CORRECTION_MODES:
            raise ValueError(f"bias_correction_mode must be auto, empirical or data-free, "
                             f"got {self.bias_correction_mode!r}")

    @classmethod
    def of(cls, options: "PassOptions | dict | None") -> "PassOptions":
        """A PassOptions from itself, None (the defaults) or a dict of its field names
        (calib_method / calib_percentile fill `calibration`)."""
        if isinstance(options, PassOptions):
            return options
        d = dict(options or {})
        method, percentile = d.pop("calib_method", None), d.pop("calib_percentile", None)
        if method is not None or percentile is not None:
            d["calibration"] = CalibrationOptions(method, percentile)
        unknown = sorted(set(d) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise TypeError(f"unknown pass options {unknown} (PassOptions: "
                            f"{', '.join(f.name for f in dataclasses.fields(cls))})")
        return cls(**d)

    def bits_for(self, node_name: str, default: int = 8) -> int:
        """The weight bits the quantizer will give one Conv/Gemm ({name: bits} plans name
        only some layers; the others get 8)."""
        bits = self.weight_bits
        if isinstance(bits, dict):
            bits = bits.get(node_name, default)
        return bits if isinstance(bits, (int, np.integer)) else default


@dataclass(frozen=True)
class BuildOptions:
    """What a target's build needs besides the graph. test_vectors: int8 inputs [N, ...]
    per graph input that firmware embeds to check itself (None: none). scratch: the C
    targets' memory plan policy. budget: {"flash_bytes", "ram_bytes", "stack_bytes"} that
    replace the part's own (a measurement build links against the emulated board's flash).
    cpu, lowering: the arm64 target's CPU (None: its default) and kernels (tvm | c)."""
    test_vectors: dict | None = None
    scratch: str = "fast"
    budget: dict = field(default_factory=dict)
    cpu: str | None = None
    lowering: str = "tvm"
    training: object = None     # a --train build's TrainSetup (edgeq.targets.training), None: inference only

    def __post_init__(self):
        _one_of(self.scratch, SCRATCH_POLICIES, "--scratch")
        _one_of(self.lowering, LOWERINGS, "--lowering")

    @classmethod
    def of(cls, options: "BuildOptions | dict | None") -> "BuildOptions":
        """Targets accept BuildOptions, None, or just the test vectors (a dict of arrays)."""
        if isinstance(options, BuildOptions):
            return options
        return cls(test_vectors=options or None)


@dataclass
class CompileOptions:
    """Every `edgeq compile` setting (the CLI flags, the keyword arguments of edgeq.compile)."""
    target: str = "reference"
    input_shapes: dict[str, tuple[int, ...]] | None = None
    weight_granularity: str = "per-channel"
    weight_bits: int | dict[str, int] | str = 8  # all Conv/Gemm, {float node name: bits} (others 8), or "auto"
    # "auto" (edgeq/mixed_precision/plan.py): the ILP picks 4 or 8 per layer within these budgets
    flash_budget: str | int | None = None    # packed Conv/Gemm weight bytes: 200000, "200KB", "60%"
    latency_budget: str | int | None = None  # QEMU instructions per inference (MCU): 1500000, "105%"
    firmware_budget: str | int | None = None  # whole firmware flash from the ELF (MCU): "200KB", "90%"
    # "measured" (output noise with the layer GPTQ-rounded alone) | "hawq" (Hessian trace); measured
    # is the default: ImageNet MobileNetV2 at 60%, 76.6% vs 80.5% agreement (docs/mixed_precision.md)
    bits_sensitivity: str = "measured"
    keep_ends_int8: bool = True              # first and last Conv/Gemm stay int8 (HAWQ practice)
    bits_ties: list = field(default_factory=list)  # groups of layer names sharing one precision
    equalize: bool | None = None          # None: on for per-tensor weights (see float_passes)
    bias_correction: bool | None = None   # None: on for per-tensor weights
    dfq_guard: bool | None = None         # None: on for per-channel weights (passes/dfq_guard.py)
    calib_method: str | None = None       # None: DEFAULT_CALIB_METHOD, chosen by measurement
    # percentile method only: the upper percentile of each range (None: DEFAULT_PERCENTILE);
    # which is better depends on the model and on how well calibration covers the scenes
    # (docs/fidelity.md, sixth session)
    calib_percentile: float | None = None
    calib_limit: int = CALIB_LIMIT        # at most this many calibration samples are used
    int_bias_correction: bool | None = None  # None: on with calibration data (passes/correct_bias_integer.py)
    weight_rounding: str = "gptq"         # layers below 8 bits: "gptq" (with calibration data) | "nearest"
    # recurrent state (GRU h, LSTM c) carried between steps: 16 | 8 bits; None: 16, except on the
    # TFLite targets (8: their export has no int16 state; quantization/rules/recurrent.py)
    state_bits: int | None = None
    test_vectors: int = 4                 # inputs embedded in firmware to self-check
    scratch: str = "fast"                 # C targets: "fast" (smallest arena, fast kernels; codegen.plan_build) | "fit" | "always"
    cpu: str | None = None                # arm64: the CPU the kernels are for (None: the target's default)
    lowering: str | None = None           # arm64: "tvm" (None: the default) | "c" (runtime_c, the second oracle)
    # cortex-m targets: a part of the --board catalogue (targets/boards/parts.json; it sets the
    # target when that is left at "reference"), and the part's memories overriding its own
    board: str | None = None
    flash_size: str | int | None = None   # bytes once checked: 1M, 512K, 524288
    sram_size: str | int | None = None
    # on-device training (edgeq.training, docs/training.md): None (inference only) | "bias" |
    # "last:N" | "auto" (chosen under train_budget: bytes, default the part's SRAM)
    train: str | None = None
    train_budget: str | int | None = None
    train_lr: float = 0.01
    train_momentum: float = 0.0
    progress: bool = True
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.flash_size is not None:
            self.flash_size = parse_memory_size(self.flash_size, "--flash-size")
        if self.sram_size is not None:
            self.sram_size = parse_memory_size(self.sram_size, "--sram-size")
        _one_of(self.weight_granularity, GRANULARITIES, "--weight-granularity")
        _one_of(self.weight_rounding, WEIGHT_ROUNDINGS, "--weight-rounding")
        _one_of(self.scratch, SCRATCH_POLICIES, "--scratch")
        _one_of(self.bits_sensitivity, BITS_SENSITIVITIES, "--bits-sensitivity")
        if self.state_bits is not None:
            _one_of(self.state_bits, STATE_BITS, "--state-bits")
        if self.state_bits == 16 and _tflite_based(self.target):
            raise EdgeqError(f"--state-bits 16: target {self.target} runs a .tflite file, and edgeq's TFLite "
                             "export has no int16 recurrent state (it could not promise TFLite's bytes)",
                             "use --state-bits 8 (the TFLite targets' default), or a C target (host, cortex-m*)")
        if self.lowering is not None:
            _one_of(self.lowering, LOWERINGS, "--lowering")
        if (self.cpu is not None or self.lowering is not None) and self.target not in CPU_TARGETS:
            raise EdgeqError(f"--cpu and --lowering choose the kernels of an ARM application CPU, not of "
                             f"target {self.target!r}", f"use --target {' or '.join(CPU_TARGETS)}, or drop them")
        self.calibration = CalibrationOptions(self.calib_method, self.calib_percentile)
        budgets = self.flash_budget or self.latency_budget or self.firmware_budget
        if self.weight_bits != "auto" and budgets:
            raise EdgeqError("--flash-budget/--firmware-budget/--latency-budget choose bits per layer, "
                             "so they need --weight-bits auto", "add --weight-bits auto, or drop the budget")
        if self.weight_bits == "auto" and not budgets:  # all-int8 would always win
            raise EdgeqError("--weight-bits auto needs a budget",
                             "give --flash-budget (e.g. 60% or 200KB), --firmware-budget and/or --latency-budget")
        for text, what in ((self.flash_budget, "--flash-budget"), (self.firmware_budget, "--firmware-budget"),
                           (self.latency_budget, "--latency-budget")):
            if text is not None:  # a typo fails now, not after minutes of sensitivities and builds
                parse_budget(text, 1.0, what)
        if self.train is not None and not re.fullmatch(r"bias|auto|last:[1-9]\d*", str(self.train).strip()):
            raise EdgeqError(f"unknown --train {self.train!r}", "use --train bias, --train last:N (N >= 1) or --train auto")
        if self.train_budget is not None:
            if self.train is None:
                raise EdgeqError("--train-budget is the memory of a training build", "add --train SPEC, or drop it")
            if str(self.train_budget).strip().endswith("%"):
                raise EdgeqError(f"--train-budget {self.train_budget!r} is a share", "give bytes: 262144, 256KiB")
            parse_budget(self.train_budget, 1.0, "--train-budget")
        if not self.train_lr > 0:
            raise EdgeqError(f"--train-lr {self.train_lr} is not positive", "use a learning rate like 0.01")
        if not 0.0 <= self.train_momentum < 1.0:
            raise EdgeqError(f"--train-momentum {self.train_momentum} is outside [0, 1)",
                             "use a momentum like 0.9, or 0 for plain SGD")

    def check_data(self, has_calib: bool) -> None:
        """The settings that need calibration data, checked before any work."""
        if self.calib_percentile is not None and not has_calib:
            raise EdgeqError("--calib-percentile sets calibrated ranges, but no calibration data was given",
                             "give --calib FILE, or drop --calib-percentile")
        if self.train is not None and self.train.strip() == "auto" and not has_calib:
            raise EdgeqError("--train auto measures gradients on calibration samples", "give --calib FILE")
        if self.weight_bits == "auto" and not has_calib:  # sensitivities are measured on data
            raise EdgeqError("--weight-bits auto needs calibration data",
                             "give --calib FILE, or --weight-bits 8 or 4")

    @property
    def recurrent_state_bits(self) -> int:
        if self.state_bits is not None:
            return self.state_bits
        return 8 if _tflite_based(self.target) else 16

    @property
    def per_tensor(self) -> bool:
        return self.weight_granularity == "per-tensor"

    @property
    def passes(self) -> PassOptions:
        # "auto" is planned after calibration; until then the passes see the int8 default
        return PassOptions(self.weight_granularity, 8 if self.weight_bits == "auto" else self.weight_bits,
                           self.calibration, weight_rounding=self.weight_rounding, progress=self.progress)

    def build(self, test_vectors: dict | None, budget: dict | None = None, training=None) -> BuildOptions:
        """training: the TrainSetup of a --train build (driver.pipeline.training_setup)."""
        return BuildOptions(test_vectors, self.scratch, dict(budget or {}), self.cpu, self.lowering or "tvm",
                            training)
