"""A mutation fuzzer for `edgeq compile` over ONNX files (issue 15, "make the class impossible").

- `seeds`: valid models to start from (the Fashion-MNIST models in models/, one small
  hand-built graph per supported op family, MLPerf Tiny models from ../shared when present);
- `mutations`: protobuf-level mutations, each a named kind, driven by one seeded generator;
- `harness`: runs each case as `edgeq compile CASE.onnx -o DIR` in worker processes with a
  per-case timeout and memory cap, and classifies it (clear error, valid build, crash, hang,
  other);
- `scripts/fuzz_onnx.py` is the command line; tests/test_fuzz_onnx.py runs a 300-case smoke.
"""
