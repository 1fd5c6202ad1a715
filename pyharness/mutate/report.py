"""The mutation run's verdicts: per mutant, the summary line, JSON.

How mutants are counted (docs/mutation.md):

- **compile error**: the compiler rejected the mutant (in the first
  configuration that built it). Not a kill by the matrix, and not in N:
  listed on its own line;
- **not built**: the mutated code is not compiled in any selected
  configuration (e.g. ``#else`` of an option they all set). Not in N;
- **error**: the harness could not build or run one of its steps (a full
  or read-only build directory, a worker that died). No verdict: not in
  N, counted on its own, and the command exits 2;
- **equivalent**: the mutant's image is the unmutated image in every
  selected configuration that compiles it (the compiler proved it), or its
  key is in the equivalents list with an argument and no run killed it;
- **killed**: a run failed (a failed check, an emulation error, a hang);
- **survived**: every run that could see it passed.

N = killed + equivalent + survived; score = killed / (N - equivalent).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from pyharness.errors import EXIT_BAD_INPUT, EXIT_CHECK_FAILED, EXIT_OK
from pyharness.files import write_atomically
from pyharness.mutate.equivalents import Equivalent
from pyharness.mutate.execute import (COMPILE_ERROR, ERROR, KILLED, SAME_IMAGE, SURVIVED,
                                      Outcome)
from pyharness.reports.output_guard import ReportKind
from pyharness.terminal import visible

FORMAT = "pyharness-mutate/1"
# What `mutate --json` may replace (reports/output_guard.py): a file this
# wrote, or one from before the format line, which started with its summary.
MUTATE_JSON = ReportKind("JSON mutation report", (
    r'\A\s*\{\s*"format"\s*:\s*"pyharness-mutate/\d+"',
    r'\A\s*\{\s*"summary"\s*:\s*\{\s*"generated"\s*:'))
NOT_BUILT = "not-built"
EQUIVALENT = "equivalent"
# The order the HTML report and the survivors' list use.
VERDICT_ORDER = (ERROR, SURVIVED, KILLED, EQUIVALENT, COMPILE_ERROR, NOT_BUILT)


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    verdict: str                      # one of VERDICT_ORDER
    listed: Equivalent | None = None  # its entry in the equivalents list

    @property
    def mutant(self):  # type: ignore[no-untyped-def]
        return self.outcome.mutant

    def line(self) -> str:
        o = self.outcome
        if self.verdict == KILLED:
            assert o.killer is not None
            text = f"killed by {o.killer.id}: {o.reason}"
            if self.listed is not None:
                text += (f"  [listed as equivalent (line {self.listed.line}): the entry is "
                         "wrong, remove it]")
            return text
        if self.verdict == COMPILE_ERROR:
            return f"COMPILE ERROR ({', '.join(o.tried)}): {o.message}"
        if self.verdict == ERROR:
            return f"ERROR (no verdict: the harness failed): {o.message}"
        if self.verdict == NOT_BUILT:
            return "NOT BUILT: no selected configuration compiles this code"
        if self.verdict == EQUIVALENT:
            if self.listed is not None:
                return f"EQUIVALENT (listed): {self.listed.argument}"
            return f"EQUIVALENT: same image in {', '.join(o.same_image)}"
        if not o.tried and not o.same_image:
            return (f"SURVIVED: no run executes {o.mutant.function or 'this code'}() "
                    f"({o.skipped} runs skipped)")
        configs = len(o.tried)
        same = f"; same image in {', '.join(o.same_image)}" if o.same_image else ""
        skipped = f"; {o.skipped} runs never execute {o.mutant.function}()" if o.skipped else ""
        return (f"SURVIVED {o.runs} run{'s' if o.runs != 1 else ''} in {configs} "
                f"configuration{'s' if configs != 1 else ''}{same}{skipped}")


def classify(outcomes: Sequence[Outcome], listed: dict[str, Equivalent]) -> list[Verdict]:
    out = []
    for outcome in outcomes:
        entry = listed.get(outcome.mutant.key)
        if outcome.status == KILLED:
            out.append(Verdict(outcome, KILLED, entry))
        elif outcome.status in (COMPILE_ERROR, ERROR):
            out.append(Verdict(outcome, outcome.status, entry))
        elif outcome.status == SAME_IMAGE:
            out.append(Verdict(outcome, EQUIVALENT, entry))
        elif outcome.compiled == 0:
            out.append(Verdict(outcome, NOT_BUILT, entry))
        elif entry is not None:
            out.append(Verdict(outcome, EQUIVALENT, entry))
        else:
            out.append(Verdict(outcome, SURVIVED))
    return out


@dataclass(frozen=True)
class Counts:
    generated: int      # N: killed + equivalent + survived
    killed: int
    equivalent: int
    survived: int
    compile_errors: int
    not_built: int
    errors: int = 0     # no verdict: the harness failed (not in N)

    @property
    def score(self) -> float:
        judged = self.generated - self.equivalent
        return 100.0 * self.killed / judged if judged else 100.0

    def summary_line(self) -> str:
        errors = f", {self.errors} without a verdict (harness errors)" if self.errors else ""
        judged = self.generated - self.equivalent
        score = f"score {self.score:.1f}%" if judged or not self.errors else "no score"
        return (f"mutants: {self.generated} generated, {self.killed} killed, "
                f"{self.equivalent} equivalent, {self.survived} survived{errors} ({score})")

    @property
    def exit_code(self) -> int:
        if self.errors:
            return EXIT_BAD_INPUT
        return EXIT_OK if self.survived == 0 else EXIT_CHECK_FAILED


def count(verdicts: Sequence[Verdict]) -> Counts:
    by = {v: sum(1 for x in verdicts if x.verdict == v) for v in VERDICT_ORDER}
    return Counts(generated=by[KILLED] + by[EQUIVALENT] + by[SURVIVED], killed=by[KILLED],
                  equivalent=by[EQUIVALENT], survived=by[SURVIVED],
                  compile_errors=by[COMPILE_ERROR], not_built=by[NOT_BUILT], errors=by[ERROR])


def mutant_lines(verdict: Verdict) -> list[str]:
    """How one mutant prints: location and operator, its diff, its verdict."""
    m = verdict.mutant
    minus, plus = m.diff()
    return [visible(line) for line in (f"{m.id} {m.location()} {m.operator}: {m.what}",
                                       f"    {minus}", f"    {plus}", f"    {verdict.line()}")]


def extra_lines(counts: Counts) -> list[str]:
    lines = []
    if counts.errors:
        lines.append(f"errors: {counts.errors} (the harness could not build or run them: "
                     "no verdict, not in N; see each one's ERROR line)")
    if counts.compile_errors:
        lines.append(f"compile errors: {counts.compile_errors} (rejected by the compiler, not "
                     "by the matrix: not in N)")
    if counts.not_built:
        lines.append(f"not built: {counts.not_built} (no selected configuration compiles "
                     "their code: not in N)")
    return lines


def to_json(verdicts: Sequence[Verdict], counts: Counts, info: dict[str, object]) -> dict:
    mutants = []
    for v in verdicts:
        m, o = v.mutant, v.outcome
        mutants.append({
            "id": m.id, "key": m.key, "file": m.file, "line": m.line, "operator": m.operator,
            "what": m.what, "before": m.before, "after": m.after, "function": m.function,
            "tree": m.tree, "verdict": v.verdict,
            "killed_by": o.killer.id if o.killer else None,
            "reason": o.reason or None,
            "command": o.killer.command if o.killer else None,
            "console": o.killer.console if o.killer else None,
            "compiler_output": o.detail or None,
            "equivalent_argument": v.listed.argument if v.listed else None,
            "runs": o.runs, "runs_skipped": o.skipped, "configs_run": o.tried,
            "same_image_in": o.same_image,
            "seconds": round(o.seconds, 3), "build_seconds": round(o.build_seconds, 3),
        })
    summary = {"generated": counts.generated, "killed": counts.killed,
               "equivalent": counts.equivalent, "survived": counts.survived,
               "compile_errors": counts.compile_errors, "not_built": counts.not_built,
               "errors": counts.errors, "score": round(counts.score, 2),
               "line": counts.summary_line()}
    return {"format": FORMAT, "summary": summary,
            **info, "mutants": mutants}


def write_json(path: Path, data: dict) -> None:
    """The report, replacing ``path`` in one step: a full disk leaves the old one."""
    write_atomically(path, json.dumps(data, indent=1) + "\n")
