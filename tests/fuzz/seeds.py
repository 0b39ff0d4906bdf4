"""Valid models the fuzzer mutates: every one compiles (tests/test_fuzz_onnx.py checks it).

The hand-built graphs are small (a case runs in well under a second) and together use
every op the importer converts or folds, in both the attribute and the input forms, at
opsets 11 (converted on import), 13 and 18.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

from tests._onnx_builders import make_model, rand

REPO = Path(__file__).resolve().parents[2]
MLPERF = REPO.parent / "shared" / "models" / "mlperf-tiny"
MLPERF_SEEDS = ["kws01", "ic01", "ad01", "vww01", "sww01", "ic01_large"]


def _n(op, ins, outs, name, **attrs):
    return helper.make_node(op, ins, outs, name=name, **attrs)


def conv_stack() -> onnx.ModelProto:
    """Conv+BN+ReLU, MaxPool, depthwise dilated Conv, Clip(inputs), ceil-mode AveragePool,
    GlobalAveragePool, Flatten, Gemm (transB, alpha, beta), Softmax."""
    nodes = [
        _n("Conv", ["x", "w1", "b1"], ["c1"], "conv1", pads=[1, 1, 1, 1], strides=[1, 1], kernel_shape=[3, 3]),
        _n("BatchNormalization", ["c1", "g", "beta", "mean", "var"], ["bn"], "bn1", epsilon=1e-3),
        _n("Relu", ["bn"], ["r1"], "relu1"),
        _n("MaxPool", ["r1"], ["p1"], "pool1", kernel_shape=[2, 2], strides=[2, 2]),
        _n("Conv", ["p1", "w2"], ["c2"], "dw2", group=8, dilations=[2, 2], pads=[2, 2, 2, 2]),
        _n("Clip", ["c2", "lo", "hi"], ["r2"], "relu6"),
        _n("AveragePool", ["r2"], ["p2"], "pool2", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1],
           ceil_mode=1, count_include_pad=0),
        _n("GlobalAveragePool", ["p2"], ["gap"], "gap"),
        _n("Flatten", ["gap"], ["flat"], "flatten", axis=1),
        _n("Gemm", ["flat", "wf", "bf"], ["logits"], "fc", transB=1, alpha=0.5, beta=2.0),
        _n("Softmax", ["logits"], ["y"], "softmax", axis=-1),
    ]
    c = 8
    inits = {"w1": rand((c, 3, 3, 3), 1), "b1": rand((c,), 2), "g": np.abs(rand((c,), 3)) + 0.5,
             "beta": rand((c,), 4), "mean": rand((c,), 5), "var": np.abs(rand((c,), 6)) + 0.5,
             "w2": rand((c, 1, 3, 3), 7), "lo": np.array(0.0, np.float32), "hi": np.array(6.0, np.float32),
             "wf": rand((10, c), 8), "bf": rand((10,), 9)}
    return make_model(nodes, [("x", (1, 3, 12, 12))], [("y", (1, 10))], inits, name="conv_stack")


def conv1d() -> onnx.ModelProto:
    """Rank-3 Conv (SAME_UPPER), LeakyRelu, 1-D MaxPool (ceil), GlobalMaxPool, Squeeze with
    axes input, MatMul + Add (a dense layer)."""
    nodes = [
        _n("Conv", ["x", "w", "b"], ["c"], "conv", auto_pad="SAME_UPPER", strides=[2]),
        _n("LeakyRelu", ["c"], ["a"], "leaky", alpha=0.1),
        _n("MaxPool", ["a"], ["p"], "pool", kernel_shape=[3], strides=[2], ceil_mode=1),
        _n("GlobalMaxPool", ["p"], ["g"], "gmp"),
        _n("Squeeze", ["g", "axes"], ["s"], "squeeze"),
        _n("MatMul", ["s", "wd"], ["m"], "dense"),
        _n("Add", ["m", "bd"], ["y"], "bias"),
    ]
    inits = {"w": rand((6, 4, 3), 1), "b": rand((6,), 2), "axes": np.array([2], np.int64),
             "wd": rand((6, 5), 3), "bd": rand((5,), 4)}
    return make_model(nodes, [("x", (1, 4, 20))], [("y", (1, 5))], inits, name="conv1d")


def eltwise() -> onnx.ModelProto:
    """Sigmoid, Tanh, Mul, Sub, Div, PRelu, HardSigmoid, HardSwish, the exporter's
    x*HardSigmoid(x) pattern, Concat, Add of two activations, Relu."""
    nodes = [
        _n("Sigmoid", ["x"], ["a"], "sig"),
        _n("Tanh", ["x"], ["b"], "tanh"),
        _n("Mul", ["a", "b"], ["c"], "mul"),
        _n("Sub", ["c", "k1"], ["d"], "sub"),
        _n("Div", ["d", "k2"], ["e"], "div"),
        _n("PRelu", ["e", "slope"], ["f"], "prelu"),
        _n("HardSigmoid", ["f"], ["h0"], "hsig", alpha=0.25, beta=0.4),
        _n("HardSwish", ["h0"], ["h"], "hswish"),
        _n("HardSigmoid", ["x"], ["hs"], "hs_gate", alpha=1 / 6, beta=0.5),
        _n("Mul", ["x", "hs"], ["i"], "hs_mul"),
        _n("Concat", ["h", "i"], ["j"], "cat", axis=1),
        _n("Sub", ["j", "j2"], ["k"], "sub_act"),
        _n("Add", ["k", "j"], ["l"], "add_act"),
        _n("Relu", ["l"], ["y"], "relu"),
    ]
    inits = {"k1": rand((4, 1, 1), 1), "k2": np.array(2.0, np.float32), "slope": rand((4, 1, 1), 2) * 0.1,
             "j2": rand((1, 8, 5, 5), 3)}
    return make_model(nodes, [("x", (1, 4, 5, 5))], [("y", (1, 8, 5, 5))], inits, opset=14, name="eltwise")


def shape_chain() -> onnx.ModelProto:
    """Transpose, Pad (pads and value inputs), the exporter's Shape -> Gather -> Unsqueeze
    -> Concat -> Reshape chain, Size, Identity, Dropout, Cast, Gemm with a constant C."""
    nodes = [
        _n("Transpose", ["x"], ["t"], "nhwc", perm=[0, 2, 3, 1]),
        _n("Pad", ["t", "pads", "pv"], ["p"], "pad", mode="constant"),
        _n("Shape", ["p"], ["shp"], "shape"),
        _n("Gather", ["shp", "zero"], ["n"], "gather", axis=0),
        _n("Unsqueeze", ["n", "axes0"], ["n1"], "unsq"),
        _n("Concat", ["n1", "minus1"], ["tgt"], "cat_shape", axis=0),
        _n("Reshape", ["p", "tgt"], ["r"], "reshape"),
        _n("Size", ["r"], ["sz"], "size"),
        _n("Identity", ["r"], ["i"], "ident"),
        _n("Dropout", ["i"], ["d"], "drop"),
        _n("Cast", ["d"], ["cst"], "cast", to=TensorProto.FLOAT),
        _n("Gemm", ["cst", "w", "cc"], ["y"], "fc", transB=0),
    ]
    inits = {"pads": np.array([0, 1, 0, 0, 0, 0, 1, 0], np.int64), "pv": np.array(0.5, np.float32),
             "zero": np.array(0, np.int64), "axes0": np.array([0], np.int64), "minus1": np.array([-1], np.int64),
             "w": rand((5 * 5 * 3, 6), 1), "cc": rand((1, 6), 2)}
    return make_model(nodes, [("x", (1, 3, 4, 4))], [("y", (1, 6))], inits, name="shape_chain")


def folded_consts() -> onnx.ModelProto:
    """Constant-only subgraphs the importer evaluates: ConstantOfShape, Range, Cast, Tile,
    Expand, Equal, Where, Slice, Neg, Abs, Sqrt, Reciprocal, Pow, Min, Max, ReduceSum,
    Constant nodes; then ReduceMean over the last axis and Unsqueeze (axes input)."""
    vt = helper.make_tensor("v", TensorProto.FLOAT, [1], [0.5])
    nodes = [
        _n("Constant", [], ["shape8"], "c_shape", value=helper.make_tensor("s", TensorProto.INT64, [2], [1, 8])),
        _n("ConstantOfShape", ["shape8"], ["half"], "cos", value=vt),
        _n("Range", ["r0", "r8", "r1"], ["rng"], "range"),
        _n("Cast", ["rng"], ["rngf"], "cast_f", to=TensorProto.FLOAT),
        _n("Tile", ["quad", "reps"], ["tiled"], "tile"),
        _n("Expand", ["rngf", "shape8"], ["exp"], "expand"),
        _n("Equal", ["exp", "tiled"], ["eq"], "equal"),
        _n("Where", ["eq", "half", "tiled"], ["wh"], "where"),
        _n("Slice", ["wh", "st", "en", "ax"], ["sl"], "slice"),
        _n("Neg", ["sl"], ["ng"], "neg"),
        _n("Abs", ["ng"], ["ab"], "abs"),
        _n("Sqrt", ["ab"], ["sq"], "sqrt"),
        _n("Reciprocal", ["two"], ["rc"], "recip"),
        _n("Pow", ["sq", "two"], ["pw"], "pow"),
        _n("Min", ["pw", "big"], ["mn"], "min"),
        _n("Max", ["mn", "rc"], ["k"], "max"),
        _n("ReduceSum", ["k", "ax"], ["ks"], "rsum", keepdims=1),
        _n("Mul", ["x", "k"], ["xm"], "mul"),
        _n("Add", ["xm", "ks"], ["xa"], "add"),
        _n("ReduceMean", ["xa"], ["m"], "mean", axes=[1], keepdims=0),
        _n("Unsqueeze", ["m", "ax"], ["y"], "unsq"),
    ]
    inits = {"r0": np.array(0, np.int64), "r8": np.array(8, np.int64), "r1": np.array(1, np.int64),
             "quad": np.array([[1.0, 2.0, 3.0, 4.0]], np.float32), "reps": np.array([1, 2], np.int64),
             "st": np.array([0], np.int64), "en": np.array([8], np.int64), "ax": np.array([1], np.int64),
             "two": np.array(2.0, np.float32), "big": np.array(100.0, np.float32)}
    return make_model(nodes, [("x", (1, 8))], [("y", (1, 1))], inits, name="folded_consts")


def two_io() -> onnx.ModelProto:
    """Two inputs, two outputs, a Conv whose weight comes from a Constant node."""
    w = helper.make_tensor("wv", TensorProto.FLOAT, [4, 4, 1, 1], rand((4, 4, 1, 1), 1).reshape(-1).tolist())
    nodes = [
        _n("Constant", [], ["w"], "const_w", value=w),
        _n("Add", ["a", "b"], ["s"], "add"),
        _n("Mul", ["a", "b"], ["m"], "mul"),
        _n("Conv", ["s", "w"], ["c"], "conv"),
        _n("Relu", ["c"], ["y1"], "relu"),
        _n("Clip", ["m"], ["y2"], "clip"),
    ]
    return make_model(nodes, [("a", (1, 4, 3, 3)), ("b", (1, 4, 3, 3))],
                      [("y1", (1, 4, 3, 3)), ("y2", (1, 4, 3, 3))], name="two_io")


def opset11() -> onnx.ModelProto:
    """Opset 11 (converted to 13 on import): Clip with min/max inputs, Squeeze/Unsqueeze
    with axes attributes, Softmax over the last axis of a 2-D tensor."""
    nodes = [
        _n("Clip", ["x", "lo", "hi"], ["c"], "clip"),
        _n("Unsqueeze", ["c"], ["u"], "unsq", axes=[0]),
        _n("Squeeze", ["u"], ["s"], "squeeze", axes=[0]),
        _n("Gemm", ["s", "w", "b"], ["g"], "fc", transB=1),
        _n("Softmax", ["g"], ["y"], "softmax", axis=1),
    ]
    inits = {"lo": np.array(-1.0, np.float32), "hi": np.array(1.0, np.float32),
             "w": rand((3, 6), 1), "b": rand((3,), 2)}
    return make_model(nodes, [("x", (1, 6))], [("y", (1, 3))], inits, opset=11, name="opset11")


def opset18() -> onnx.ModelProto:
    """Opset 18: Pad with an axes input, ReduceMean with an axes input, Gemm with transA."""
    nodes = [
        _n("Pad", ["x", "pads", "", "pax"], ["p"], "pad"),
        _n("ReduceMean", ["p", "rax"], ["m"], "mean", keepdims=1),
        _n("Reshape", ["m", "shape"], ["r"], "reshape"),
        _n("Transpose", ["r"], ["t"], "tr", perm=[1, 0]),
        _n("Gemm", ["t", "w"], ["y"], "fc", transA=1),
    ]
    inits = {"pads": np.array([1, 1, 1, 1], np.int64), "pax": np.array([2, 3], np.int64),
             "rax": np.array([2, 3], np.int64), "shape": np.array([1, 5], np.int64), "w": rand((5, 3), 1)}
    return make_model(nodes, [("x", (1, 5, 4, 4))], [("y", (1, 3))], inits, opset=18, name="opset18")


HAND_BUILT = {"conv_stack": conv_stack, "conv1d": conv1d, "eltwise": eltwise, "shape_chain": shape_chain,
              "folded_consts": folded_consts, "two_io": two_io, "opset11": opset11, "opset18": opset18}


def seed_models(which: str = "all") -> dict[str, onnx.ModelProto]:
    """{name: model}: "small" = hand-built only; "repo" adds models/*.onnx; "all" adds the
    MLPerf Tiny models found under ../shared (absent ones are left out)."""
    seeds = {name: build() for name, build in HAND_BUILT.items()}
    if which in ("repo", "all"):
        for path in sorted((REPO / "models").glob("fmnist_*.onnx")):
            seeds[path.stem] = onnx.load(str(path))
    if which == "all":
        for name in MLPERF_SEEDS:
            path = MLPERF / name / "model.onnx"
            if path.is_file():
                seeds[f"mlperf_{name}"] = onnx.load(str(path))
    return seeds
