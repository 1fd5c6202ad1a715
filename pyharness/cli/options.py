"""Options more than one command takes."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from pyharness.builder.kernelsrc import KERNEL_SRC_ENV, LAB
from pyharness.errors import HarnessError


def add_kernel_src_option(parser: argparse.ArgumentParser | argparse._ArgumentGroup, *,
                          repeat: bool = False) -> None:
    """``--kernel-src PATH``: build with a kernel tree's nVHE unwinder
    (``repeat``: once per value of the matrix's unwinder axis)."""
    more = (f" Give it more than once for an unwinder axis, `{LAB}` among them for the "
            "lab's own.") if repeat else ""
    parser.add_argument(
        "--kernel-src", metavar="[NAME=]PATH", action="append" if repeat else "store",
        help="build with the nVHE unwinder of a Linux kernel tree (its top directory) or of "
             "a Debian linux-source-X.Y.tar.xz (its files extracted once into the build "
             f"directory); `{LAB}` for the lab's own. NAME= labels the tree's runs "
             "(default: linux-<generation>); a git tree's commit, dirtiness and diff hash "
             f"go into every report. Default: ${KERNEL_SRC_ENV}, else `{LAB}`." + more)


def check_writable(path: Path, flag: str) -> None:
    """A report file named on the command line (``--json FILE``...), checked
    writable before any work starts."""
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise HarnessError(f"{flag} {path}: is a directory; give a file name")
    if not parent.is_dir():
        raise HarnessError(f"{flag} {path}: the directory {parent} does not exist")
    if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise HarnessError(f"{flag} {path}: not writable")
