"""One progress bar for long compile stages, on stderr so stdout stays clean.

    with progress_bar("GPTQ rounding", total=n, show=True) as step:
        ...; step()          # or step(k) to advance by k
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator


@contextmanager
def progress_bar(label: str, total: int, show: bool) -> Iterator[Callable[[int], None]]:
    if not show:
        yield lambda k=1: None
        return
    from rich.console import Console
    from rich.progress import Progress
    with Progress(transient=True, console=Console(stderr=True)) as bar:  # transient: no trace left
        task = bar.add_task(label, total=total)
        yield lambda k=1: bar.advance(task, k)
