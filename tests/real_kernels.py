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
from pathlib import Path

import pytest

from pyharness.builder.kbuild import build_kernel
from pyharness.builder.kernel_image import KernelImage

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
