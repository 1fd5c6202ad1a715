"""The record of one finished run: what ``pyharness run --json`` prints, one
entry of the matrix's JSON report, what every report renders."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from pyharness.builder.provenance import TreeProvenance
from pyharness.judge.verdict import Diagnosis, FrameLine, Verdict
from pyharness.run.spec import RunSpec

_SPEC_FIELDS = tuple(f.name for f in fields(RunSpec))


@dataclass
class RunRecord:
    """The outcome of one run of ``spec``."""

    spec: RunSpec
    verdict: Verdict
    reasons: list[str]
    console: list[str]
    instructions: int
    elapsed_ms: float
    kaslr_offset: int = 0
    run_status: str = ""
    exit_status: int | None = None
    expected: list[FrameLine] = field(default_factory=list)
    actual: list[FrameLine] = field(default_factory=list)
    expected_panic: str | None = None
    build_ms: float = 0.0
    elf: str = ""
    # A real run with --differential: how the lab's dump of the same
    # scenario differs (each "aspect: lab ..., real kernel ... (why)").
    differences: list[str] = field(default_factory=list)
    # Which state of the kernel tree ran (its commit, dirty, diff hash, or
    # why none); None for the lab's unwinder, and in reports written before.
    tree: TreeProvenance | None = None
    # A failing trace: its first departure from the oracle's, the frame
    # records there and the rule that looks broken (judge/diagnosis.py).
    diagnosis: Diagnosis | None = None
    # What the record left out of a failure (run/caps.py): how many reasons,
    # console lines and printed frames ("reasons", "console", "actual").
    cut: dict[str, int] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.verdict is Verdict.PASS

    @property
    def id(self) -> str:
        return self.spec.id

    @property
    def command(self) -> str:
        return self.spec.command()

    def to_json(self) -> dict[str, object]:
        """The JSON object: the spec's fields first, then the outcome."""
        return {
            **self.spec.to_dict(),
            "verdict": str(self.verdict), "reasons": list(self.reasons),
            "console": list(self.console), "instructions": self.instructions,
            "elapsed_ms": self.elapsed_ms, "kaslr_offset": self.kaslr_offset,
            "run_status": self.run_status, "exit_status": self.exit_status,
            "expected": [f.to_json() for f in self.expected],
            "actual": [f.to_json() for f in self.actual],
            "expected_panic": self.expected_panic, "build_ms": self.build_ms,
            "elf": self.elf, "command": self.command,
            **({"differences": list(self.differences)} if self.differences else {}),
            "tree": self.tree.to_json() if self.tree else None,
            **({"diagnosis": self.diagnosis.to_json()} if self.diagnosis else {}),
            **({"cut": dict(self.cut)} if self.cut else {}),
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> RunRecord:
        """A record from its JSON object (fields already type-checked by the
        caller; unknown fields are ignored; a record from before the
        unwinder axis is a run of the lab's unwinder, one from before the
        budgets were recorded had the default ones, one from before trees
        were recorded has no ``tree``, one not capped no ``cut``). A malformed
        ``tree`` is a ValueError."""
        spec = RunSpec(**{name: data[name] for name in _SPEC_FIELDS  # type: ignore[arg-type]
                          if name in data})
        outcome = {f.name: data[f.name] for f in fields(cls)
                   if f.name != "spec" and f.name in data}
        outcome["verdict"] = Verdict(outcome["verdict"])
        for name in ("expected", "actual"):
            outcome[name] = [FrameLine.from_json(f) for f in outcome.get(name) or []
                             if isinstance(f, dict)]
        tree = outcome.get("tree")
        outcome["tree"] = TreeProvenance.from_json(tree) if tree is not None else None
        diagnosis = outcome.get("diagnosis")
        outcome["diagnosis"] = (Diagnosis.from_json(diagnosis) if isinstance(diagnosis, dict)
                                else None)
        cut = outcome.get("cut")
        outcome["cut"] = ({str(k): v for k, v in cut.items() if isinstance(v, int)}
                          if isinstance(cut, dict) else {})
        return cls(spec=spec, **outcome)  # type: ignore[arg-type]


def error_record(spec: RunSpec, reason: str) -> RunRecord:
    """A record for a run that could not even start or whose worker died."""
    return RunRecord(spec=spec, verdict=Verdict.ERROR, reasons=[reason], console=[],
                     instructions=0, elapsed_ms=0.0)
