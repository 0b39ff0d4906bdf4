"""`make demo` / `make test` set up and use the project's own virtual environment .venv/
(Debian's python3 refuses `pip install` outside one, PEP 668): one interpreter everywhere."""
from __future__ import annotations

import re
import subprocess

from .conftest import REPO


def _makefile_py() -> str:
    return re.search(r"^PY\s*:?=\s*(\S+)\s*$", (REPO / "Makefile").read_text(), re.M).group(1)


def test_makefile_and_setup_name_the_same_interpreter():
    setup = (REPO / "scripts" / "setup.sh").read_text()
    assert re.search(r"^PYTHON=(\S+)\s*(#.*)?$", setup, re.M).group(1) == _makefile_py() == ".venv/bin/python"
    assert "python3 -m venv .venv" in setup  # made with the python3 on PATH when absent
    assert "torch==" in setup.split("-e '.[oracles,test]'")[0]  # torch pinned, installed first


def test_make_puts_the_venv_first_on_path():
    out = subprocess.run(["make", "-s", "--eval", "show-path:\n\t@echo $$PATH", "show-path"], cwd=REPO,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split(":")[0] == str(REPO / ".venv" / "bin")


def test_venv_is_not_committed():
    assert ".venv/" in (REPO / ".gitignore").read_text().split()
    assert subprocess.run(["bash", "-n", str(REPO / "scripts" / "setup.sh")]).returncode == 0
