"""Real kernels for the tests: each Debian tree's own kernel, built by
kbuild for the ``pkvm`` configuration into the persistent kernel cache
(``~/.cache/pyharness/kernels``, or ``$PYHARNESS_KERNEL_CACHE``), once;
later sessions find it there. A cold build takes a few minutes per tree;
xdist workers asking for the same kernel wait on its lock.

A generation whose Debian tarball is not installed is skipped, saying how
to install it (``sh scripts/setup.sh --tests`` does).
"""

from __future__ import annotations

import functools
import os
import subprocess
from pathlib import Path

import pytest

from pyharness.builder.kbuild import build_kernel
from pyharness.builder.kernel_image import KernelImage
from pyharness.builder.kernel_tree import open_full_tree
from pyharness.builder.lock import exclusive
from pyharness.paths import kernel_cache

TARBALLS = {generation: f"/usr/src/linux-source-{generation}.tar.xz"
            for generation in ("6.1", "6.12", "7.2")}
# The tree the real-kernel-only scenarios run on.
REFERENCE = "6.12"


def tarball(generation: str) -> str:
    path = TARBALLS[generation]
    if not Path(path).is_file():
        pytest.skip(f"{path} is not installed (sh scripts/setup.sh --tests)")
    return path


@functools.lru_cache(maxsize=None)
def _kernel(generation: str, config: str) -> KernelImage:
    return build_kernel(config, TARBALLS[generation])


def kernel(generation: str, config: str = "pkvm") -> KernelImage:
    """The tree's kernel for ``config`` (built once, then cached)."""
    tarball(generation)
    return _kernel(generation, config)


def linked_tree_copy(suffix: str, edits: dict[str, tuple[str, str]] | None = None) -> Path:
    """A copy of the reference tree made of hard links, kept in the kernel
    cache (``test-trees/``) so that its build survives between sessions;
    each file ``edits`` changes (``{path: (old, new)}``, ``old`` once in
    it) is a file of its own, so the original tree never changes."""
    source = open_full_tree(tarball(REFERENCE), kernel_cache()).root
    copy = kernel_cache() / "test-trees" / f"{source.name}-{suffix}"
    with exclusive(copy.parent, copy.name, str(copy)):
        if not copy.is_dir():
            scratch = copy.with_name(copy.name + ".new")
            subprocess.run(["rm", "-rf", str(scratch)], check=True)
            subprocess.run(["cp", "-al", str(source), str(scratch)], check=True)
            for name, (old, new) in (edits or {}).items():
                text = (scratch / name).read_text()
                assert text.count(old) == 1, (name, old)
                (scratch / name).unlink()          # never write through the hard link
                (scratch / name).write_text(text.replace(old, new))
            os.rename(scratch, copy)
    return copy
