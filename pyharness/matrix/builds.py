"""The matrix's build phase: one cached build per distinct configuration
and unwinder (the lab's own, or a kernel tree's: ``--kernel-src``).

Builds run in threads (the work is in the compiler subprocesses), several
configurations at a time, each with a share of the cores. A configuration
that fails to compile is an outcome, not an exception: its runs become
``error`` records and the rest of the matrix goes on. Bad input (a missing
cross compiler, an unresolvable config) still raises
:class:`~pyharness.errors.HarnessError`, since no run could succeed.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

from pyharness.builder import cache as builder
from pyharness.kconfig.resolve import config_name
from pyharness.builder.real_kernel import obtain_kernel
from pyharness.builder.kernel_image import KernelImage
from pyharness.errors import BuildError, HarnessError
from pyharness.run.spec import LAB, QEMU, UNICORN, RunSpec, row_name

# What tells two builds apart: the configuration, the tree, the platform.
BuildKey = tuple[str, str | None, str]


@dataclass(frozen=True)
class BuildTarget:
    """What to build: a configuration with an unwinder."""

    config: str
    kernel_src: str | None = None   # None: the lab's own unwinder
    unwinder: str = LAB             # the axis label, for messages
    platform: str = UNICORN         # QEMU: the tree's real kernel (builder/kbuild.py)

    @classmethod
    def of(cls, spec: RunSpec) -> BuildTarget:
        return cls(spec.config, spec.kernel_src, spec.unwinder, spec.platform)

    @property
    def key(self) -> BuildKey:
        return (self.config, self.kernel_src, self.platform)


@dataclass(frozen=True)
class BuildOutcome:
    """What building one configuration gave: an image, or the compiler's error."""

    config: str
    name: str
    elf: str | None
    cached: bool
    seconds: float
    error: str | None = None
    kernel_src: str | None = None
    # The build itself, when it succeeded: the lab's image, or a real kernel.
    result: builder.BuildResult | KernelImage | None = None
    platform: str = UNICORN

    @property
    def key(self) -> BuildKey:
        return (self.config, self.kernel_src, self.platform)

    @property
    def ok(self) -> bool:
        return self.error is None

    def describe(self) -> str:
        if self.error is not None:
            return f"{self.name}: build failed: {self.error.splitlines()[0]}"
        if self.cached:
            return f"{self.name}: cached"
        built = self.result
        if built is not None and built.compiled is not None and built.objects is not None:
            return (f"{self.name}: built in {self.seconds:.1f} s ({len(built.compiled)} of "
                    f"{built.objects} objects compiled)")
        return f"{self.name}: built in {self.seconds:.1f} s"


BuildCallback = Callable[[BuildOutcome], None]


def _build_kernel(target: BuildTarget, compile_jobs: int) -> BuildOutcome:
    """A tree's real kernel (or one of Debian's, fetched): a build failure,
    or a configuration the tree's Kconfig cannot take, costs the runs of
    this pair only."""
    started = time.monotonic()
    name = row_name(config_name(Path(target.config)), target.unwinder)
    try:
        kernel = obtain_kernel(target.config, target.kernel_src or "", jobs=compile_jobs)
    except HarnessError as err:
        return BuildOutcome(config=target.config, name=name, elf=None, cached=False,
                            seconds=time.monotonic() - started, error=str(err),
                            kernel_src=target.kernel_src, platform=QEMU)
    return BuildOutcome(config=target.config, name=row_name(kernel.config_name, target.unwinder),
                        elf=str(kernel.vmlinux),
                        cached=kernel.cached, seconds=kernel.seconds,
                        kernel_src=target.kernel_src, result=kernel, platform=QEMU)


def _build_one(target: BuildTarget, out_dir: Path | str | None, compile_jobs: int,
               compiled_before: Mapping[Path, builder.BuildResult]) -> BuildOutcome:
    if target.platform == QEMU:
        return _build_kernel(target, compile_jobs)
    started = time.monotonic()
    try:
        result = builder.build(target.config, out_dir=out_dir, jobs=compile_jobs,
                               kernel_src=target.kernel_src)
    except BuildError as err:
        return BuildOutcome(config=target.config,
                            name=row_name(config_name(Path(target.config)), target.unwinder),
                            elf=None, cached=False, seconds=time.monotonic() - started,
                            error=str(err), kernel_src=target.kernel_src)
    # Compiled by this matrix's plan (to read its scenario table): built, not cached.
    earlier = compiled_before.get(result.build_dir)
    result = earlier if result.cached and earlier is not None else result
    return BuildOutcome(config=target.config, name=row_name(result.config.name, target.unwinder),
                        elf=str(result.elf), cached=result.cached, seconds=result.seconds,
                        kernel_src=target.kernel_src, result=result)


def build_all(targets: Sequence[BuildTarget | str], jobs: int,
              out_dir: Path | str | None = None,
              on_done: BuildCallback | None = None,
              compiled_before: Sequence[builder.BuildResult] = ()) -> list[BuildOutcome]:
    """Build every target (a config file alone: with the lab's unwinder), cached,
    ``jobs`` at a time, in the given order.

    ``compiled_before``: the builds this matrix compiled before its build
    phase (its plan's, :attr:`~pyharness.matrix.selection.MatrixPlan.compiled`);
    a target found cached in one of their directories is reported as that
    build (built, with its time and objects). Any other cached target is
    cached, whoever compiled it earlier in the process."""
    unique = list(dict.fromkeys(t if isinstance(t, BuildTarget) else BuildTarget(t)
                                for t in targets))
    if not unique:
        return []
    parallel = max(1, min(jobs, len(unique)))
    compile_jobs = max(1, (os.cpu_count() or 1) // parallel)
    earlier = {result.build_dir: result for result in compiled_before if not result.cached}
    outcomes: dict[BuildTarget, BuildOutcome] = {}
    executor = ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="build")
    try:
        futures: dict[Future[BuildOutcome], BuildTarget] = {
            executor.submit(_build_one, target, out_dir, compile_jobs, earlier): target
            for target in unique}
        for future in as_completed(futures):
            outcome = future.result()  # re-raises HarnessError (bad input)
            outcomes[futures[future]] = outcome
            if on_done is not None:
                on_done(outcome)
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
    return [outcomes[target] for target in unique]
