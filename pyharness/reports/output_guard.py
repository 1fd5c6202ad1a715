"""What a report may replace: nothing the harness did not write.

Every command that writes a report (``matrix --json/--junit/--html``,
``report merge``, ``mutate --json/--html``) checks each file it was told
to write with :func:`check_outputs` before it does any work. A report may
go where there is no file yet, or replace a file that is itself a report
of the same kind that pyharness wrote, recognised by its first bytes
(:class:`ReportKind`); a stream (a pipe, ``/dev/stdout``, ``/dev/null``)
is written, not replaced. Anything else (a configuration, a source file,
the README, a report of another kind) is bad input, exit 2, and is left
as it was. Two reports in one file, a report over one of the command's
inputs, a directory, a missing directory, a symlink loop and a file that
cannot be written are refused the same way.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

from pyharness.errors import HarnessError

# How much of an existing file is read to recognise it.
_HEAD_BYTES = 4096


@dataclass(frozen=True)
class ReportKind:
    """One kind of report: its name in messages and how its text starts."""

    name: str                       # "JSON matrix report"
    marks: tuple[str, ...]          # regexes, one of which matches the file's head

    def written_by_us(self, head: str) -> bool:
        return any(re.search(mark, head) for mark in self.marks)


# The marks of pyharness's own reports. The HTML's generator line came
# later; a page from before it starts with its title.
MATRIX_JSON = ReportKind("JSON matrix report",
                         (r'\A\s*\{\s*"format"\s*:\s*"pyharness-matrix/\d+"',))
MATRIX_JUNIT = ReportKind("JUnit report",
                          (r'\A<\?xml[^>]*\?>\s*<testsuites name="pyharness-matrix"',))
MATRIX_HTML_GENERATOR = "pyharness matrix report"
MATRIX_HTML = ReportKind("HTML matrix report", (
    rf'\A<!DOCTYPE html>\s*<html[^>]*><head><meta charset="utf-8">\s*'
    rf'<meta name="generator" content="{MATRIX_HTML_GENERATOR}">',
    r'\A<!DOCTYPE html>\s*<html[^>]*><head><meta charset="utf-8">\s*<meta name="viewport"'
    r'[^>]*>\s*<title>pyharness matrix'))


@dataclass(frozen=True)
class Output:
    """A report the command was asked to write: ``--json FILE``."""

    flag: str                       # "--json"
    path: Path
    kind: ReportKind


def real_path(path: Path, flag: str) -> Path:
    """``path`` with every symlink followed; a loop is bad input."""
    try:
        return Path(os.path.realpath(path, strict=True))
    except FileNotFoundError:
        return Path(os.path.realpath(path))
    except (OSError, RuntimeError) as err:
        if getattr(err, "errno", errno.ELOOP) != errno.ELOOP:
            return Path(os.path.realpath(path))
    where = f"{flag} {path}" if flag else str(path)
    raise HarnessError(f"{where}: a symlink loop; give a file name that leads to a file")


def _head(path: Path, flag: str) -> str:
    try:
        with open(path, "rb") as f:
            return f.read(_HEAD_BYTES).decode("utf-8", errors="replace")
    except OSError as err:
        raise HarnessError(f"{flag} {path}: cannot read what is there to check it is a "
                           f"report ({err.strerror}); give another file") from None


def _check_one(output: Output) -> None:
    flag, path, kind = output.flag, output.path, output.kind
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        mode = None
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise HarnessError(f"{flag} {path}: a symlink loop; give a file name that "
                               "leads to a file") from None
        raise HarnessError(f"{flag} {path}: cannot look at it ({err.strerror})") from None
    if mode is None:
        if path.is_symlink():
            raise HarnessError(f"{flag} {path}: a symlink to a file that does not exist; "
                               "give the file's own name")
        parent = path.parent if str(path.parent) else Path(".")
        if not parent.is_dir():
            raise HarnessError(f"{flag} {path}: the directory {parent} does not exist")
        if not os.access(parent, os.W_OK):
            raise HarnessError(f"{flag} {path}: not writable (the directory {parent} is not)")
        return
    if stat.S_ISDIR(mode):
        raise HarnessError(f"{flag} {path}: is a directory; give a file name")
    if stat.S_ISFIFO(mode) or stat.S_ISCHR(mode):
        return                           # a stream: written, nothing replaced
    if not stat.S_ISREG(mode):
        raise HarnessError(f"{flag} {path}: not a regular file; give a file name")
    if not kind.written_by_us(_head(path, flag)):
        raise HarnessError(f"{flag} {path}: the file is there and is not a {kind.name} "
                           "pyharness wrote, which is all a report may replace; remove it "
                           "or give another file")
    if not os.access(path, os.W_OK):
        raise HarnessError(f"{flag} {path}: not writable")


def check_outputs(outputs: Iterable[Output], inputs: Mapping[Path, str] | None = None) -> None:
    """Refuse, before any work, every report that would replace what it may
    not: ``inputs`` maps the command's input files to what to say of a
    report that would replace one ("is one of the reports being merged")."""
    owners: dict[Path, str] = {}
    real_inputs = {real_path(p, ""): what for p, what in (inputs or {}).items()}
    for output in outputs:
        real = real_path(output.path, output.flag)
        if real in owners:
            raise HarnessError(f"{output.flag} {output.path}: the same file as "
                               f"{owners[real]}; give each report a file of its own")
        owners[real] = output.flag
        if real in real_inputs:
            raise HarnessError(f"{output.flag} {output.path}: {real_inputs[real]}; "
                               "give another file")
        _check_one(output)

