"""The matrix's build phase: one cached build per distinct configuration.

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
from typing import Callable, Sequence

from pyharness.build import cache as builder
from pyharness.kconfig.resolve import config_name
from pyharness.errors import BuildError


@dataclass(frozen=True)
class BuildOutcome:
    """What building one configuration gave: an image, or the compiler's error."""

    config: str
    name: str
    elf: str | None
    cached: bool
    seconds: float
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def describe(self) -> str:
        if self.error is not None:
            return f"{self.name}: build failed: {self.error.splitlines()[0]}"
        if self.cached:
            return f"{self.name}: cached"
        return f"{self.name}: built in {self.seconds:.1f} s"


BuildCallback = Callable[[BuildOutcome], None]


def _build_one(config: str, out_dir: Path | str | None, compile_jobs: int) -> BuildOutcome:
    started = time.monotonic()
    try:
        result = builder.build(config, out_dir=out_dir, jobs=compile_jobs)
    except BuildError as err:
        return BuildOutcome(config=config, name=config_name(Path(config)), elf=None,
                            cached=False, seconds=time.monotonic() - started,
                            error=str(err))
    return BuildOutcome(config=config, name=result.config.name, elf=str(result.elf),
                        cached=result.cached, seconds=result.seconds)


def build_all(configs: Sequence[str], jobs: int, out_dir: Path | str | None = None,
              on_done: BuildCallback | None = None) -> list[BuildOutcome]:
    """Build every configuration (cached), ``jobs`` at a time, in the given order."""
    unique = list(dict.fromkeys(configs))
    if not unique:
        return []
    parallel = max(1, min(jobs, len(unique)))
    compile_jobs = max(1, (os.cpu_count() or 1) // parallel)
    outcomes: dict[str, BuildOutcome] = {}
    executor = ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="build")
    try:
        futures: dict[Future[BuildOutcome], str] = {
            executor.submit(_build_one, config, out_dir, compile_jobs): config
            for config in unique}
        for future in as_completed(futures):
            outcome = future.result()  # re-raises HarnessError (bad input)
            outcomes[futures[future]] = outcome
            if on_done is not None:
                on_done(outcome)
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
    return [outcomes[config] for config in unique]
