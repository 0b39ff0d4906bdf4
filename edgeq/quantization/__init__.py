"""Float graph + ranges -> `ai.edgeq` integer graph: `quantize.quantize`, one rule module
per float op family (rules/), symmetric weight quantization (weights.py), GPTQ rounding's
layer math (gptq.py)."""
