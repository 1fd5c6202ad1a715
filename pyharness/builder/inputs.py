"""The files a build read, hashed and named so that a key says what was built
and not where.

A file is named by a *label*: ``lab:csrc/include/percpu.h`` under the lab's
checkout, ``tree:arch/arm64/kvm/stacktrace.c`` under a kernel tree, its
absolute path otherwise (the compiler's own headers). Two checkouts of
the same sources give the same labels, so identical sources share a
build (the place of a kernel tree is in the build's recipe instead: its
compile database names the tree's files). Files under the build tree are
not inputs: the build writes them itself, from its configuration.

Hashes are sha256 of the bytes. A process remembers a file's hash for as
long as its stat (inode, size, mtime, ctime) stays the same, and only for
a file whose ctime is older than :data:`SETTLE_NS`: the kernel moves a
file's ctime forward on every write (no tool can set it back), so a file
changed since is hashed again.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

# A file's timestamps come from a clock that may lag real time by a tick
# (10 ms with HZ=100): a write this long after a moment may carry a ctime
# before it.
SETTLE_NS = 20_000_000
# The hash recorded for a file that changed while the build read it: it
# never matches a file's real hash, so the build is not found again.
CHANGED_DURING_BUILD = "changed-during-build"

_LAB, _TREE = "lab:", "tree:"

_remembered: dict[str, tuple[tuple[int, ...], str]] = {}


def _signature(st: os.stat_result) -> tuple[int, ...]:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def file_hash(path: Path | str, *, unchanged_since_ns: int | None = None) -> str | None:
    """The sha256 of the file at ``path``; None when it cannot be read, or,
    with ``unchanged_since_ns`` (a ``time.time_ns()``), when its ctime is
    later: it changed since then. (A write more than :data:`SETTLE_NS` after
    that moment always has a later ctime; one before it never has.)"""
    name = os.fspath(path)
    try:
        st = os.stat(name)
    except OSError:
        return None
    if unchanged_since_ns is not None and st.st_ctime_ns > unchanged_since_ns:
        return None
    signature = _signature(st)
    known = _remembered.get(name)
    if known is not None and known[0] == signature:
        return known[1]
    h = hashlib.sha256()
    try:
        with open(name, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    except OSError:
        return None
    digest = h.hexdigest()
    if st.st_ctime_ns < time.time_ns() - SETTLE_NS:
        _remembered[name] = (signature, digest)
    return digest


@dataclass(frozen=True)
class Roots:
    """Where labels point: the lab's checkout, the kernel tree (if any) and
    the build tree (whose files are not inputs)."""

    lab: Path
    tree: Path | None
    build: Path

    def label(self, path: str) -> str | None:
        """The label of an absolute, normalised path; None under the build tree."""
        if _under(path, self.build):
            return None
        if self.tree is not None and _under(path, self.tree):
            return _TREE + os.path.relpath(path, self.tree)
        if _under(path, self.lab):
            return _LAB + os.path.relpath(path, self.lab)
        return path

    def path(self, label: str) -> str:
        """The file a label names (a string: lookups make many)."""
        if label.startswith(_TREE) and self.tree is not None:
            return os.path.join(self.tree, label[len(_TREE):])
        if label.startswith(_LAB):
            return os.path.join(self.lab, label[len(_LAB):])
        return label


def _under(path: str, root: Path) -> bool:
    prefix = os.fspath(root).rstrip(os.sep) + os.sep
    return path.startswith(prefix)


# The lab's sources, all of which a build's recipe holds: every file under
# csrc/ (a new one may be globbed into the build), the CMake files and the
# kallsyms generator (which run no compiler, so no depfile names them).
SOURCE_DIRS = ("csrc",)
SOURCE_FILES_IN = ("cmake",)
SOURCE_FILES = ("CMakeLists.txt", "pyharness/builder/kallsyms_gen.py")


def source_paths(root: str) -> list[str]:
    """The lab's sources under the checkout ``root``, sorted (strings: a
    lookup lists them every time)."""
    found = [os.path.join(root, name) for name in SOURCE_FILES]
    for name in SOURCE_FILES_IN:
        try:
            with os.scandir(os.path.join(root, name)) as entries:
                found += [e.path for e in entries if e.is_file()]
        except OSError:         # a checkout without it (a test's partial copy)
            pass
    for name in SOURCE_DIRS:
        for directory, _, files in os.walk(os.path.join(root, name)):
            found += [os.path.join(directory, f) for f in files]
    return sorted(found)


def source_files(root: Path) -> list[Path]:
    """The lab's sources under the checkout ``root``, sorted."""
    return [Path(p) for p in source_paths(str(root)) if os.path.isfile(p)]


def source_hashes(root: Path, *,
                  unchanged_since_ns: int | None = None) -> dict[str, str | None]:
    """The lab's sources under ``root`` by path relative to it, and their
    sha256 (None: unreadable, or changed since ``unchanged_since_ns``)."""
    prefix = len(str(root))
    return {path[prefix:]: file_hash(path, unchanged_since_ns=unchanged_since_ns)
            for path in source_paths(str(root))}


def moved_during_build(root: Path, sources: Mapping[str, str | None], since_ns: int,
                       compiled: Mapping[str, str | None]) -> list[str]:
    """What changed while a build ran: a lab source of its recipe
    (``sources``, hashed at ``since_ns``) that hashes otherwise now or whose
    ctime moved since (the CMake files and the kallsyms generator are read
    by no compiler, so no depfile follows them), and a file the compile
    read (``compiled``) that changed while it ran. A build that read any of
    them is not what its key says."""
    now = source_hashes(root, unchanged_since_ns=since_ns)
    moved = [_LAB + name.lstrip(os.sep) for name in sorted(sources.keys() | now.keys())
             if now.get(name) != sources.get(name)]
    return moved + [label for label, digest in compiled.items() if digest is None]


def current_hashes(labels: Iterable[str], roots: Roots) -> dict[str, str | None]:
    """Each label's file hashed as it is now (None: missing or unreadable)."""
    return {label: file_hash(roots.path(label)) for label in labels}


def content_key(recipe: str, hashes: Mapping[str, str | None]) -> str:
    """The key of a build: its recipe and every file it read, by label and hash."""
    h = hashlib.sha256(f"pyharness build\0{recipe}\0".encode())
    for label in sorted(hashes):
        h.update(f"{label}\0{hashes[label] or CHANGED_DURING_BUILD}\0".encode())
    return h.hexdigest()


def all_settled(hashes: Mapping[str, str | None]) -> bool:
    return all(value is not None for value in hashes.values())
