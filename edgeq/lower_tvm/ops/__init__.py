"""One module per op family: each defines a Lowering (see edgeq.lower_tvm.lower)."""
