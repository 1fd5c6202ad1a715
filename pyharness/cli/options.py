"""Options more than one command takes."""

from __future__ import annotations

import argparse
import os
import sys

from pyharness.builder.kernelsrc import KERNEL_SRC_ENV, LAB


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


# What one worker process costs (a matrix or mutation worker with its
# Unicorn instance: 48 of them took 2.5 GB), and how many per CPU still
# help (the runs are CPU-bound: more only wait and take memory).
WORKER_BYTES = 64 * 1024 * 1024
WORKERS_PER_CPU = 4


def _available_memory() -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def capped_jobs(jobs: int | None) -> int | None:
    """``-j N`` as many workers as help and as half the available memory
    holds; a cap is said on stderr. None (the default) stays None."""
    if jobs is None:
        return None
    cpus = os.cpu_count() or 1
    limits = [(cpus * WORKERS_PER_CPU, f"{WORKERS_PER_CPU} per CPU on {cpus} CPUs")]
    memory = _available_memory()
    if memory is not None:
        fits = max(1, memory // 2 // WORKER_BYTES)
        limits.append((fits, f"half of the {memory / 1e9:.1f} GB available holds {fits} "
                             f"at {WORKER_BYTES // (1024 * 1024)} MB each"))
    cap, why = min(limits)
    if jobs <= cap:
        return jobs
    print(f"-j {jobs}: using {cap} workers ({why})", file=sys.stderr)
    return cap
