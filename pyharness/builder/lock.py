"""One lock file per thing being made in a shared directory, so concurrent
processes (pytest-xdist workers, a matrix) wait for one maker instead of racing."""

from __future__ import annotations

import fcntl
import os
import threading
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


# -- a build in use: a shared lock on its lock file ---------------------------------

# The shared locks this process holds, oldest first (path -> descriptor).
_held: dict[str, int] = {}
_held_lock = threading.Lock()        # the matrix builds in threads
# At most this many at once, the oldest let go first: matrix --all with two
# trees uses 336 builds; a mutation worker uses hundreds of images one after
# the other, each only while its step runs (a descriptor each).
MAX_HELD = 512


def hold_shared(lock_file: Path) -> None:
    """Hold a shared lock on ``lock_file`` while this process lives (or
    until :func:`release`): a remover, who needs it exclusively, skips what
    it protects. Blocks while a maker holds it. A lock file that cannot be
    opened (a read-only cache nobody can remove from) is not held."""
    key = str(lock_file)
    with _held_lock:
        if key in _held:
            _held[key] = _held.pop(key)     # most recently used last
            return
    try:
        fd = os.open(lock_file, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        try:
            fd = os.open(lock_file, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o666)
        except OSError:
            return
    except OSError:
        return
    fcntl.flock(fd, fcntl.LOCK_SH)
    with _held_lock:
        if key in _held:                    # another thread took it meanwhile
            os.close(fd)
            return
        _held[key] = fd
        oldest = list(_held)[:max(0, len(_held) - MAX_HELD)]
    for name in oldest:
        release(Path(name))


def release(lock_file: Path) -> None:
    """Let go of a shared lock :func:`hold_shared` took (before this process
    takes the same lock exclusively: flock would wait for itself)."""
    with _held_lock:
        fd = _held.pop(str(lock_file), None)
    if fd is not None:
        os.close(fd)


def _forget_in_child() -> None:
    """A forked child (a matrix worker) holds nothing of its own: its
    parent's holds stay the parent's (closing the child's copies of the
    descriptors keeps them, the lock belongs to the open file)."""
    for fd in _held.values():
        try:
            os.close(fd)
        except OSError:
            pass
    _held.clear()


os.register_at_fork(after_in_child=_forget_in_child)
