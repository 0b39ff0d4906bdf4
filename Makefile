# edgeq: the README's two commands are `make demo` and `make test`; both set up first.
# Everything runs in the project's virtual environment .venv/ (scripts/setup.sh makes it and
# names the same interpreter as PYTHON); its bin/ leads PATH so its tools (vela, ...) are found.
PY := .venv/bin/python
export PATH := $(CURDIR)/.venv/bin:$(PATH)

.PHONY: setup demo test test-slow bench accuracy clean

setup:
	@bash scripts/setup.sh

# Compile a Fashion-MNIST reference model for cortex-m7, run it on the emulated board
# (QEMU mps2-an500) and print the report.
demo: setup
	$(PY) scripts/demo.py

# The default test run (< 15 min on 2 cores).
test: setup
	$(PY) -m pytest

# Slow tests: full-test-set accuracy, every MLPerf Tiny model on every board.
test-slow: setup
	$(PY) -m pytest -m slow

# The C runtime's kernel tests and the three Fashion-MNIST models' generated C under
# AddressSanitizer + UBSan (tests/test_sanitizers.py, also part of `make test`).
.PHONY: sanitize
sanitize: setup
	$(PY) -m pytest -rP tests/test_sanitizers.py

# Accuracy table of float vs int8 on the Fashion-MNIST 10k test set (README table).
accuracy: setup
	$(PY) benchmarks/fmnist_accuracy.py

# .venv/ stays: `rm -rf .venv .setup-stamp` and `make setup` rebuild it.
clean:
	rm -rf build demo-build .pytest_cache
