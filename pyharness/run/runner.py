"""One run: build (cached), boot on the emulated platform with the observers
(oracle, bounds watch) attached, judge, record.

:func:`run_one` is what ``pyharness run``, the matrix workers and the
pytest plugin all call. It returns a :class:`~pyharness.run.record.RunRecord`
and raises :class:`~pyharness.errors.HarnessError` only for bad input
(unknown scenario, a CPU beyond NR_CPUS, a bad config).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Sequence

from pyharness.builder import cache as builder
from pyharness.builder.kernelsrc import KernelSource
from pyharness.elf.dwarf import source_line
from pyharness.elf.image import Image, load_image
from pyharness.errors import HarnessError
from pyharness.judge.checker import judge_run
from pyharness.judge.corruption import Fault, find_fault
from pyharness.judge.expectation import Expectation
from pyharness.judge.oracle import HypOracle
from pyharness.judge.verdict import FrameLine
from pyharness.judge.watch import BoundsWatch
from pyharness.platform.machine import Machine
from pyharness.platform.results import PerCpuChange, RunOptions, RunResult, check_budgets
from pyharness.run.caps import cap_record
from pyharness.run.record import RunRecord
from pyharness.run.scenarios import find_scenario
from pyharness.run.spec import DEFAULT_MAX_INSTRUCTIONS, DEFAULT_TIMEOUT_S, LAB, MODES, RunSpec


@dataclass(frozen=True)
class RunRequest:
    """What to run; ``RunSpec`` from the matrix converts to this."""

    config: str
    scenario: str
    mode: str = "nvhe"
    cpu: int = 0
    kaslr_seed: int = 0
    max_instructions: int = DEFAULT_MAX_INSTRUCTIONS
    timeout_s: float = DEFAULT_TIMEOUT_S
    out_dir: Path | str | None = None
    # A fault to inject instead of the scenario's own (tests, fuzzing).
    fault: Fault | None = None
    # The kernel tree or tarball whose nVHE unwinder to build in; None: the lab's.
    kernel_src: str | None = None
    # The unwinder axis label for the record (matrix); None: the build's own.
    unwinder: str | None = None
    # The build of this config (and kernel_src) made for this run already,
    # e.g. by the matrix's parent before its workers start: used as is,
    # without looking the sources up again. None: build (or find) it here.
    built: builder.BuildResult | None = None

    def __post_init__(self) -> None:
        check_budgets(self.max_instructions, self.timeout_s)

    @classmethod
    def from_spec(cls, spec: RunSpec, **kwargs: object) -> RunRequest:
        return cls(config=spec.config, scenario=spec.scenario, mode=spec.mode,
                   cpu=spec.cpu, kaslr_seed=spec.kaslr_seed, kernel_src=spec.kernel_src,
                   unwinder=spec.unwinder, max_instructions=spec.max_instructions,
                   timeout_s=spec.timeout_s, **kwargs)


def _validate(request: RunRequest, nr_cpus: int) -> None:
    if request.mode not in MODES:
        raise HarnessError(f"unknown mode {request.mode!r}; use one of: {', '.join(MODES)}")
    if not 0 <= request.cpu < nr_cpus:
        raise HarnessError(f"--cpu {request.cpu} is out of range: the configuration has "
                           f"NR_CPUS={nr_cpus}, so use 0..{nr_cpus - 1}")


@dataclass
class Observation:
    """A finished run before it is turned into a record: for tests and tools
    that want the machine's result and the oracle's expectation themselves."""

    request: RunRequest
    built: builder.BuildResult
    scenario: str
    result: RunResult
    expect: Expectation
    foreign_changes: list[PerCpuChange]
    violations: list[str]
    build_ms: float


SetupHook = Callable[[Machine, Image], None]


def observe(request: RunRequest, setup: SetupHook | None = None) -> Observation:
    """Build if needed, run one scenario with the oracle watching.

    ``setup(machine, image)``, if given, runs before the first instruction
    (tests add their own watches there)."""
    started = time.monotonic()
    built = request.built or builder.build(request.config, out_dir=request.out_dir,
                                           kernel_src=request.kernel_src)
    build_ms = (time.monotonic() - started) * 1000
    summary = built.config.summary
    _validate(request, summary.nr_cpus)
    scenario = find_scenario(built.elf, request.scenario)
    image = load_image(built.elf)
    if image.unwinder != built.unwinder:
        raise HarnessError(f"{built.elf} carries the {image.unwinder} unwinder, but was built "
                           f"for {built.unwinder}; remove {built.build_dir} and run again")

    protected = request.mode == "protected"
    machine = Machine(image, RunOptions(cpu=request.cpu, protected=protected,
                                        scenario_id=scenario.number,
                                        kaslr_seed=request.kaslr_seed,
                                        max_instructions=request.max_instructions,
                                        timeout_s=request.timeout_s))
    oracle = HypOracle(image, machine, cpu=request.cpu, protected=protected,
                       el2_debug=summary.el2_debug,
                       fault=request.fault or (find_fault(scenario.fault)
                                               if scenario.fault else None))
    watch = BoundsWatch(image, machine, request.cpu)
    if setup is not None:
        setup(machine, image)
    result = machine.run()
    observation = Observation(request=request, built=built, scenario=scenario.name,
                              result=result, expect=oracle.expectation(scenario.name, built.elf),
                              foreign_changes=machine.foreign_percpu_changes(),
                              violations=watch.violations, build_ms=build_ms)
    machine.release()   # unless $PYHARNESS_REUSE=0, the next run of this image reuses it
    return observation


def with_sources(frames: Sequence[FrameLine], elf: Path) -> list[FrameLine]:
    """Each frame with the ``file:line`` of its call from the image's DWARF
    (a frame's address is a return address: the call is just before it)."""
    found: dict[str, str] = {}
    for address in {f.address for f in frames if f.address}:
        try:
            where = source_line(elf, int(address, 16) - 1)
        except (HarnessError, ValueError, OSError):
            where = None
        if where is not None:
            found[address] = f"{where[0]}:{where[1]}"
    # A long trace repeats a few frames thousands of times, mostly as one
    # shared object each (Expectation.frame_lines): one copy each, looked up
    # by identity first (a dataclass hashes all its fields every time).
    sourced: dict[FrameLine, FrameLine] = {}
    by_identity: dict[int, FrameLine] = {}

    def with_source(frame: FrameLine) -> FrameLine:
        if frame.address not in found:
            return frame
        if frame not in sourced:
            sourced[frame] = replace(frame, source=found[frame.address])
        return sourced[frame]

    out = []
    for frame in frames:
        copy = by_identity.get(id(frame))
        if copy is None:
            copy = by_identity[id(frame)] = with_source(frame)
        out.append(copy)
    return out


def judge(obs: Observation) -> RunRecord:
    """Judge an observed run (:func:`pyharness.judge.checker.judge_run`) and
    make its record, capped (:mod:`pyharness.run.caps`): the judge sees the
    whole console, the record keeps what reports need."""
    request, result, expect = obs.request, obs.result, obs.expect
    judgement = judge_run(result, expect, obs.violations, obs.foreign_changes)
    kernel = obs.built.kernel
    spec = RunSpec(config=request.config, config_name=obs.built.config.name,
                   mode=request.mode, scenario=obs.scenario, cpu=request.cpu,
                   kaslr_seed=request.kaslr_seed,
                   kernel_src=kernel.given if kernel else None,
                   generation=kernel.generation if kernel else None,
                   unwinder=_label(request, kernel), max_instructions=request.max_instructions,
                   timeout_s=request.timeout_s)
    return cap_record(RunRecord(
        spec=spec, verdict=judgement.verdict, reasons=list(judgement.reasons),
        console=result.console, instructions=result.instructions,
        elapsed_ms=round(result.elapsed_ms, 3), kaslr_offset=result.kaslr_offset,
        run_status=result.status.value, exit_status=result.exit_code,
        expected=with_sources(expect.frame_lines(), obs.built.elf),
        actual=with_sources(judgement.actual_frames, obs.built.elf),
        expected_panic=expect.panic.describe() if expect.panic else None,
        build_ms=round(obs.build_ms, 3), elf=str(obs.built.elf),
        tree=kernel.provenance if kernel else None, diagnosis=judgement.diagnosis))


def _label(request: RunRequest, kernel: KernelSource | None) -> str:
    """The record's unwinder: the matrix's label for a tree, else the tree's
    (its NAME, or ``linux-<generation>``)."""
    if kernel is None:
        return LAB
    return request.unwinder if request.unwinder not in (None, LAB) else kernel.label


def run_one(request: RunRequest) -> RunRecord:
    """Build if needed, run one scenario, and check it against the oracle."""
    return judge(observe(request))
