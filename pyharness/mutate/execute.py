"""Running the mutants: a baseline, then each mutant's runs until one fails.

1. The tree is copied to a snapshot (the mutants are edits of copies; the
   user's tree is never written).
2. Baseline (:mod:`pyharness.mutate.baseline`): every planned run on the
   unmutated snapshot; a run that fails there is left out of every plan.
3. Mutants, in the matrix's worker pool: each worker applies a mutant to
   its own copy of the tree, builds (incrementally, cached by the sources'
   hash) and runs one step (:mod:`pyharness.mutate.worker`). A mutant has
   at most one step in flight, so the pool works on ``-j`` mutants at
   once; its next step is chosen from the results so far: the next run,
   the next configuration when its image is the unmutated one, nothing
   after its first failure or a compile error.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from pyharness.matrix.execute import KILL_GRACE_S
from pyharness.matrix.pool import WorkerPool
from pyharness.matrix.worker import WorkerSettings
from pyharness.mutate.baseline import Baseline
from pyharness.mutate.generate import Mutant
from pyharness.mutate.plan import ConfigRuns, MutantPlan
from pyharness.mutate.worker import Step, StepResult, lost_step, run_step
from pyharness.run.record import RunRecord

KILLED, SURVIVED, COMPILE_ERROR, SAME_IMAGE = "killed", "survived", "compile-error", "same-image"
# The harness could not build or run one of its steps (a full or read-only
# build directory, a worker that died): no verdict on the mutant.
ERROR = "error"


@dataclass
class Outcome:
    """What happened to one mutant."""

    mutant: Mutant
    status: str = SURVIVED
    killer: RunRecord | None = None
    message: str = ""                       # compile error: the first error line
    detail: str = ""
    runs: int = 0                           # runs made
    same_image: list[str] = field(default_factory=list)   # configurations
    tried: list[str] = field(default_factory=list)        # configurations run
    compiled: int = 0                       # selected configurations compiling it
    skipped: int = 0                        # runs that never execute its function
    seconds: float = 0.0
    build_seconds: float = 0.0

    @property
    def reason(self) -> str:
        if self.killer is None:
            return self.message
        return self.killer.reasons[0] if self.killer.reasons else self.killer.verdict.value


@dataclass
class _State:
    outcome: Outcome
    plans: list[ConfigRuns]
    config: int = 0
    run: int = 0
    busy: bool = False
    done: bool = False
    started: float = 0.0


class MutationRun:
    """The mutants' steps, handed to the pool one at a time per mutant."""

    def __init__(self, plans: Sequence[tuple[Mutant, MutantPlan]], baseline: Baseline,
                 snapshot: Path, slots: Path, out_dir: Path,
                 on_done: Callable[[Outcome], None], kernel: Path | None = None) -> None:
        self.states = [_State(Outcome(m, compiled=plan.compiled, skipped=plan.skipped),
                              list(plan.configs)) for m, plan in plans]
        self.baseline = baseline
        self.snapshot, self.slots, self.out_dir = str(snapshot), str(slots), str(out_dir)
        self.kernel = str(kernel) if kernel is not None else None
        self.on_done = on_done
        self.in_flight: dict[int, _State] = {}
        self.counter = 0
        for state in self.states:
            if not state.plans:
                self._finish(state)

    def next_step(self) -> tuple[int, Step] | None:
        for state in self.states:
            if state.done or state.busy:
                continue
            plan = state.plans[state.config]
            same_as = self.baseline.fingerprints.get(plan.name) if state.run == 0 else None
            step = Step(mutant=state.outcome.mutant, spec=plan.specs[state.run],
                        snapshot=self.snapshot, slots=self.slots, out_dir=self.out_dir,
                        same_as=same_as, kernel=self.kernel)
            state.busy = True
            if not state.started:
                state.started = time.monotonic()
            self.counter += 1
            self.in_flight[self.counter] = state
            return self.counter, step
        return None

    def on_result(self, index: int, result: StepResult) -> None:
        state = self.in_flight.pop(index)
        state.busy = False
        outcome = state.outcome
        outcome.build_seconds += result.build_s
        plan = state.plans[state.config]
        if result.kind in ("compile-error", ERROR):
            outcome.status = COMPILE_ERROR if result.kind == "compile-error" else ERROR
            outcome.message, outcome.detail = result.message, result.detail
            outcome.tried.append(plan.name)
            self._finish(state)
            return
        if result.kind == "same-image":
            outcome.same_image.append(plan.name)
            self._next_config(state)
            return
        assert result.record is not None
        outcome.runs += 1
        if state.run == 0:
            outcome.tried.append(plan.name)
        if not result.record.passed:       # a run that failed: the only kill
            outcome.status, outcome.killer = KILLED, result.record
            self._finish(state)
            return
        state.run += 1
        if state.run >= len(plan.specs):
            self._next_config(state)

    def _next_config(self, state: _State) -> None:
        state.config += 1
        state.run = 0
        if state.config >= len(state.plans):
            if not state.outcome.tried:
                state.outcome.status = SAME_IMAGE
            self._finish(state)

    def _finish(self, state: _State) -> None:
        state.done = True
        if state.started:
            state.outcome.seconds = time.monotonic() - state.started
        self.on_done(state.outcome)


def run_mutants(plans: Sequence[tuple[Mutant, MutantPlan]], baseline: Baseline,
                snapshot: Path, out_dir: Path, jobs: int,
                on_done: Callable[[Outcome], None], *,
                kernel: Path | None = None, slots: Path) -> list[Outcome]:
    """Every mutant's outcome, in the order of ``plans``; the workers make
    their copies of the trees under ``slots``."""
    slots.mkdir(parents=True, exist_ok=True)
    run = MutationRun(plans, baseline, snapshot, slots, out_dir, on_done, kernel)
    settings = WorkerSettings(out_dir=out_dir, faults={})
    timeout_s = max((c.specs[0].timeout_s for _, p in plans for c in p.configs), default=0.0)
    if any(not s.done for s in run.states):
        # A step builds before it runs: give it the build's time too.
        pool = WorkerPool(jobs, settings, timeout_s + KILL_GRACE_S + 60.0,
                          work=run_step, lost=lost_step)
        pool.run_from(lambda _slot: run.next_step(), run.on_result)
    return [state.outcome for state in run.states]
