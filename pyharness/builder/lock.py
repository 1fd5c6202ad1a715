"""One lock file per thing being made in a shared directory, so concurrent
processes (pytest-xdist workers, a matrix) wait for one maker instead of racing."""

from __future__ import annotations

import fcntl
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from pyharness.errors import HarnessError


@contextmanager
def exclusive(directory: Path, name: str, what: str,
              error: type[HarnessError] = HarnessError) -> Iterator[None]:
    """Hold ``directory/.NAME.lock`` exclusively; ``directory`` is created.
    A directory that cannot be written is ``error`` saying what was being made."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        lock = open(directory / f".{name}.lock", "w")
    except OSError as err:
        raise error(f"cannot create {what}: {err.strerror}; pass a writable --out DIR") \
            from None
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield
