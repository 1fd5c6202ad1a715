"""The list of equivalent mutants: ``mutants/equivalent.txt``.

One entry per line: a mutant key, then the argument why no run could ever
tell the mutant from the original, on the same line::

    csrc/include/stacktrace/common.h:const:0f3c1a9e2b  every caller only tests the value against 0

Blank lines and lines starting with ``#`` are comments. A key names the
file, the operator, and a hash of the original and mutated line text and
of the occurrence index among identical edits of that file: no line
number, so an entry survives edits elsewhere in the file
(docs/mutation.md). A listed mutant is still run: if a run kills it, the
report says the entry is wrong.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from pyharness.errors import HarnessError

_KEY = re.compile(r"^(?P<key>\S+:[a-z][a-z-]*:[0-9a-f]{10})(?:\s+(?P<why>.*))?$")


@dataclass(frozen=True)
class Equivalent:
    key: str
    argument: str
    line: int


def default_path(root: Path, tree: str = "lab") -> Path:
    name = "equivalent.txt" if tree == "lab" else f"equivalent-{tree}.txt"
    return root / "mutants" / name


def parse(text: str, source: str) -> dict[str, Equivalent]:
    entries: dict[str, Equivalent] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _KEY.match(line)
        if not match:
            raise HarnessError(f"{source}:{number}: not `FILE:OPERATOR:HASH  argument`: "
                               f"{line[:60]!r}")
        key, why = match.group("key"), (match.group("why") or "").strip()
        if not why:
            raise HarnessError(f"{source}:{number}: {key} has no argument; each entry says "
                               "why no run could tell the mutant from the original")
        if key in entries:
            raise HarnessError(f"{source}:{number}: {key} is listed twice (first on line "
                               f"{entries[key].line})")
        entries[key] = Equivalent(key, why, number)
    return entries


# An equivalents list is a few hundred lines; a bigger file is not one.
MAX_BYTES = 1 << 20


def load(path: Path, required: bool = False) -> dict[str, Equivalent]:
    """The entries of ``path``; a missing file is an empty list unless
    required. Only a regular file of UTF-8 text, at most :data:`MAX_BYTES`,
    is read (``/dev/zero`` or a FIFO would never end)."""
    try:
        # O_NONBLOCK: opening a FIFO waits for a writer otherwise.
        with open(os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC), "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise HarnessError(f"--equivalents {path}: not a regular file; give the "
                                   "equivalents list (mutants/equivalent.txt)")
            data = f.read(MAX_BYTES + 1)
    except FileNotFoundError:
        if required:
            raise HarnessError(f"--equivalents {path}: no such file") from None
        return {}
    except OSError as err:
        raise HarnessError(f"{path}: cannot read it ({err.strerror})") from None
    if len(data) > MAX_BYTES:
        raise HarnessError(f"{path}: larger than {MAX_BYTES // 1024} KB: not an equivalents "
                           "list (one `FILE:OPERATOR:HASH  argument` a line)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[:err.start].count(b"\n") + 1
        raise HarnessError(f"{path}:{line}: not UTF-8 text (byte {err.start}); the "
                           "equivalents list is UTF-8") from None
    return parse(text, str(path))
