"""TFLite export of a quantized graph (tflite/) and the .tflite oracle runners
(tflite_run.py: LiteRT's reference kernels, TFLite Micro)."""
