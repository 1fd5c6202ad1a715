"""Which state of a kernel tree was tested: its git commit, whether it is
dirty, and a hash of its diff (docs/kernel-src.md, "Which tree was tested").

:func:`tree_provenance` asks git about a tree given to ``--kernel-src``:

- the tree counts as a git work tree only when it is one itself (its top
  directory holds ``.git``): a tree copied into another project's work
  tree (the build cache's extracted tarballs are inside the lab's own) is
  not that project's commit, so git never looks above the tree
  (``GIT_CEILING_DIRECTORIES``);
- ``commit``: ``HEAD``'s full hash;
- ``dirty`` and ``diff_sha256``: ``git diff HEAD`` of the tracked files,
  staged and unstaged alike (the build reads the working tree, not the
  index), with the options that change its bytes pinned (binary patches
  with full object ids, no renames, no colour, no external diff or
  textconv, git's default prefixes and algorithm), so one state of the
  tree gives one hash whatever the user's git configuration. Untracked
  files are left out, as ``git describe --dirty`` leaves them out: in a
  kernel tree they are mostly build products. A clean tree has no diff
  hash.

Nothing here raises: a tree without ``.git``, a missing git, a repository
owned by another user (git's ``safe.directory``: respected, never
overridden), a broken repository or a git that does not answer in time
each give a :class:`TreeProvenance` without a commit that says why. git
runs without the caller's ``GIT_*`` variables, with no pager, prompt,
fsmonitor or optional lock, and its messages are kept as data (printed
only through :func:`pyharness.terminal.visible`).
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import shutil
import subprocess
from dataclasses import asdict, dataclass, fields
from pathlib import Path

GIT = "git"
GIT_TIMEOUT_S = 60.0
NOT_A_WORK_TREE = "not a git work tree"
A_TARBALL = "a tarball, not a git work tree"
# What the hash of a diff is taken over: these make `git diff HEAD` the same
# bytes for the same tree state whatever the user's configuration.
DIFF_ARGS = ("diff", "HEAD", "--binary", "--full-index", "--no-renames", "--no-color",
             "--no-ext-diff", "--no-textconv", "--diff-algorithm=myers", "--src-prefix=a/",
             "--dst-prefix=b/", "--ignore-submodules=none", "-O/dev/null", "--")
_CONFIG = ("core.fsmonitor=false", "core.pager=cat", "core.quotePath=true",
           "diff.noprefix=false", "diff.mnemonicPrefix=false", "diff.relative=false",
           "diff.indentHeuristic=true", "diff.suppressBlankEmpty=false",
           "diff.context=3", "diff.interHunkContext=0")
_OBJECT_ID = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_MESSAGE_CHARS = 200


@dataclass(frozen=True)
class TreeProvenance:
    """What git says about a tree: its commit, or why there is none."""

    commit: str | None = None          # HEAD's full hash
    dirty: bool | None = None          # tracked files differ from HEAD
    diff_sha256: str | None = None     # sha256 of `git diff HEAD` (DIFF_ARGS); None when clean
    why_no_commit: str | None = None   # "not a git work tree", ...; None with a commit

    def describe(self, *, short: bool = True) -> str:
        """``commit 0123456789ab, dirty (diff sha256 89abcdef01234567)``,
        ``commit 0123456789ab, clean``, or why there is no commit."""
        if self.commit is None:
            return self.why_no_commit or NOT_A_WORK_TREE
        commit = self.commit[:12] if short else self.commit
        if not self.dirty:
            return f"commit {commit}, clean"
        diff = (self.diff_sha256 or "")[:16] if short else self.diff_sha256
        return f"commit {commit}, dirty (diff sha256 {diff})"

    def to_json(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: object) -> TreeProvenance:
        """The record's ``tree`` object; ValueError naming what is wrong."""
        if not isinstance(data, dict):
            raise ValueError("is not an object")
        kinds = {"commit": str, "dirty": bool, "diff_sha256": str, "why_no_commit": str}
        values = {}
        for f in fields(cls):
            value = data.get(f.name)
            if value is not None and not isinstance(value, kinds[f.name]):
                raise ValueError(f"has {f.name} {value!r}, not a {kinds[f.name].__name__} "
                                 "or null")
            values[f.name] = value
        return cls(**values)


def not_git(why: str = NOT_A_WORK_TREE) -> TreeProvenance:
    return TreeProvenance(why_no_commit=why)


def _environment(root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(GIT_CEILING_DIRECTORIES=str(root.parent), GIT_TERMINAL_PROMPT="0",
               GIT_OPTIONAL_LOCKS="0", GIT_PAGER="cat", LC_ALL="C")
    return env


class _GitFailed(Exception):
    """git could not answer; the message says why, for the record."""


def _first_line(data: bytes) -> str:
    text = data.decode("utf-8", "replace").strip()
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "no message")
    return line.removeprefix("fatal: ").removeprefix("error: ")[:_MESSAGE_CHARS]


def _git(git: str, root: Path, *args: str, quiet_failure: bool = False) -> bytes:
    """git's output; with ``quiet_failure`` a failure without a message is
    an empty answer (``rev-parse --verify --quiet`` of a missing ref)."""
    config = [arg for pair in _CONFIG for arg in ("-c", pair)]
    try:
        proc = subprocess.run([git, "--no-pager", *config, "-C", str(root), *args],
                              stdin=subprocess.DEVNULL, capture_output=True,
                              env=_environment(root), timeout=GIT_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise _GitFailed(f"git did not answer within {GIT_TIMEOUT_S:g} s") from None
    except OSError as err:
        raise _GitFailed(f"git could not be run ({err.strerror})") from None
    if proc.returncode != 0 and quiet_failure and not proc.stderr.strip():
        return b""
    if proc.returncode != 0:
        message = _first_line(proc.stderr)
        if "dubious ownership" in message:
            raise _GitFailed("a git work tree owned by another user: git refuses to read "
                             "it (safe.directory); run as its owner, or trust it with "
                             "`git config --global --add safe.directory DIR`")
        raise _GitFailed(f"git could not read the repository: {message}")
    return proc.stdout


def _ask(git: str, root: Path) -> TreeProvenance:
    top = _git(git, root, "rev-parse", "--show-toplevel").decode("utf-8", "replace").strip()
    if not top or Path(top).resolve() != root.resolve():
        return not_git()
    head = _git(git, root, "rev-parse", "--verify", "--quiet", "HEAD^{commit}",
                quiet_failure=True)
    commit = head.decode("ascii", "replace").strip()
    if not commit:
        return not_git("a git work tree with no commit yet")
    if not _OBJECT_ID.fullmatch(commit):
        raise _GitFailed("git could not read the repository: HEAD is not a commit id")
    diff = _git(git, root, *DIFF_ARGS)
    if not diff:
        return TreeProvenance(commit=commit, dirty=False)
    return TreeProvenance(commit=commit, dirty=True,
                          diff_sha256=hashlib.sha256(diff).hexdigest())


def tree_provenance(root: Path | str) -> TreeProvenance:
    """The tree's commit, dirtiness and diff hash, or why there are none."""
    root = Path(root)
    if not (root / ".git").exists():
        return not_git()
    git = shutil.which(GIT)
    if git is None:
        return not_git("a git work tree, but git is not installed: no commit recorded")
    try:
        return _ask(git, root)
    except _GitFailed as err:
        return not_git(str(err))
    except subprocess.SubprocessError as err:   # anything else git's running raised
        return not_git(f"git could not be run ({type(err).__name__})")


@functools.lru_cache(maxsize=64)
def tree_provenance_once(root: str) -> TreeProvenance:
    """:func:`tree_provenance`, asked once per process and tree: a command
    (a matrix, its builds and its records) sees the tree as it was when it
    first opened it, and a large tree's diff is not taken again per build."""
    return tree_provenance(root)
