"""Activation ranges for the quantizer: from calibration data (calibrate.py, observers.py)
or data-free (datafree.py)."""
