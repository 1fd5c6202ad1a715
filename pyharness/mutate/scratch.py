"""Where a mutation run keeps its copies of the trees: under the build
directory, in ``<base>/mutate/scratch/<pid>-<random>``, never in /tmp.

Each run holds the lock file beside its directory (made and locked before
the directory is) for as long as it lives. A run killed without cleaning
up (``kill -9``, a power cut) leaves its directory with a lock nobody
holds: the next run's start removes it.
"""

from __future__ import annotations

import fcntl
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from pyharness.errors import HarnessError

SCRATCH_DIR = "scratch"
_LOCK_SUFFIX = ".lock"


def _remove_stale(root: Path) -> None:
    """Remove the directories whose run is gone (their lock is free)."""
    for lock_file in root.glob(f".*{_LOCK_SUFFIX}"):
        name = lock_file.name[1:-len(_LOCK_SUFFIX)]
        try:
            fd = os.open(lock_file, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue                            # a run that lives
        try:
            shutil.rmtree(root / name, ignore_errors=True)
            lock_file.unlink(missing_ok=True)
        finally:
            os.close(fd)


@contextmanager
def scratch_dir(mutate_dir: Path) -> Iterator[Path]:
    """A directory of this run's own under ``mutate_dir/scratch``, removed
    at the end; stale ones of killed runs are removed first."""
    root = mutate_dir / SCRATCH_DIR
    try:
        root.mkdir(parents=True, exist_ok=True)
        _remove_stale(root)
        name = f"{os.getpid()}-{os.urandom(4).hex()}"
        fd = os.open(root / f".{name}{_LOCK_SUFFIX}", os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC,
                     0o644)
    except OSError as err:
        raise HarnessError(f"cannot make the mutation's scratch directory in {root}: "
                           f"{err.strerror}; pass a writable --out DIR") from None
    fcntl.flock(fd, fcntl.LOCK_EX)
    path = root / name
    try:
        path.mkdir()
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
        (root / f".{name}{_LOCK_SUFFIX}").unlink(missing_ok=True)
        os.close(fd)
