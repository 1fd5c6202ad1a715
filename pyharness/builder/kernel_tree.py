"""Whole kernel trees, for building a real kernel with kbuild.

``--kernel-src`` names a tree or a tarball. The fast path reads five files
of it (:mod:`pyharness.builder.kernelsrc`); a real kernel needs all of it.
A directory is used where it is and never written: kbuild builds with
``O=DIR`` elsewhere. A tarball (Debian's ``/usr/src/linux-source-X.Y.tar.xz``)
is unpacked once, whole, under the kernel cache
(``<cache>/trees/<name>-<key>``, key: the sha256 of the tarball's bytes,
recorded beside the tree), by ``tar`` into a scratch directory renamed
into place under a lock, no file larger than 256 MB.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from pyharness.builder import kernelsrc
from pyharness.builder.kernelsrc import KernelSourceError
from pyharness.builder import tarballs
from pyharness.builder.lock import exclusive
from pyharness.errors import HarnessError

TREES_DIR = "trees"
# What an in-tree build leaves that makes kbuild refuse O=DIR.
_IN_TREE_BUILD_LEFTOVERS = (".config", "include/config")


@dataclass(frozen=True)
class FullTree:
    """A whole kernel tree kbuild can build."""

    given: str           # the tree or tarball as the user named it (absolute)
    root: Path           # the tree itself, or the unpacked tarball
    version: str         # "6.12.118", from its Makefile
    generation: str      # the unwinder generation (kernelsrc.detect_generation)

    @property
    def label(self) -> str:
        """The tree in ids and directory names: ``linux-6.12.118``."""
        return f"linux-{self.version}"


def open_full_tree(value: str, cache_dir: Path) -> FullTree:
    """``--kernel-src VALUE`` as a whole tree: a directory, or a tarball
    unpacked once under ``cache_dir/trees``."""
    path = Path(os.path.abspath(os.path.expanduser(value)))
    if path.is_dir():
        root = path
    elif path.is_file() and kernelsrc.is_tarball(path):
        root = _unpacked(path, cache_dir / TREES_DIR)
    else:
        what = "not a directory or a kernel source tarball" if path.exists() else "no such path"
        raise KernelSourceError(f"--kernel-src {value}: {what}; give the top directory of a "
                                "Linux kernel tree or a Debian "
                                "/usr/src/linux-source-X.Y.tar.xz")
    tree = kernelsrc.inspect(root)
    _check_clean(root)
    return FullTree(given=str(path), root=root, version=tree.version,
                    generation=tree.generation)


def _check_clean(root: Path) -> None:
    for name in _IN_TREE_BUILD_LEFTOVERS:
        if (root / name).exists():
            raise KernelSourceError(
                f"{root} holds an in-tree build ({name}), and kbuild will not build such a "
                f"tree with O=DIR; run `make mrproper` in it (pyharness never writes to "
                "the tree itself), or give a clean copy")


def _unpacked(tarball: Path, trees_dir: Path) -> Path:
    """The tarball's tree, unpacked once per content (its bytes' sha256,
    recorded beside the tree). A tree unpacked before trees were recorded
    (named for the tarball's name, size and mtime: the kernels built from
    it are keyed by its place) is kept when its files are the tarball's,
    checked once."""
    try:
        digest = tarballs.content_digest(tarball)
    except HarnessError as err:
        raise KernelSourceError(str(err)) from None
    name = kernelsrc.source_name(tarball)
    st = tarball.stat()
    old_key = hashlib.sha256(f"{tarball.name}\0{st.st_size}\0{st.st_mtime_ns}".encode())
    earlier = trees_dir / f"{name}-{old_key.hexdigest()[:12]}"
    dest = trees_dir / f"{name}-{digest[:12]}"
    found = _recorded(digest, earlier, dest)
    if found is not None:
        return found
    with exclusive(trees_dir, dest.name, f"{dest} for the tree of {tarball}",
                   KernelSourceError):
        found = _recorded(digest, earlier, dest)
        if found is not None:
            return found
        for tree in (earlier, dest):
            if tree.is_dir() and tarballs.recorded_digest(tree) is None \
                    and tarballs.same_files(tarball, tree):
                tarballs.record_digest(tree, tarball, digest)
                return tree
        scratch = Path(tempfile.mkdtemp(dir=trees_dir, prefix=f".{dest.name}."))
        try:
            _untar(tarball, scratch)
            if dest.is_dir():             # another tarball's files, or half of them
                shutil.rmtree(dest)
            os.rename(scratch, dest)
            tarballs.record_digest(dest, tarball, digest)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return dest


def _recorded(digest: str, *trees: Path) -> Path | None:
    return next((tree for tree in trees
                 if tree.is_dir() and tarballs.recorded_digest(tree) == digest), None)


def _untar(tarball: Path, dest: Path) -> None:
    """The tarball's one top directory's contents into ``dest``, no file
    larger than :data:`pyharness.builder.tarballs.MAX_TREE_FILE`."""
    tar = shutil.which("tar")
    if tar is None:
        raise KernelSourceError("`tar` is not on PATH; install it with `apt-get install tar`")
    proc = subprocess.run([tar, "-xf", str(tarball), "-C", str(dest),
                           "--strip-components=1", "--no-same-owner"],
                          capture_output=True, text=True, errors="replace",
                          preexec_fn=tarballs.limit_file_size)
    if "File too large" in proc.stderr:     # GNU tar only warns when it cannot truncate
        raise KernelSourceError(
            f"{tarball}: a member is larger than any kernel source file "
            f"({tarballs.MAX_TREE_FILE // (1024 * 1024)} MB): not a kernel source tarball")
    if proc.returncode != 0:
        tail = " ".join(" ".join(proc.stderr.strip().splitlines()[-3:]).split())
        raise KernelSourceError(f"{tarball}: cannot unpack it (tar exit {proc.returncode}: "
                                f"{tail})")
