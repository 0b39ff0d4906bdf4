"""The top layer: the compile pipeline (pipeline.py) and run / flash / profile on a build
folder (runner.py). The one place that chains stages, passes and targets."""
