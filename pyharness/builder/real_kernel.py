"""Where a real kernel comes from: ``--kernel-src`` as a tree or tarball is
built by kbuild (:mod:`pyharness.builder.kbuild`) for a lab
configuration; ``debian:NAME`` is one of Debian's own images, fetched as
shipped (:mod:`pyharness.builder.debian_kernel`), whose configuration is
Debian's: the lab configuration is then not used for the kernel. A
built kernel's numbers (builder/tree_numbers.py) are checked here, so a
tree whose numbers its runs cannot work with stops before any boot."""

from __future__ import annotations

from pathlib import Path

from pyharness.builder.debian_kernel import is_debian_kernel, obtain_debian_kernel
from pyharness.builder.kbuild import build_kernel
from pyharness.builder.kernel_image import KernelImage
from pyharness.builder.tree_numbers import real_kernel_numbers


def obtain_kernel(config: Path | str, kernel_src: str, out_dir: Path | str | None = None,
                  jobs: int | None = None) -> KernelImage:
    """The bootable kernel ``kernel_src`` names, from the kernel cache or made."""
    if is_debian_kernel(kernel_src):
        return obtain_debian_kernel(kernel_src, out_dir=out_dir)
    kernel = build_kernel(config, kernel_src, out_dir=out_dir, jobs=jobs)
    real_kernel_numbers(kernel)   # a number its runs cannot work with: exit 2 here, once
    return kernel
