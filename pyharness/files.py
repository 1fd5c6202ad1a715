"""Writing files so that no reader ever sees half of one.

Several processes share a build directory (pytest-xdist workers, two
matrices, a user's shell): a file there is written under a name of this
process's own and then renamed over the target (``os.replace``), so a
reader sees the old file or the new one, never a mix, and two writers
never tear each other's scratch file.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import stat
from pathlib import Path


def write_atomically(path: Path, data: str | bytes) -> None:
    """Replace ``path`` with ``data`` in one step (mode as a new file gets).

    A symlink is followed, so the file it names is replaced; a path that is
    not a regular file (``/dev/stdout``, a FIFO) is written in place."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    target = Path(os.path.realpath(path)) if path.is_symlink() else path
    try:
        special = not stat.S_ISREG(target.stat().st_mode)
    except FileNotFoundError:
        special = False
    if special:
        with open(target, "wb") as f:
            f.write(payload)
        return
    temp = target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
        os.replace(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def sha256_of(path: Path) -> str:
    """The sha256 of a file's bytes, read a megabyte at a time."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_if_changed(path: Path, text: str) -> bool:
    """Write ``text`` (atomically) unless ``path`` already holds it.

    An unchanged file keeps its mtime, so make/ninja see nothing to redo,
    and a read-only directory that already holds the file needs no write.
    Returns whether it wrote."""
    try:
        if path.read_bytes() == text.encode("utf-8"):
            return False
    except OSError:
        pass
    write_atomically(path, text)
    return True
