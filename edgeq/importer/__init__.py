"""ONNX file -> canonical float graph (docs/float_graph.md): `load.import_onnx`.

check.py checks a model before any converter runs, tensors.py reads its tensors safely,
fold.py evaluates constant subgraphs, converters.py holds one converter per ONNX op
(`@implements("import", ...)`), patterns.py canonicalizes multi-node spellings.
"""
