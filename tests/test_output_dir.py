"""`-o DIR` never destroys what edgeq did not write (targets/output_dir.py).

edgeq replaces only an empty folder or one of its own builds (marker `.edgeq-build`, nothing
beyond the files it lists); `.`, `~`, `/`, a mount point, the current folder, its ancestors and
any folder holding the model or calibration file are never replaced, marked or not.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from edgeq.errors import EdgeqError
from edgeq.targets import output_dir as od
from .test_cli_errors import conv_model

EDGEQ = [sys.executable, "-m", "edgeq.cli"]
needs_m7_tools = pytest.mark.skipif(not (shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm")),
                                    reason="needs arm-none-eabi-gcc and qemu-system-arm")


def edgeq_cli(*args, cwd=None, umask=None):
    pre = (lambda: os.umask(umask)) if umask is not None else None
    return subprocess.run([*EDGEQ, *map(str, args)], capture_output=True, text=True, cwd=cwd,
                          timeout=600, preexec_fn=pre)


def snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every entry below `folder` with its bytes (None for folders)."""
    return {p.relative_to(folder).as_posix(): (None if p.is_dir() else p.read_bytes())
            for p in sorted(folder.rglob("*"))}


def user_folder(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "thesis.txt").write_text("four years of work\n")
    (path / "main.c").write_text("int main(void) { return 0; }\n")
    (path / "data").mkdir()
    (path / "data" / "x.bin").write_bytes(bytes(range(256)))
    return path


def assert_refused(proc, *needles):
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in proc.stderr, proc.stderr
    assert "fix:" in lines[0]
    for n in needles:
        assert n in lines[0], lines[0]


def test_user_folder_is_refused_byte_for_byte(tmp_path):
    model = conv_model(tmp_path / "m.onnx")
    project = user_folder(tmp_path / "myproject")
    before = snapshot(project)
    assert_refused(edgeq_cli("compile", model, "-o", project, "-q"), str(project), "not an edgeq build")
    assert snapshot(project) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx", "myproject"]  # no staging left


def test_dot_in_the_folder_holding_the_model(tmp_path):
    model = conv_model(tmp_path / "m.onnx")
    np.save(tmp_path / "calib.npy", np.zeros((2, 1, 8, 8), np.float32))
    before = snapshot(tmp_path)
    assert_refused(edgeq_cli("compile", "m.onnx", "--calib", "calib.npy", "-o", ".", "-q", cwd=tmp_path),
                   "current folder")
    assert snapshot(tmp_path) == before
    assert model.is_file()


def _mark(folder: Path) -> None:
    """A valid marker listing everything in `folder` (as if edgeq had written it all)."""
    files = od.folder_entries(folder)
    (folder / od.MARKER).write_text(json.dumps({"format": od.FORMAT, "edgeq": "0", "target": "reference",
                                                "files": files}))


@pytest.mark.parametrize("which", ["model", "calib"])
def test_ancestor_of_an_input_is_never_replaced_even_if_marked(tmp_path, which):
    top = tmp_path / "top"
    (top / "inputs").mkdir(parents=True)
    model = conv_model((top / "inputs" if which == "model" else tmp_path) / "m.onnx")
    calib = (top / "inputs" if which == "calib" else tmp_path) / "calib.npy"
    np.save(calib, np.random.default_rng(0).normal(size=(4, 1, 8, 8)).astype(np.float32))
    _mark(top)
    before = snapshot(top)
    name = "m.onnx" if which == "model" else "calib.npy"
    assert_refused(edgeq_cli("compile", model, "--calib", calib, "-o", top, "-q"), f"holding {name}")
    assert snapshot(top) == before


def test_marked_build_is_replaced_and_the_old_one_removed(tmp_path):
    model = conv_model(tmp_path / "m.onnx")
    out = tmp_path / "build"
    first = edgeq_cli("compile", model, "-o", out, "-q", "-t", "host")
    assert first.returncode == 0, first.stderr
    marker = json.loads((out / od.MARKER).read_text())
    assert marker["format"] == od.FORMAT and marker["target"] == "host"
    assert "report.json" in marker["files"] and "src/model.c" in marker["files"]
    assert marker["files"] == [e for e in od.folder_entries(out) if e != od.MARKER]
    second = edgeq_cli("compile", model, "-o", out, "-q", "-t", "reference")
    assert second.returncode == 0, second.stderr
    assert json.loads((out / "report.json").read_text())["target"] == "reference"
    assert not (out / "src").exists()  # the old host build is gone, not merged
    assert sorted(p.name for p in tmp_path.iterdir()) == ["build", "m.onnx"]


def test_marked_build_with_a_user_file_is_refused_and_kept(tmp_path):
    """Decision: a build the user added a file to is refused as a whole (edgeq does not
    sort out its own files and keep the user's): the fix says to move the file out."""
    model = conv_model(tmp_path / "m.onnx")
    out = tmp_path / "build"
    assert edgeq_cli("compile", model, "-o", out, "-q").returncode == 0
    (out / "my_notes.txt").write_text("measured on the bench\n")
    before = snapshot(out)
    assert_refused(edgeq_cli("compile", model, "-o", out, "-q"), "my_notes.txt", "did not write")
    assert snapshot(out) == before


def test_empty_folder_is_used(tmp_path):
    model = conv_model(tmp_path / "m.onnx")
    out = tmp_path / "empty"
    out.mkdir()
    proc = edgeq_cli("compile", model, "-o", out, "-q")
    assert proc.returncode == 0, proc.stderr
    assert (out / "report.json").is_file() and (out / od.MARKER).is_file()


def test_invalid_marker_counts_as_no_marker(tmp_path):
    model = conv_model(tmp_path / "m.onnx")
    project = user_folder(tmp_path / "p")
    (project / od.MARKER).write_text("not json")
    before = snapshot(project)
    assert_refused(edgeq_cli("compile", model, "-o", project, "-q"), "not an edgeq build")
    assert snapshot(project) == before


def test_symlink_is_refused(tmp_path):
    model = conv_model(tmp_path / "m.onnx")
    real = user_folder(tmp_path / "real")
    (tmp_path / "link").symlink_to(real)
    before = snapshot(real)
    assert_refused(edgeq_cli("compile", model, "-o", tmp_path / "link", "-q"), "symbolic link")
    assert snapshot(real) == before


@pytest.mark.parametrize("where", ["mount", "home", "root", "cwd-ancestor"])
def test_protected_folders_even_if_marked(tmp_path, monkeypatch, where):
    folder = tmp_path / "f"
    folder.mkdir()
    (folder / "report.json").write_text("{}")
    _mark(folder)
    if where == "mount":
        real_ismount = os.path.ismount
        monkeypatch.setattr(os.path, "ismount", lambda p: Path(p) == folder.resolve() or real_ismount(p))
        needle = "mount point"
    elif where == "home":
        monkeypatch.setattr(Path, "home", classmethod(lambda cls: folder))
        needle = "home folder"
    elif where == "root":
        folder = Path("/")
        needle = "root folder"
    else:
        (folder / "deeper").mkdir()
        monkeypatch.chdir(folder / "deeper")
        needle = "ancestor of the current folder"
    with pytest.raises(EdgeqError, match=needle):
        od.check_output_dir(folder)


def test_output_folder_follows_the_umask(tmp_path):
    model = conv_model(tmp_path / "m.onnx")
    for mask, mode in ((0o022, 0o755), (0o077, 0o700), (0o002, 0o775)):
        out = tmp_path / f"out{mask:o}"
        proc = edgeq_cli("compile", model, "-o", out, "-q", umask=mask)
        assert proc.returncode == 0, proc.stderr
        assert out.stat().st_mode & 0o777 == mode, (oct(mask), oct(out.stat().st_mode))


def _dead_pid() -> int:
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


def test_stale_staging_folders_are_removed_only_when_edgeq_left_them(tmp_path):
    model = conv_model(tmp_path / "m.onnx")
    host = socket.gethostname()
    dead = tmp_path / ".out.dead1234"       # edgeq's, its process is gone: removed
    alive = tmp_path / ".out.alive123"      # edgeq's, its process runs: kept
    other_host = tmp_path / ".out.nfs12345"  # edgeq's, another machine's: kept
    unmarked = tmp_path / ".out.user1234"   # not edgeq's: kept
    for folder, owner in ((dead, {"pid": _dead_pid(), "host": host}),
                          (alive, {"pid": os.getpid(), "host": host}),
                          (other_host, {"pid": _dead_pid(), "host": host + "-elsewhere"}),
                          (unmarked, None)):
        folder.mkdir()
        (folder / "model.c").write_text("/* partial */\n")
        if owner is not None:
            (folder / od.OWNER).write_text(json.dumps(owner))
    proc = edgeq_cli("compile", model, "-o", tmp_path / "out", "-q")
    assert proc.returncode == 0, proc.stderr
    assert not dead.exists()
    assert alive.is_dir() and other_host.is_dir() and (unmarked / "model.c").is_file()


@needs_m7_tools
def test_sigkill_during_compile_leaves_staging_that_the_next_compile_removes(tmp_path):
    model = conv_model(tmp_path / "m.onnx")
    out = tmp_path / "out"
    proc = subprocess.Popen([*EDGEQ, "compile", str(model), "-t", "cortex-m7", "-o", str(out), "-q"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t0 = time.time()
    staged = []
    while not staged and proc.poll() is None and time.time() - t0 < 120:
        staged = [p for p in tmp_path.glob(".out.*") if (p / od.OWNER).is_file()]
        time.sleep(0.01)
    assert proc.poll() is None, "the compile ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert staged[0].is_dir() and not out.exists()
    again = edgeq_cli("compile", model, "-o", out, "-q")
    assert again.returncode == 0, again.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx", "out"]


def test_failed_swap_keeps_the_old_build(tmp_path, monkeypatch):
    """The old build is moved aside, not deleted, until the new one is in place."""
    out = tmp_path / "build"
    out.mkdir()
    (out / "report.json").write_text('{"old": true}')
    _mark(out)
    before = snapshot(out)
    staged = od.new_staging(out)
    (staged / "report.json").write_text('{"new": true}')
    real_rename = os.rename

    def failing_rename(src, dst):
        if Path(src) == staged:
            raise OSError(28, "No space left on device")
        return real_rename(src, dst)
    monkeypatch.setattr(os, "rename", failing_rename)
    with pytest.raises(OSError):
        od.install(staged, out, "reference")
    od.discard(staged)
    assert snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["build"]


def test_failed_compile_keeps_the_old_build(tmp_path):
    model = conv_model(tmp_path / "m.onnx")
    out = tmp_path / "build"
    assert edgeq_cli("compile", model, "-o", out, "-q").returncode == 0
    before = snapshot(out)
    bad = tmp_path / "calib.npy"
    np.save(bad, np.zeros((4, 1, 9, 9), np.float32))
    proc = edgeq_cli("compile", model, "--calib", bad, "-o", out, "-q")
    assert proc.returncode == 1 and "calib" in proc.stderr
    assert snapshot(out) == before


def test_python_api_refuses_too(tmp_path):
    import edgeq
    model = conv_model(tmp_path / "m.onnx")
    with pytest.raises(EdgeqError, match="holding m.onnx"):
        edgeq.compile(model, out_dir=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]


def test_a_signal_taken_by_another_thread_still_waits_for_the_held_block():
    """The kernel may hand SIGINT to any thread that does not mask it (a BLAS or progress
    thread); it must still not interrupt a held block (a probe folder was once left behind
    that way), and must arrive right after it."""
    import signal
    import threading

    from edgeq.targets.output_dir import signals_held
    other = threading.Thread(target=threading.Event().wait, args=(5,), daemon=True)
    other.start()   # started before the block: its signal mask is the default, unmasked
    steps = []
    with pytest.raises(KeyboardInterrupt):
        with signals_held():
            signal.pthread_kill(other.ident, signal.SIGINT)
            for _ in range(200):   # 2 s for the other thread to take it, even on a loaded machine
                time.sleep(0.01)   # where Python would raise a noted signal
            steps.append("block finished")
        steps.append("after the block")
    assert steps == ["block finished"]
