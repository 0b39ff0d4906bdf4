"""Runs one peer runtime on one model inside the emulated arm64 Python (see arm64_speed.py).

    python3.11 peer_run.py {litert-xnnpack|litert-builtin|ort} MODEL INPUT.npy N

Loads the model, feeds INPUT (the runtime's own input dtype: int8 for the int8 .tflite
files, float32 for the QDQ .onnx), runs one warm-up inference and then N more, all on one
thread. The caller counts instructions for N and for 0 and subtracts, so loading, the
warm-up (XNNPACK packs weights lazily) and interpreter start-up cancel out. Only numpy
and the runtimes are imported: this runs under qemu-aarch64 with no edgeq installed.
"""
import sys

import numpy as np


def litert(path, x, n, resolver):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType
    interp = Interpreter(model_path=path, num_threads=1,
                         experimental_op_resolver_type=getattr(OpResolverType, resolver))
    interp.allocate_tensors()
    inp = interp.get_input_details()[0]
    interp.set_tensor(inp["index"], x.astype(inp["dtype"]).reshape(inp["shape"]))
    for _ in range(1 + n):
        interp.invoke()
    return interp.get_tensor(interp.get_output_details()[0]["index"])


def ort(path, x, n):
    import onnxruntime as rt
    so = rt.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    sess = rt.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    feed = {sess.get_inputs()[0].name: x.astype(np.float32)}
    for _ in range(1 + n):
        out = sess.run(None, feed)[0]
    return out


def main():
    kind, path, inp, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    x = np.load(inp)
    if kind == "litert-xnnpack":
        y = litert(path, x, n, "AUTO")
    elif kind == "litert-builtin":
        y = litert(path, x, n, "BUILTIN_WITHOUT_DEFAULT_DELEGATES")
    elif kind == "ort":
        y = ort(path, x, n)
    else:
        raise SystemExit(f"peer_run: unknown runtime {kind}")
    print("peer_run ok", kind, np.asarray(y).ravel()[:4].tolist())


if __name__ == "__main__":
    main()
