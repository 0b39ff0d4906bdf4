"""The output folder DIR of `edgeq compile`: edgeq only ever replaces a folder it wrote itself.

Every build carries MARKER (`.edgeq-build`), a small JSON: format, edgeq version, target, and
the files and folders edgeq wrote. An existing DIR is replaced only when it is empty, or when
it carries a valid marker and holds nothing the marker does not list (a user's file added to
a build keeps the whole build: it is refused, never sorted out). Whatever their contents,
these are never replaced: `/`, the home folder, the current folder and its ancestors, a mount
point, a symbolic link, and any folder holding the model or calibration file.

The build is written into a sibling staging folder `.NAME.XXXXXXXX` that holds an OWNER file
(the writing process) and is renamed into place at the end; an old build is first moved
aside into a second staging folder and removed only once the new one is in place. Signals
are held while a staging folder is made and during the swap, so SIGINT / SIGTERM never leave
DIR half-swapped nor a staging folder behind (`staging` removes it on the way out); a staging
folder left by a killed process (SIGKILL) is removed by the next compile into the same
parent, and only when its OWNER file names this machine and a process that is gone.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import tempfile
import threading
from pathlib import Path

from edgeq import __version__
from edgeq.errors import EdgeqError

MARKER = ".edgeq-build"
OWNER = ".edgeq-staging"
FORMAT = 1
HELD_SIGNALS = {signal.SIGINT, signal.SIGTERM}
NEW_FOLDER_FIX = "give -o a new or empty folder, e.g. -o build"


@contextlib.contextmanager
def signals_held():
    """SIGINT / SIGTERM wait until the block ends (then they are delivered as usual).

    Python-level handlers that only note the signal, not a thread's signal mask: the kernel
    hands a process-wide signal to any thread that does not mask it (a BLAS or progress-bar
    thread), and Python then raises it in the main thread mid-block all the same (once, under
    load, a probe folder was left behind that way). Off the main thread, where handlers cannot
    be set, the mask is the best there is."""
    if threading.current_thread() is not threading.main_thread():
        old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, HELD_SIGNALS)
        try:
            yield
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        return
    pending: list[int] = []
    old = {s: signal.signal(s, lambda signum, frame: pending.append(signum)) for s in HELD_SIGNALS}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, signal.SIG_DFL if handler is None else handler)
        if pending:
            signal.raise_signal(pending[0])   # the handler the block replaced takes it now


def _never_replaced(real: Path, inputs: list[Path]) -> str | None:
    """Why DIR (resolved) must never be replaced, or None."""
    cwd = Path.cwd().resolve()
    if real == Path(real.anchor):
        return "the root folder"
    if real == Path.home().resolve():
        return "your home folder"
    if real == cwd:
        return "the current folder"
    if real in cwd.parents:
        return "an ancestor of the current folder"
    for f in inputs:
        if real in f.parents:
            return f"the folder holding {f.name}"
    if os.path.ismount(real):
        return "a mount point"
    return None


def read_marker(folder: Path) -> dict | None:
    """The marker of an edgeq build, or None (absent, unreadable or not edgeq's format)."""
    try:
        data = json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("files"), list):
        return None
    return data


def folder_entries(folder: Path) -> list[str]:
    """Every file and folder below `folder`, relative, folders with a trailing `/`."""
    entries = []
    for root, dirs, files in os.walk(folder):
        rel = Path(root).relative_to(folder)
        entries += [f"{(rel / d).as_posix()}/" for d in dirs]
        entries += [(rel / f).as_posix() for f in files]
    return sorted(entries)


def check_output_dir(out_dir: Path, inputs: list[Path] = ()) -> None:
    """Fail (one line, before any work) unless DIR may receive a build: absent, empty, or an
    untouched edgeq build, and not a protected folder."""
    out_dir = Path(out_dir)
    inputs = [Path(f).resolve() for f in inputs]
    if out_dir.is_symlink():
        raise EdgeqError(f"-o {out_dir} is a symbolic link; edgeq does not replace it",
                         "give the folder it points to, or " + NEW_FOLDER_FIX)
    real = out_dir.resolve()
    why = _never_replaced(real, inputs)
    if why:
        raise EdgeqError(f"-o {out_dir} is {why}; edgeq never replaces it", NEW_FOLDER_FIX)
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise EdgeqError(f"output path {out_dir} exists and is not a directory", "choose another -o DIR")
    entries = folder_entries(out_dir)
    if not entries:
        return
    marker = read_marker(out_dir)
    if marker is None:
        raise EdgeqError(f"{out_dir} already exists and is not an edgeq build (it has no valid {MARKER} "
                         "marker), so edgeq will not replace it",
                         NEW_FOLDER_FIX + ", or move that folder away yourself")
    extra = [e for e in entries if e not in set(marker["files"]) | {MARKER, OWNER}]
    if extra:
        shown = ", ".join(extra[:3]) + (f" and {len(extra) - 3} more" if len(extra) > 3 else "")
        raise EdgeqError(f"{out_dir} is an edgeq build but also holds files edgeq did not write ({shown}), "
                         "so edgeq will not replace it",
                         "move those files out of the folder, or " + NEW_FOLDER_FIX)


def check_writable(out_dir: Path) -> None:
    """Fail before any work if DIR's parent cannot take the staging folder (a file in the
    way, no permission, a read-only file system)."""
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        with signals_held():
            os.rmdir(tempfile.mkdtemp(prefix=f".{out_dir.name}.probe.", dir=out_dir.parent))
    except OSError as e:
        raise EdgeqError(f"cannot write the output folder {out_dir}: {e.strerror or e}",
                         "choose a writable -o DIR") from None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_staging(out_dir: Path) -> list[Path]:
    """Remove staging folders of DIR left by edgeq processes that died (SIGKILL, a crash)."""
    removed = []
    prefix = f".{Path(out_dir).name}."
    for p in Path(out_dir).parent.iterdir():
        if not p.name.startswith(prefix) or p.is_symlink() or not p.is_dir():
            continue
        try:
            owner = json.loads((p / OWNER).read_text())
            pid, host = int(owner["pid"]), owner["host"]
        except (OSError, ValueError, KeyError, TypeError):
            continue  # not edgeq's staging folder: never touched
        if host == socket.gethostname() and pid != os.getpid() and not _alive(pid):
            shutil.rmtree(p, ignore_errors=True)
            removed.append(p)
    return removed


def new_staging(out_dir: Path) -> Path:
    """A staging folder beside DIR owned by this process. Call it with signals held, so no
    interrupt falls between the folder and its OWNER file, or before the caller owns it."""
    staged = Path(tempfile.mkdtemp(prefix=f".{Path(out_dir).name}.", dir=Path(out_dir).parent))
    (staged / OWNER).write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}) + "\n")
    return staged


@contextlib.contextmanager
def staging(out_dir: Path):
    """with staging(DIR) as tmp: build into tmp, then install(tmp, DIR, ...); on any
    exception or signal the staging folder is removed."""
    remove_stale_staging(out_dir)
    staged = None
    try:
        with signals_held():  # a signal held here is raised at the unblock, inside this try
            staged = new_staging(out_dir)
        yield staged
    except BaseException:
        if staged is not None:
            discard(staged)
        raise


def discard(staged: Path) -> None:
    shutil.rmtree(staged, ignore_errors=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def install(staged: Path, out_dir: Path, target: str, inputs: list[Path] = ()) -> None:
    """Mark the staged build and rename it into DIR (checked again: the compile took time);
    an old build moves aside and is removed once the new one is in place."""
    out_dir = Path(out_dir)
    check_output_dir(out_dir, inputs)
    (staged / OWNER).unlink()
    files = folder_entries(staged)
    (staged / MARKER).write_text(json.dumps({"format": FORMAT, "edgeq": __version__, "target": target,
                                             "files": files}, indent=1) + "\n")
    os.chmod(staged, 0o777 & ~_umask())  # mkdtemp made it 0700; DIR follows the umask like mkdir
    with signals_held():  # DIR is never seen half-swapped; a Ctrl-C waits for the swap
        aside = new_staging(out_dir) if out_dir.exists() else None
        if aside is not None:
            os.rename(out_dir, aside / "old")
        try:
            os.rename(staged, out_dir)
        except OSError:
            if aside is not None:
                os.rename(aside / "old", out_dir)  # the old build back where it was
                discard(aside)
            raise
        if aside is not None:
            discard(aside)
