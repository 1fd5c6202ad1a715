"""Running a list of runs: the builds first, then the runs in worker processes."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Mapping, Sequence

from pyharness.builder.cache import BuildResult
from pyharness.judge.verdict import Verdict
from pyharness.errors import EXIT_CHECK_FAILED, EXIT_OK, HarnessError
from pyharness.run.spec import RunSpec
from pyharness.matrix.progress import MatrixProgress, QuietProgress
from pyharness.platform.results import check_budgets
from pyharness.run.record import RunRecord, error_record
from pyharness.matrix.builds import BuildOutcome, BuildTarget, build_all
from pyharness.matrix.pool import WorkerPool
from pyharness.matrix.worker import WorkerSettings, faults_from_environment
from pyharness.matrix.schedule import Lanes
from pyharness.matrix.timings import load_timings, longest_first, save_timings, timings_dir

# How long past its own emulation budget a run may take before its worker
# is presumed hung and killed (the budget is checked inside the emulator
# loop; this catches what that check cannot).
KILL_GRACE_S = 15.0
# Runs sent to a worker ahead of its results: it starts the next one while
# the parent (on the same cores) reads the last. A worker answers with up to
# RESULT_BATCH records at once, so that the parent wakes once for several
# runs of a millisecond or two (matrix/pool.py).
PIPELINE_DEPTH = 16
RESULT_BATCH = 8


@dataclass
class MatrixResult:
    """Every run's record (in the order of the specs), and how it went."""

    records: list[RunRecord]
    builds: list[BuildOutcome] = field(default_factory=list)
    jobs: int = 1
    build_seconds: float = 0.0
    run_seconds: float = 0.0
    workers_lost: int = 0
    peak_worker_rss_kb: int = 0
    not_run: int = 0                 # runs left out by --max-failures
    max_failures: int | None = None

    @property
    def failures(self) -> list[RunRecord]:
        """The runs that did not pass (verdict fail or error)."""
        return [r for r in self.records if not r.passed]

    def count(self, verdict: Verdict) -> int:
        return sum(1 for r in self.records if r.verdict == verdict)

    @property
    def exit_code(self) -> int:
        return EXIT_OK if not self.failures else EXIT_CHECK_FAILED

    def summary_line(self) -> str:
        passed = len(self.records) - len(self.failures)
        parts = [f"{len(self.records)} runs: {passed} passed",
                 f"{self.count(Verdict.FAIL)} failed", f"{self.count(Verdict.ERROR)} errors"]
        text = ", ".join(parts) + (f" in {self.build_seconds + self.run_seconds:.1f} s "
                                   f"(builds {self.build_seconds:.1f} s, "
                                   f"runs {self.run_seconds:.1f} s, -j{self.jobs})")
        if self.not_run:
            text += (f"; stopped at {self.max_failures} failures (--max-failures): "
                     f"{self.not_run} runs not run")
        return text


def default_jobs() -> int:
    return os.cpu_count() or 1


def build_failure_reason(message: str) -> str:
    """One line: what failed, and the compiler's first error line if there is one."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    if not lines:
        return "build failed"
    first_error = next((line for line in lines[1:] if "error:" in line.lower()),
                       next((line for line in lines[1:] if "error" in line.lower()), None))
    return f"build failed: {lines[0]}" + (f" {first_error}" if first_error else "")


def _build_failure_record(spec: RunSpec, outcome: BuildOutcome) -> RunRecord:
    message = outcome.error or ""
    record = error_record(spec, build_failure_reason(message))
    record.console = message.splitlines()
    return record


def run_matrix(specs: Sequence[RunSpec], jobs: int | None = None, *,
               out_dir: Path | str | None = None,
               run_timeout_s: float | None = None,
               max_instructions: int | None = None,
               kill_after_s: float | None = None,
               progress: MatrixProgress | None = None,
               faults: Mapping[str, str] | None = None,
               max_failures: int | None = None,
               compiled_before: Sequence[BuildResult] = ()) -> MatrixResult:
    """Build each distinct configuration (with each unwinder) once, then run
    every spec in ``jobs`` workers.

    A run's own problem (a failed check, a failed build, a crashed or hung
    worker) is in its record; only bad input raises HarnessError.
    ``run_timeout_s`` and ``max_instructions``, when given, replace every
    spec's own budgets (so the records and their repro commands say what
    ran). ``kill_after_s`` is the wall time after which a run's worker is
    killed (default: the longest run budget plus a grace). ``faults`` (test
    only) maps run ids to crash/hang/raise; by default it comes from the
    environment. ``max_failures``: once that many runs did not pass, start
    no more runs and stop the workers; the result holds the records of the
    runs that finished (``not_run`` counts the others). ``compiled_before``:
    the builds the plan of these specs compiled (``MatrixPlan.compiled``),
    reported as built when the build phase finds them cached.
    """
    jobs = default_jobs() if jobs is None else jobs
    if jobs < 1:
        raise HarnessError(f"-j {jobs}: the number of workers must be at least 1")
    check_budgets(max_instructions, run_timeout_s)
    if max_failures is not None and max_failures < 1:
        raise HarnessError(f"--max-failures {max_failures}: give at least 1")
    specs = [replace(s, max_instructions=max_instructions or s.max_instructions,
                     timeout_s=run_timeout_s or s.timeout_s) for s in specs]
    progress = progress or QuietProgress()
    faults = faults_from_environment() if faults is None else dict(faults)
    kill_after = (kill_after_s if kill_after_s is not None else
                  max((s.timeout_s for s in specs), default=0.0) + KILL_GRACE_S)

    started = time.monotonic()
    builds = build_all([BuildTarget.of(s) for s in specs], jobs, out_dir,
                       on_done=progress.build_finished, compiled_before=compiled_before)
    broken = {b.key: b for b in builds if not b.ok}
    build_seconds = time.monotonic() - started

    history = timings_dir(out_dir)
    timings = load_timings(history, (s.row for s in specs))
    progress.runs_started(len(specs), {s.id: timings.get(s.id) for s in specs})
    records: list[RunRecord | None] = [None] * len(specs)
    failed = 0

    def finished(index: int, record: RunRecord) -> None:
        nonlocal failed
        records[index] = record
        failed += not record.passed
        progress.run_finished(record)

    def enough() -> bool:
        return max_failures is not None and failed >= max_failures

    tasks = []
    for index, spec in enumerate(specs):
        key = BuildTarget.of(spec).key
        if key in broken and not enough():
            finished(index, _build_failure_record(spec, broken[key]))
        elif key not in broken:
            tasks.append((index, spec))

    lost = peak_rss = 0
    if tasks and not enough():
        made = {b.key: b.result for b in builds if b.result is not None}
        settings = WorkerSettings(out_dir=out_dir, faults=faults, builds=made,
                                  failures_at_once=max_failures is not None)
        try:
            workers = min(jobs, len(tasks))
            stats = WorkerPool(workers, settings, kill_after, depth=PIPELINE_DEPTH,
                               batch=RESULT_BATCH).run(
                Lanes(longest_first(tasks, timings), timings, workers), finished, stop=enough)
        finally:
            progress.close()
        lost, peak_rss = stats.workers_lost, stats.peak_worker_rss_kb
        save_timings(history, [r for r in records if r is not None])
    else:
        progress.close()
    run_seconds = time.monotonic() - started - build_seconds
    done = [r for r in records if r is not None]
    assert len(done) == len(specs) or enough()
    return MatrixResult(records=done, builds=builds,
                        jobs=jobs, build_seconds=build_seconds, run_seconds=run_seconds,
                        workers_lost=lost, peak_worker_rss_kb=peak_rss,
                        not_run=len(specs) - len(done), max_failures=max_failures)
