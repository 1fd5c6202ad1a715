"""The build trees under a build base: which are ours, and removing old ones.

A build tree is a directory ``<config name>-<12 hex digits>`` that
:mod:`pyharness.builder.cache` made: it holds the build's stamp
(``build.json``) or, while the build runs or after it failed, the marker
written when the tree was made, and either names the digest the
directory's name ends in. The finished builds are in the base, the
persistent trees they compile in (:mod:`pyharness.builder.worktree`) in
``<base>/work``, each set bounded on its own. Nothing else under the base (other files, the
generated matrix configurations, a tree another tool made, a symlink) is
ever a build tree, so nothing else is ever removed.

Each tree's last use is the time of its stamp (a cached build touches it)
or marker. A tree is removed only while this process holds its build lock,
so a build of it in progress is never pulled away, and never while a
process uses it (it holds the same lock shared, from the moment
:func:`pyharness.builder.cache.build` hands the build over: a running
matrix's images stay); its zero-byte lock file stays, because removing it
could let two builders of that tree miss each other.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

STAMP = "build.json"
MARKER = ".pyharness-build-tree"
# Where the persistent work trees are, under the base (their own namespace:
# a work tree and a finished build of one configuration are bounded apart).
WORK_DIR = "work"
# The newest trees per configuration a build keeps ($PYHARNESS_KEEP_BUILDS; 0: all).
KEEP_ENV = "PYHARNESS_KEEP_BUILDS"
DEFAULT_KEEP = 3

_NAME_RE = re.compile(r"(?P<config>.+)-(?P<digest>[0-9a-f]{12})")


@dataclass(frozen=True)
class BuildTree:
    path: Path
    config_name: str
    last_used: float          # seconds since the epoch

    def size(self) -> int:
        """Bytes in the tree's files (symlinks not followed)."""
        total = 0
        for root, _, files in os.walk(self.path):
            for name in files:
                try:
                    total += os.lstat(os.path.join(root, name)).st_size
                except OSError:
                    pass
        return total


def lock_path(tree: Path) -> Path:
    """The lock file :func:`pyharness.builder.cache.build` holds while it builds ``tree``."""
    return tree.parent / f".{tree.name}.lock"


def write_marker(tree: Path, digest: str) -> None:
    """Say that ``tree`` is a build tree of this tool (before anything is built in it)."""
    marker = tree / MARKER
    if not marker.exists():
        marker.write_text(json.dumps({"digest": digest}) + "\n", encoding="utf-8")


def _digest_in(path: Path) -> str | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    digest = data.get("digest") if isinstance(data, dict) else None
    return digest if isinstance(digest, str) else None


def as_build_tree(path: Path) -> BuildTree | None:
    """``path`` as one of our build trees, or None if it is anything else."""
    match = _NAME_RE.fullmatch(path.name)
    if match is None or path.is_symlink() or not path.is_dir():
        return None
    times = []
    for name in (STAMP, MARKER):
        digest = _digest_in(path / name)
        if digest is not None and digest.startswith(match["digest"]):
            times.append((path / name).stat().st_mtime)
    if not times:
        return None
    return BuildTree(path=path, config_name=match["config"], last_used=max(times))


def build_trees(base: Path) -> list[BuildTree]:
    """Our build trees under ``base``, newest first."""
    try:
        entries = list(base.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return []
    trees = [t for t in map(as_build_tree, entries) if t is not None]
    return sorted(trees, key=lambda t: (-t.last_used, t.path.name))


def older_than_newest(trees: list[BuildTree], keep: int) -> list[BuildTree]:
    """The trees beyond the newest ``keep`` of each configuration."""
    seen: dict[str, int] = {}
    old = []
    for tree in trees:                      # newest first
        seen[tree.config_name] = seen.get(tree.config_name, 0) + 1
        if seen[tree.config_name] > keep:
            old.append(tree)
    return old


# Why a tree was not removed: a build makes it, or a process uses it.
IN_USE = "in use (a build or a run holds it)"


def try_remove(tree: BuildTree) -> str | None:
    """Remove ``tree`` unless a build or a user holds its lock (a user holds
    it shared: :func:`pyharness.builder.lock.hold_shared`); None when it
    was removed, else why not (:data:`IN_USE`, or what the file system said)."""
    if as_build_tree(tree.path) is None:
        return "changed since it was listed"
    try:
        lock = open(lock_path(tree.path), "a")
    except OSError as err:
        return f"cannot be removed: {err.strerror}"
    with lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return IN_USE
        try:
            shutil.rmtree(tree.path)
        except OSError as err:
            return f"cannot be removed: {err.strerror}"
    return None


def remove_tree(tree: BuildTree) -> bool:
    """Remove ``tree`` unless it is in use; True if it was removed."""
    return try_remove(tree) is None


def keep_from_environment() -> int:
    text = os.environ.get(KEEP_ENV, "")
    try:
        return max(0, int(text)) if text.strip() else DEFAULT_KEEP
    except ValueError:
        return DEFAULT_KEEP


def prune_after_build(base: Path, config_name: str, current: Path) -> None:
    """Bound the trees of one configuration after a build: keep the newest few."""
    keep = keep_from_environment()
    if keep == 0:
        return
    mine = [t for t in build_trees(base) if t.config_name == config_name]
    for tree in older_than_newest(mine, keep):
        if tree.path != current:
            try:
                remove_tree(tree)
            except OSError:
                pass                        # a bound, not a promise: try again next build
