"""The baseline of a mutation run: every planned run on the unmutated tree.

Built and run as the matrix does (``build_all``, then the worker pool) on
a snapshot of the tree, with a block probe that records the code each run
executes (:mod:`pyharness.mutate.coverage`). Its images give each
configuration's fingerprint (:func:`pyharness.mutate.worker.image_fingerprint`)
and where each function's code is (:mod:`pyharness.elf.inlined`); a run
that fails here is left out of every mutant's plan.
"""

from __future__ import annotations

import os
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

from pyharness.elf.inlined import function_instances
from pyharness.errors import HarnessError
from pyharness.kconfig.resolve import config_name
from pyharness.matrix.builds import BuildTarget, build_all
from pyharness.matrix.execute import KILL_GRACE_S
from pyharness.matrix.pool import WorkerPool
from pyharness.matrix.worker import WorkerSettings
from pyharness.mutate.coverage import Ranges, baseline_step, lost_baseline
from pyharness.mutate.worker import ROOT_ENV, image_fingerprint
from pyharness.run.record import RunRecord
from pyharness.run.spec import RunSpec


@dataclass(frozen=True)
class Baseline:
    """The unmutated tree's runs."""

    fingerprints: dict[str, str]          # configuration name -> image fingerprint
    passing: dict[str, list[RunSpec]]     # configuration name -> its passing runs
    failing: list[RunRecord]
    executed: dict[str, Ranges | None]    # run id -> the image code it executed
    functions: dict[str, dict[str, Ranges | None]]   # configuration -> function -> code
    seconds: float


@contextmanager
def lab_root(root: Path) -> Iterator[None]:
    """Point this process's (and its workers') builds at ``root``."""
    saved = os.environ.get(ROOT_ENV)
    os.environ[ROOT_ENV] = str(root)
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(ROOT_ENV, None)
        else:
            os.environ[ROOT_ENV] = saved


def run_baseline(specs: Sequence[RunSpec], snapshot: Path, jobs: int,
                 out_dir: Path | None) -> Baseline:
    """Build the unmutated snapshot for every configuration and make every
    run once, recording the code each run executes."""
    started = time.monotonic()
    with lab_root(snapshot):
        builds = build_all([BuildTarget.of(s) for s in specs], jobs, out_dir)
        broken = [b for b in builds if not b.ok]
        if broken:
            raise HarnessError(f"the unmutated firmware does not build for {broken[0].name}: "
                               f"{(broken[0].error or '').splitlines()[0]}; fix that before "
                               "measuring mutants")
        results: list[tuple[RunRecord, Ranges | None] | None] = [None] * len(specs)

        def finished(index: int, result: tuple[RunRecord, Ranges | None]) -> None:
            results[index] = result

        settings = WorkerSettings(out_dir=out_dir, faults={})
        kill_after = max((s.timeout_s for s in specs), default=0.0) + KILL_GRACE_S
        if specs:
            WorkerPool(min(jobs, len(specs)), settings, kill_after,
                       work=baseline_step, lost=lost_baseline).run(enumerate(specs), finished)
    fingerprints, functions = {}, {}
    for build in builds:          # one unwinder per mutation run: by configuration
        assert build.elf is not None
        name = config_name(Path(build.config))
        fingerprints[name] = image_fingerprint(Path(build.elf))
        functions[name] = function_instances(Path(build.elf))
    passing: dict[str, list[RunSpec]] = {}
    failing, executed = [], {}
    for result in results:
        assert result is not None
        record, ranges = result
        executed[record.id] = ranges
        if record.passed:
            passing.setdefault(record.spec.config_name, []).append(record.spec)
        else:
            failing.append(record)
    return Baseline(fingerprints, passing, failing, executed, functions,
                    time.monotonic() - started)
