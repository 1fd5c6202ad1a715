"""Which runs a ``pyharness matrix`` command means: configurations, then runs.

Configurations are the shipped ones (``--configs`` narrows them), every
valid combination (``--all``), N random valid ones (``--randconfig N``),
or those of the failures in an earlier JSON report (``--only-failed``).
Runs are their expansion over unwinders (``--kernel-src``), modes,
scenarios and CPUs, then the shard.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from pathlib import Path

from pyharness.builder import cache as builder
from pyharness.kconfig.resolve import config_name
from pyharness.errors import BuildError, HarnessError
from pyharness.run.spec import RunSpec, Unwinder
from pyharness.matrix.expand import (all_combinations, enumerate_all, expand, parse_shard,
                                     random_configs, select_configs, shard, unwinder_axis)
from pyharness.matrix.qemu_axis import (DEFAULT_CONFIGS, expand_qemu, qemu_axis,
                                        shard_by_kernel)
from pyharness.paths import build_base
from pyharness.reports.records import load_records
from pyharness.run.scenarios import list_scenarios


@dataclass(frozen=True)
class Selection:
    """What the user asked for, as plain values (the CLI's arguments)."""

    configs: tuple[str, ...] = ()
    scenarios: tuple[str, ...] = ()
    modes: tuple[str, ...] = ()
    all_configs: bool = False
    randconfig: int | None = None
    seed: int = 0
    only_failed: Path | None = None
    shard: str | None = None
    out_dir: Path | str | None = None
    kernel_srcs: tuple[str, ...] = ()   # the unwinder axis; none: the lab's only
    qemu: bool = False                  # real kernels under QEMU (matrix/qemu_axis.py)
    differential: bool = False          # ... each shared scenario compared with the lab


@dataclass(frozen=True)
class MatrixPlan:
    """The runs to do, and where they came from (for the opening line)."""

    specs: list[RunSpec]
    config_count: int
    total_runs: int          # before sharding
    origin: str              # "shipped", "--all", ...
    shard: tuple[int, int] | None = None
    unwinders: tuple[str, ...] = ()   # the axis' labels when it is not the lab's only
    all_ids: tuple[str, ...] = ()   # every run's id before sharding, in matrix order
    # What planning compiled (the first configuration, for its scenario
    # table): run_matrix's build phase reports these as built, not cached.
    compiled: tuple[builder.BuildResult, ...] = ()

    def describe(self) -> str:
        plural = "s" if self.config_count != 1 else ""
        text = f"matrix ({self.origin}): {self.config_count} configuration{plural}"
        if self.unwinders:
            text += f" x unwinders {', '.join(self.unwinders)}"
        text += f", {self.total_runs} runs"
        if self.shard is not None:
            k, n = self.shard
            text += f"; shard {k}/{n}: {len(self.specs)} runs"
        return text


def generated_configs_dir(out_dir: Path | str | None, kind: str) -> Path:
    """Where --all/--randconfig fragments are kept, so repro commands stay valid."""
    return build_base(out_dir) / "matrix-configs" / kind


def _filter_generated(paths: list[Path], patterns: tuple[str, ...]) -> list[Path]:
    if not patterns:
        return paths
    names = {p: config_name(p) for p in paths}
    unknown = [pat for pat in patterns if not any(fnmatch.fnmatchcase(n, pat)
                                                  for n in names.values())]
    if unknown:
        raise HarnessError(f"--configs {' '.join(unknown)}: matches none of the generated "
                           "configurations (their names look like "
                           f"{next(iter(names.values()), 'all-4k-va48-...')})")
    return [p for p in paths if any(fnmatch.fnmatchcase(names[p], pat) for pat in patterns)]


def _scenario_names(configs: list[Path], out_dir: Path | str | None,
                    unwinder: Unwinder) -> tuple[list[str], builder.BuildResult]:
    """Scenario names, read from the first image that builds (cached), with
    the axis' first unwinder (every unwinder's image has the same), and
    that build.

    A configuration that fails to compile is left to the matrix, where its
    runs become errors; only when none builds is the build error raised.
    """
    first_error: BuildError | None = None
    for config in configs:
        try:
            built = builder.build(config, out_dir=out_dir, kernel_src=unwinder.kernel_src)
        except BuildError as err:
            first_error = first_error or err
            continue
        return [s.name for s in list_scenarios(built.elf)], built
    assert first_error is not None
    raise first_error


# K/N of --shard: ASCII digits only (int() would take '٢' as 2).
_SHARD = re.compile(r"[0-9]+/[0-9]+")


def _check_exclusive(selection: Selection) -> None:
    chosen = [name for name, on in (("--all", selection.all_configs),
                                    ("--randconfig", selection.randconfig is not None),
                                    ("--only-failed", selection.only_failed is not None)) if on]
    if len(chosen) > 1:
        raise HarnessError(f"{' and '.join(chosen)} cannot be combined: each chooses "
                           "the configurations")
    if selection.only_failed is not None and (selection.configs or selection.scenarios
                                              or selection.modes or selection.kernel_srcs):
        raise HarnessError("--only-failed reruns exactly the failures in its file, each "
                           "with its own unwinder; drop --configs/--scenarios/--modes/"
                           "--kernel-src")
    if selection.randconfig is not None and selection.randconfig < 1:
        raise HarnessError(f"--randconfig {selection.randconfig}: ask for at least one")
    combinations = len(all_combinations())
    if selection.randconfig is not None and selection.randconfig > combinations:
        raise HarnessError(f"--randconfig {selection.randconfig}: there are only "
                           f"{combinations} combinations of the matrix symbols, fewer of "
                           "them valid; ask for fewer, or run them all with --all")
    if selection.shard is not None and not _SHARD.fullmatch(selection.shard):
        raise HarnessError(f"--shard {selection.shard!r}: expected K/N in ASCII digits, "
                           "for example 1/4")


def _rerun_specs(path: Path) -> list[RunSpec]:
    return [r.spec
            for r in load_records(path) if not r.passed]


def _qemu_plan(selection: Selection, shard_kn: tuple[int, int] | None) -> MatrixPlan:
    """The real-kernel matrix (``--qemu``)."""
    if selection.all_configs or selection.randconfig is not None:
        raise HarnessError("--qemu builds a real kernel per configuration and tree: "
                           "--all and --randconfig are the fast path's; name --configs")
    trees = qemu_axis(selection.kernel_srcs, selection.out_dir)
    configs = select_configs(list(selection.configs or DEFAULT_CONFIGS))
    specs = expand_qemu(configs, trees, scenario_patterns=selection.scenarios,
                        mode_patterns=selection.modes, seed=selection.seed,
                        differential=selection.differential)
    all_ids = tuple(s.id for s in specs)
    total = len(specs)
    if shard_kn is not None:
        specs = shard_by_kernel(specs, *shard_kn)
    return MatrixPlan(specs=specs, config_count=len(configs), total_runs=total,
                      origin="real kernels under QEMU", shard=shard_kn,
                      unwinders=tuple(t.label for t in trees), all_ids=all_ids)


def plan(selection: Selection) -> MatrixPlan:
    """Expand the selection into runs; bad input raises HarnessError."""
    _check_exclusive(selection)
    if selection.differential and not selection.qemu:
        raise HarnessError("--differential compares real kernels with the lab: add --qemu")
    shard_kn = parse_shard(selection.shard) if selection.shard is not None else None

    labels: tuple[str, ...] = ()
    compiled: tuple[builder.BuildResult, ...] = ()
    if selection.qemu and selection.only_failed is None:
        return _qemu_plan(selection, shard_kn)
    if selection.only_failed is not None:
        specs = _rerun_specs(selection.only_failed)
        origin = f"failures of {selection.only_failed}"
        config_count = len({s.config for s in specs})
    else:
        unwinders = unwinder_axis(selection.kernel_srcs, selection.out_dir)
        if selection.kernel_srcs:
            labels = tuple(u.label for u in unwinders)
        if selection.all_configs:
            configs = _filter_generated(
                enumerate_all(generated_configs_dir(selection.out_dir, "all")),
                selection.configs)
            origin = "--all"
        elif selection.randconfig is not None:
            directory = generated_configs_dir(selection.out_dir, f"rand-{selection.seed}")
            configs = _filter_generated(
                random_configs(selection.randconfig, selection.seed, directory),
                selection.configs)
            origin = f"--randconfig {selection.randconfig} --seed {selection.seed}"
        else:
            configs = select_configs(list(selection.configs) or None)
            origin = "shipped" if not selection.configs else "--configs"
        scenarios: list[str] = []
        if configs:
            scenarios, first = _scenario_names(configs, selection.out_dir, unwinders[0])
            compiled = () if first.cached else (first,)
        specs = expand(configs, scenarios, scenario_patterns=list(selection.scenarios) or None,
                       mode_patterns=list(selection.modes) or None, seed=selection.seed,
                       unwinders=unwinders)
        config_count = len(configs)

    total = len(specs)
    all_ids = tuple(s.id for s in specs)
    if shard_kn is not None:
        specs = shard(specs, *shard_kn)
    return MatrixPlan(specs=specs, config_count=config_count, total_runs=total,
                      origin=origin, shard=shard_kn, unwinders=labels, all_ids=all_ids,
                      compiled=compiled)
