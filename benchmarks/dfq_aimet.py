"""AIMET's cross-layer equalization on MobileNetV2, for benchmarks/dfq_mobilenetv2.py's table.

aimet-onnx pins its own torch (2.14 with CUDA wheels) and cannot share edgeq's
environment, so it runs in a throwaway venv on the inputs the benchmark wrote:

    python -m venv --system-site-packages /tmp/aimetvenv
    /tmp/aimetvenv/bin/pip install aimet-onnx            # 2.42.0 on 2026-11-29
    python benchmarks/dfq_mobilenetv2.py --n 300 ...      # writes <tag>_inputs.npz
    /tmp/aimetvenv/bin/python benchmarks/dfq_aimet.py ~/.cache/edgeq/dfq_bench n300_c64 pt:naive pt:cle

Variants: pt | pc (aimet's default_config.json / default_config_per_channel.json: int8
symmetric weights, int8 asymmetric activations, min-max calibration on the same 64
calibration images), naive (batch norms folded into the weights) | cle
(aimet_onnx.cross_layer_equalization.equalize_model: BN fold, ReLU6 -> ReLU, cross-layer
scaling, high-bias fold). aimet-onnx 2.x has no bias correction (AIMET's bias correction
exists only in its torch and TensorFlow variants), so there is no "+ BC" row.
The logits go to <dir>/<tag>_aimet_<variant>.npy, which the benchmark's table picks up.
"""
import os
import sys
import time

import numpy as np
import onnx
from aimet_onnx.batch_norm_fold import fold_all_batch_norms_to_weight
from aimet_onnx.cross_layer_equalization import equalize_model
from aimet_onnx.quantsim import QuantizationSimModel


def main() -> None:
    work, tag, variants = sys.argv[1], sys.argv[2], sys.argv[3:]
    d = np.load(os.path.join(work, f"{tag}_inputs.npz"))
    x, calib = d["x"], d["calib"]
    src = os.path.join(os.path.dirname(os.path.abspath(work.rstrip("/"))), "mobilenetv2_imagenet.onnx")
    cfg_dir = os.path.join(os.path.dirname(__import__("aimet_onnx").__file__), "common", "quantsim_config")
    for variant in variants:
        gran, cle = variant.split(":")
        t0 = time.time()
        model = onnx.load(src)
        if cle == "cle":
            equalize_model(model)
        else:
            fold_all_batch_norms_to_weight(model)
        cfg = "default_config_per_channel.json" if gran == "pc" else "default_config.json"
        sim = QuantizationSimModel(model, param_type="int8", activation_type="int8",
                                   quant_scheme="min_max", config_file=os.path.join(cfg_dir, cfg),
                                   providers=["CPUExecutionProvider"])
        sim.compute_encodings([{"input": calib[i:i + 1]} for i in range(len(calib))])
        ys = [sim.session.run(None, {"input": x[i:i + 1]})[0] for i in range(len(x))]
        np.save(os.path.join(work, f"{tag}_aimet_{gran}_{cle}.npy"), np.concatenate(ys))
        print(variant, f"{time.time() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main()
