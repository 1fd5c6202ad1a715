"""One run: build (cached), boot on the emulated platform, check the dump.

:func:`run_one` is what ``pyharness run``, the matrix workers and the
pytest plugin all call. It returns a :class:`RunRecord`, the JSON record
of DESIGN section 6, and raises :class:`~pyharness.errors.HarnessError`
only for bad input (unknown scenario, a CPU beyond NR_CPUS, a bad config).
"""

from __future__ import annotations

import time
from typing import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import build as builder
from .checker import ERROR, Verdict, check
from .errors import HarnessError
from .expand import MODES, RunSpec
from .faults import Fault, find_fault
from .image import Image, load_image
from .machine import Machine, PerCpuChange, RunOptions, RunResult
from .oracle import Expectation, HypOracle
from .scenarios import find_scenario
from .watch import BoundsWatch

DEFAULT_MAX_INSTRUCTIONS = 20_000_000
DEFAULT_TIMEOUT_S = 30.0


@dataclass
class RunRecord:
    """The outcome of one run, as ``pyharness run --json`` prints it."""

    config: str
    config_name: str
    mode: str
    scenario: str
    cpu: int
    kaslr_seed: int
    verdict: str
    reasons: list[str]
    console: list[str]
    instructions: int
    elapsed_ms: float
    kaslr_offset: int = 0
    run_status: str = ""
    exit_status: int | None = None
    expected: list[dict[str, str]] = field(default_factory=list)
    actual: list[dict[str, str]] = field(default_factory=list)
    expected_panic: str | None = None
    build_ms: float = 0.0
    elf: str = ""
    command: str = ""

    @property
    def passed(self) -> bool:
        return self.verdict == "pass"

    def to_json(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, object]) -> RunRecord:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


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
    out_dir: Path | None = None
    # A fault to inject instead of the scenario's own (tests, fuzzing).
    fault: Fault | None = None

    @classmethod
    def from_spec(cls, spec: RunSpec, **kwargs: object) -> RunRequest:
        return cls(config=spec.config, scenario=spec.scenario, mode=spec.mode,
                   cpu=spec.cpu, kaslr_seed=spec.kaslr_seed, **kwargs)


def _validate(request: RunRequest, nr_cpus: int) -> None:
    if request.mode not in MODES:
        raise HarnessError(f"unknown mode {request.mode!r}; use one of: {', '.join(MODES)}")
    if not 0 <= request.cpu < nr_cpus:
        raise HarnessError(f"--cpu {request.cpu} is out of range: the configuration has "
                           f"NR_CPUS={nr_cpus}, so use 0..{nr_cpus - 1}")
    if request.max_instructions <= 0 or request.timeout_s <= 0:
        raise HarnessError("budgets must be positive")


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
    built = builder.build(request.config, out_dir=request.out_dir)
    build_ms = (time.monotonic() - started) * 1000
    summary = built.config.summary
    _validate(request, summary.nr_cpus)
    scenario = find_scenario(built.elf, request.scenario)
    image = load_image(built.elf)

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
    return Observation(request=request, built=built, scenario=scenario.name, result=result,
                       expect=oracle.expectation(scenario.name, built.elf),
                       foreign_changes=machine.foreign_percpu_changes(),
                       violations=watch.violations, build_ms=build_ms)


def judge(obs: Observation) -> RunRecord:
    """Check an observed run and make its record."""
    request, result, expect = obs.request, obs.result, obs.expect
    verdict = check(result, expect, obs.violations)
    reasons = list(verdict.reasons)
    reasons += [f"per-CPU data of another CPU changed: {change}"
                for change in obs.foreign_changes]
    if reasons and verdict.passed:
        verdict = Verdict("fail", tuple(reasons), verdict.actual_frames)
    spec = RunSpec(config=request.config, config_name=obs.built.config.name,
                   mode=request.mode, scenario=obs.scenario, cpu=request.cpu,
                   kaslr_seed=request.kaslr_seed)
    return RunRecord(
        config=request.config, config_name=spec.config_name, mode=request.mode,
        scenario=obs.scenario, cpu=request.cpu, kaslr_seed=request.kaslr_seed,
        verdict=verdict.verdict, reasons=reasons, console=result.console,
        instructions=result.instructions, elapsed_ms=round(result.elapsed_ms, 3),
        kaslr_offset=result.kaslr_offset, run_status=result.status.value,
        exit_status=result.exit_code,
        expected=[f.to_dict() for f in expect.frames],
        actual=list(verdict.actual_frames),
        expected_panic=expect.panic.describe() if expect.panic else None,
        build_ms=round(obs.build_ms, 3), elf=str(obs.built.elf), command=spec.command())


def run_one(request: RunRequest) -> RunRecord:
    """Build if needed, run one scenario, and check it against the oracle."""
    return judge(observe(request))


def error_record(spec: RunSpec, reason: str) -> RunRecord:
    """A record for a run that could not even start or whose worker died."""
    return RunRecord(config=spec.config, config_name=spec.config_name, mode=spec.mode,
                     scenario=spec.scenario, cpu=spec.cpu, kaslr_seed=spec.kaslr_seed,
                     verdict=ERROR, reasons=[reason], console=[], instructions=0,
                     elapsed_ms=0.0, command=spec.command())
