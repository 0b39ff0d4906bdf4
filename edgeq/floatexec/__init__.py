"""Float execution of the canonical float graph on torch: `executor.run_float`."""
