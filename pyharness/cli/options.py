"""Options more than one command takes."""

from __future__ import annotations

import argparse

from pyharness.build.kernelsrc import KERNEL_SRC_ENV, LAB


def add_kernel_src_option(parser: argparse.ArgumentParser | argparse._ArgumentGroup, *,
                          repeat: bool = False) -> None:
    """``--kernel-src PATH``: build with a kernel tree's nVHE unwinder
    (``repeat``: once per value of the matrix's unwinder axis)."""
    more = (f" Give it more than once for an unwinder axis, `{LAB}` among them for the "
            "lab's own.") if repeat else ""
    parser.add_argument(
        "--kernel-src", metavar="PATH", action="append" if repeat else "store",
        help="build with the nVHE unwinder of a Linux kernel tree (its top directory) or of "
             "a Debian linux-source-X.Y.tar.xz (its files extracted once into the build "
             f"directory); `{LAB}` for the lab's own. Default: ${KERNEL_SRC_ENV}, else "
             f"`{LAB}`." + more)
