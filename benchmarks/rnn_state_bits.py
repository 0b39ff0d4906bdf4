"""What the int16 recurrent state buys: Conv-GRU / Conv-LSTM keyword-spotting nets over
sequences of growing length, int8 state (--state-bits 8) against int16 (the default).

    python benchmarks/rnn_state_bits.py [--steps 12,50,100] [--inputs 200] [--calib 64]

The nets are the tests' ConvGRUNet (tests/_onnx_builders.py: a conv over (frequency,
time), a GRU or LSTM of 16 units over the time steps, a linear classifier of its last
state; random init, seeded), exported with torch's legacy exporter with the time axis
`steps` long. Calibration and evaluation inputs are seeded N(0, 1) spectrogram-shaped
arrays (no speech data set is installed: these are random nets on random inputs, so the
numbers compare the two state widths, they say nothing about a trained model's accuracy).
Each model is compiled for `reference` (the golden integer semantics; the C targets equal
it bit for bit) with both state widths and the same calibration set, and compared with
onnxruntime's float outputs: SQNR of the logits (10 log10 of signal over error power,
over all inputs) and top-1 agreement.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def export(cell: str, steps: int, path: Path, memory_bias: float) -> Path:
    import torch
    from tests._onnx_builders import ConvGRUNet, export_legacy
    torch.manual_seed(0)
    net = ConvGRUNet(torch.nn.GRU if cell == "GRU" else torch.nn.LSTM)
    H = net.rnn.hidden_size
    # the gate that keeps the state (GRU: z, the 1st block; LSTM: f, the 2nd) leans towards keeping it
    keep = slice(0, H) if cell == "GRU" else slice(H, 2 * H)
    with torch.no_grad():
        net.rnn.bias_ih_l0[keep] += memory_bias
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return export_legacy(net, (1, 1, 10, steps), path)


def float_outputs(path: Path, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.concatenate([sess.run(None, {"x": x[i:i + 1]})[0] for i in range(len(x))])


def quantized_outputs(path: Path, state_bits: int, calib: np.ndarray, x: np.ndarray) -> np.ndarray:
    from edgeq.driver.pipeline import compile_model
    from edgeq.options import CompileOptions
    from edgeq.reference.interpreter import dequantize_outputs, quantize_inputs, run_reference
    res = compile_model(path, CompileOptions(target="reference", state_bits=state_bits, progress=False),
                        None, calib, log=lambda m: None)
    q = res.qgraph
    out = run_reference(q, quantize_inputs(q, {q.inputs[0]: x}))
    return dequantize_outputs(q, out)[q.outputs[0]]


def sqnr_db(ref: np.ndarray, got: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(ref.astype(np.float64) ** 2) / np.sum((got - ref).astype(np.float64) ** 2)))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", default="12,50,100")
    ap.add_argument("--inputs", type=int, default=200)
    ap.add_argument("--calib", type=int, default=64)
    ap.add_argument("--memory-bias", default="0,3")
    args = ap.parse_args(argv)
    print("| net | keep-gate bias | steps | state | SQNR vs float (dB) | top-1 agreement |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for cell, bias, steps in ((c, float(b), int(s)) for c in ("GRU", "LSTM")
                                  for b in args.memory_bias.split(",") for s in args.steps.split(",")):
            path = export(cell, steps, Path(tmp) / f"conv{cell.lower()}_{bias}_{steps}.onnx", bias)
            rng = np.random.default_rng(steps)
            calib = rng.normal(size=(args.calib, 1, 10, steps)).astype(np.float32)
            x = rng.normal(size=(args.inputs, 1, 10, steps)).astype(np.float32)
            ref = float_outputs(path, x)
            for bits in (8, 16):
                got = quantized_outputs(path, bits, calib, x)
                agree = float(np.mean(np.argmax(got, 1) == np.argmax(ref, 1)))
                print(f"| Conv-{cell} | {bias:+g} | {steps} | int{bits} | {sqnr_db(ref, got):.1f} | "
                      f"{100 * agree:.1f}% |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
