"""edgeq graphs <-> ONNX files (onnx_io.py) and the graph verifier (verify.py)."""
