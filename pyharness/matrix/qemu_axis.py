"""The real-kernel matrix (``pyharness matrix --qemu``): configurations x
kernel trees x modes x real-kernel scenarios, each run a boot of the tree's
kernel under QEMU.

Each (configuration, tree) is one kbuild build in the kernel cache
(minutes cold), so ``--qemu`` defaults to one configuration, ``pkvm``
(``--configs`` picks others), and to the Debian kernel sources installed
(``/usr/src/linux-source-X.Y.tar.xz``) when no ``--kernel-src`` is given.
Runs take CPU 0; the scenario ``two_cpus`` is the one with two. A tree's
runs are labelled ``qemu-linux-<generation>`` (after the fast path's
label of the same tree), ``qemu-linux-6.12/pkvm-protected-bug-cpu0``.
One of Debian's own images (``--kernel-src debian:6.1``,
:mod:`pyharness.builder.debian_kernel`) is fetched, not built: it has its
own configuration, so its runs are made once, named after its flavour,
``qemu-debian-6.1.0-57/cloud-arm64-nvhe-hyp_panic-cpu0``.
"""

from __future__ import annotations

import fnmatch
import itertools
from pathlib import Path
from typing import Sequence

from pyharness.builder.debian_images import FLAVOUR as DEBIAN_CONFIG_NAME
from pyharness.builder.debian_kernel import is_debian_kernel
from pyharness.builder.debian_kernel import resolve as resolve_debian
from pyharness.errors import HarnessError
from pyharness.kconfig import resolve as kconfig
from pyharness.matrix.expand import kaslr_seed_for, unwinder_axis
from pyharness.run.kernel_scenarios import SCENARIOS
from pyharness.run.spec import DEFAULT_QEMU_TIMEOUT_S, MODES, QEMU, RunSpec, Unwinder, run_id

DEFAULT_CONFIGS = ("pkvm",)
DEBIAN_SOURCES = "/usr/src"
_DEBIAN_TARBALL_GLOB = "linux-source-*.tar.xz"


def default_trees() -> tuple[str, ...]:
    """The Debian kernel source tarballs installed, oldest first."""
    found = sorted(Path(DEBIAN_SOURCES).glob(_DEBIAN_TARBALL_GLOB),
                   key=lambda p: tuple(int(x) for x in p.name[13:-7].split(".")
                                       if x.isdigit()))
    if not found:
        raise HarnessError("--qemu without --kernel-src: no Debian kernel sources in "
                           f"{DEBIAN_SOURCES} (apt-get install linux-source-6.12, or give "
                           "--kernel-src TREE)")
    return tuple(str(p) for p in found)


def qemu_axis(kernel_srcs: Sequence[str], out_dir: Path | str | None) -> list[Unwinder]:
    """The trees, labelled ``qemu-<the fast path's label>``, then Debian's
    images (``debian:NAME``), each resolved to its exact name and labelled
    ``qemu-debian-<ABI>``."""
    if any(value in ("", "lab") for value in kernel_srcs):
        raise HarnessError("--qemu runs a kernel tree's real kernel: `--kernel-src lab` "
                           "has none; give trees or Debian tarballs")
    debian = [value for value in kernel_srcs if is_debian_kernel(value)]
    trees = [value for value in kernel_srcs if not is_debian_kernel(value)]
    axis = [Unwinder(f"qemu-{u.label}", u.kernel_src, u.generation)
            for u in unwinder_axis(trees or ([] if debian else default_trees()), out_dir)
            if u.kernel_src is not None]
    for release in dict.fromkeys(resolve_debian(value, out_dir) for value in debian):
        axis.append(Unwinder(f"qemu-debian-{release.abi}", release.exact, release.generation))
    return axis


def shard_by_kernel(runs: list[RunSpec], k: int, n: int) -> list[RunSpec]:
    """The K-th of N slices, whole kernels at a time: every run of one
    (configuration, tree) goes to the same shard, so a shard builds only
    its own kernels (round robin over the sorted pairs)."""
    kernels = sorted({(r.config_name, r.unwinder) for r in runs})
    chosen = {pair for i, pair in enumerate(kernels) if i % n == k - 1}
    return [r for r in runs if (r.config_name, r.unwinder) in chosen]


def _matching(values: list[str], patterns: Sequence[str], what: str) -> list[str]:
    if not patterns:
        return values
    unknown = [p for p in patterns if not any(fnmatch.fnmatchcase(v, p) for v in values)]
    if unknown:
        raise HarnessError(f"--{what}s {' '.join(unknown)}: matches no real-kernel {what} "
                           f"(they are: {', '.join(values)})")
    return [v for v in values if any(fnmatch.fnmatchcase(v, p) for p in patterns)]


def expand_qemu(configs: list[Path], trees: Sequence[Unwinder], *,
                scenario_patterns: Sequence[str] = (), mode_patterns: Sequence[str] = (),
                seed: int = 0, differential: bool = False) -> list[RunSpec]:
    """Every (configuration, tree, mode, scenario) a scenario has a fault for;
    ``differential``: the shared scenarios' runs also compare with the lab."""
    modes = _matching(list(MODES), mode_patterns, "mode")
    names = _matching([s.name for s in SCENARIOS], scenario_patterns, "scenario")
    chosen = [s for s in SCENARIOS if s.name in names]
    runs = []
    for number, path in enumerate(configs):
        resolved = kconfig.resolve(path)
        for tree, mode, scenario in itertools.product(trees, modes, chosen):
            if mode not in scenario.modes:
                continue
            name = resolved.name
            debian = is_debian_kernel(tree.kernel_src)
            if debian:
                # Debian's image has its own configuration: once, whatever --configs.
                if number:
                    continue
                name = DEBIAN_CONFIG_NAME
            key = run_id(name, mode, scenario.name, 0)
            runs.append(RunSpec.with_unwinder(
                tree, config=str(path), config_name=name, mode=mode,
                scenario=scenario.name, cpu=0, platform=QEMU,
                timeout_s=DEFAULT_QEMU_TIMEOUT_S,
                # The differential runs the same tree on the lab: Debian's image has none.
                differential=differential and scenario.shared and not debian,
                kaslr_seed=kaslr_seed_for(seed, name, key)))
    return runs
