"""The JSON report: one record per run, as ``pyharness run --json`` prints it.

The file is an object ``{"format": ..., "summary": {...}, "plan": {...},
"runs": [...]}``. ``plan`` (written by ``pyharness matrix``) holds the id
of every run of the whole matrix, in matrix order, and the shard this file
is (``"1/4"``, or null), and the matrix's ``seed``, budgets
(``max_instructions``, ``timeout_s``) and ``trees`` (label, path,
generation): ``pyharness report merge`` puts shards back in that order,
names the runs no shard has, and refuses shards of two matrices. :func:`load_records` reads a
file back for ``--only-failed``, and also accepts a bare list of records
or a single record (the output of ``pyharness run --json``). Anything else
is bad input with one clear message.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from pyharness.errors import HarnessError
from pyharness.files import write_atomically
from pyharness.judge.verdict import Verdict
from pyharness.platform.results import check_budgets
from pyharness.reports.record_fields import field_problem
from pyharness.run.record import RunRecord

FORMAT = "pyharness-matrix/1"

# Fields a record must have to be rerun (every field's type: record_fields).
_REQUIRED = ("config", "config_name", "mode", "scenario", "cpu", "kaslr_seed", "verdict")
# Fields that may be missing in a hand-trimmed file, and what they default to.
_DEFAULTS: dict[str, Any] = {"reasons": [], "console": [], "instructions": 0,
                             "elapsed_ms": 0.0}


def summary_of(records: Sequence[RunRecord]) -> dict[str, int]:
    counts = {"runs": len(records), **{str(v): 0 for v in Verdict}}
    for record in records:
        counts[record.verdict] = counts.get(record.verdict, 0) + 1
    return counts


@dataclass(frozen=True)
class PlannedTree:
    """A kernel tree of a matrix's unwinder axis, as its plan names it."""

    label: str
    kernel_src: str
    generation: str | None

    def to_json(self) -> dict[str, object]:
        return {"label": self.label, "kernel_src": self.kernel_src,
                "generation": self.generation}


@dataclass(frozen=True)
class MatrixPlanIds:
    """Which matrix a report's runs belong to: every run's id, the shard,
    and what else makes two matrices of the same runs different: the seed
    of the KASLR seeds, the budgets and the trees (None: not recorded, in
    a report from before they were, or a rerun's, whose runs keep theirs)."""

    ids: tuple[str, ...]
    shard: str | None = None
    seed: int | None = None
    max_instructions: int | None = None
    timeout_s: float | None = None
    trees: tuple[PlannedTree, ...] | None = None

    def to_json(self) -> dict[str, object]:
        data: dict[str, object] = {"runs": len(self.ids), "shard": self.shard}
        for name in ("seed", "max_instructions", "timeout_s"):
            if getattr(self, name) is not None:
                data[name] = getattr(self, name)
        if self.trees is not None:
            data["trees"] = [t.to_json() for t in self.trees]
        data["ids"] = list(self.ids)
        return data


def records_document(records: Sequence[RunRecord],
                     plan: MatrixPlanIds | None = None) -> dict[str, object]:
    document: dict[str, object] = {"format": FORMAT, "summary": summary_of(records)}
    if plan is not None:
        document["plan"] = plan.to_json()
    document["runs"] = [r.to_json() for r in records]
    return document


def json_text(records: Sequence[RunRecord], plan: MatrixPlanIds | None = None) -> str:
    """The report's text: the head indented, then one run per line (which
    json writes at C speed, and a diff of two reports shows run by run)."""
    document = records_document(records, plan)
    runs = document.pop("runs")
    head = json.dumps(document, indent=1)
    lines = ",\n".join(json.dumps(run) for run in runs)   # type: ignore[attr-defined]
    body = f"[\n{lines}\n ]" if lines else "[]"
    return f'{head[:-2]},\n "runs": {body}\n}}\n'


def write_json(records: Sequence[RunRecord], path: Path,
               plan: MatrixPlanIds | None = None) -> None:
    write_atomically(path, json_text(records, plan))


def with_reruns(records: Sequence[RunRecord], reruns: Sequence[RunRecord]) -> list[RunRecord]:
    """``records`` with each run of ``reruns`` replacing the record of the same
    id, in place; a rerun of a run not in ``records`` is added at the end."""
    fresh = {r.id: r for r in reruns}
    kept = [fresh.pop(r.id, r) for r in records]
    return kept + list(fresh.values())


def _hint() -> str:
    return "pass a file written by `pyharness matrix --json` or `pyharness run --json`"


def _runs_in(document: object, path: Path) -> list[object]:
    if isinstance(document, list):
        return document
    if isinstance(document, dict) and isinstance(document.get("runs"), list):
        return document["runs"]
    if isinstance(document, dict) and "verdict" in document:
        return [document]
    raise HarnessError(f"{path}: no run records in it (expected an object with \"runs\", "
                       f"a list of records or one record); {_hint()}")


def _record(data: object, number: int, path: Path) -> RunRecord:
    if not isinstance(data, dict):
        raise HarnessError(f"{path}: run {number} is a {type(data).__name__}, "
                           f"not a record; {_hint()}")
    for name in _REQUIRED:
        if name not in data:
            raise HarnessError(f"{path}: run {number}: field {name!r} is missing; {_hint()}")
    try:
        check_budgets(data.get("max_instructions"), data.get("timeout_s"))
    except HarnessError as err:
        raise HarnessError(f"{path}: run {number}: {err}; {_hint()}") from None
    wrong = field_problem(data)
    if wrong is not None:
        raise HarnessError(f"{path}: run {number}: field {wrong[0]!r} {wrong[1]}; {_hint()}")
    try:
        return RunRecord.from_json({**_DEFAULTS, **data})
    except ValueError as err:        # the tree's fields (TreeProvenance.from_json)
        raise HarnessError(f"{path}: run {number}: field 'tree' {err}; {_hint()}") from None


# Far more than any matrix writes; a larger input is not a report.
MAX_REPORT_BYTES = 256 << 20


def _read_report(path: Path) -> str:
    """The text of a report file or pipe; a device (``/dev/zero``) or an
    input over MAX_REPORT_BYTES is refused without reading it all."""
    with open(path, "rb") as f:
        mode = os.fstat(f.fileno()).st_mode
        if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            raise HarnessError(f"{path}: a device, not a report file; {_hint()}")
        data = f.read(MAX_REPORT_BYTES + 1)
    if len(data) > MAX_REPORT_BYTES:
        raise HarnessError(f"{path}: over {MAX_REPORT_BYTES >> 20} MiB, too large to be a "
                           f"report; {_hint()}")
    return data.decode("utf-8")


def load_records(path: Path) -> list[RunRecord]:
    """Every run record in a JSON report; bad files raise HarnessError."""
    return load_report(path)[0]


_PLAN_FIELDS: dict[str, tuple[type, ...]] = {
    "shard": (str, type(None)), "seed": (int, type(None)),
    "max_instructions": (int, type(None)), "timeout_s": (int, float, type(None))}


def _planned_trees(trees: object) -> tuple[PlannedTree, ...] | None:
    if trees is None:
        return None
    if not isinstance(trees, list):
        raise ValueError("trees")
    out = []
    for tree in trees:
        if not isinstance(tree, dict) or not isinstance(tree.get("label"), str) \
                or not isinstance(tree.get("kernel_src"), str) \
                or not isinstance(tree.get("generation"), (str, type(None))):
            raise ValueError("trees")
        out.append(PlannedTree(tree["label"], tree["kernel_src"], tree["generation"]))
    return tuple(out)


def _plan_in(document: object, path: Path) -> MatrixPlanIds | None:
    plan = document.get("plan") if isinstance(document, dict) else None
    if plan is None:
        return None
    problem = "is not an object" if not isinstance(plan, dict) else None
    if problem is None:
        ids = plan.get("ids")
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            problem = "has no list of run ids"
        for name, kinds in _PLAN_FIELDS.items():
            value = plan.get(name)
            if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
                problem = problem or f"has a {name} of the wrong type"
        try:
            trees = _planned_trees(plan.get("trees"))
        except ValueError:
            problem = problem or "has trees that are not a list of label, path, generation"
    if problem is not None:
        raise HarnessError(f"{path}: its \"plan\" {problem}; {_hint()}")
    return MatrixPlanIds(ids=tuple(ids), shard=plan.get("shard"), seed=plan.get("seed"),
                         max_instructions=plan.get("max_instructions"),
                         timeout_s=plan.get("timeout_s"), trees=trees)


def load_report(path: Path) -> tuple[list[RunRecord], MatrixPlanIds | None]:
    """The records of a JSON report and its matrix plan (None if it has none)."""
    try:
        text = _read_report(path)
    except FileNotFoundError:
        raise HarnessError(f"{path}: no such file; {_hint()}") from None
    except (OSError, UnicodeDecodeError) as err:
        reason = err.strerror if isinstance(err, OSError) else "not UTF-8 text"
        raise HarnessError(f"{path}: cannot read it ({reason}); {_hint()}") from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as err:
        raise HarnessError(f"{path}: not valid JSON (line {err.lineno}, column {err.colno}: "
                           f"{err.msg}); {_hint()}") from None
    except RecursionError:
        raise HarnessError(f"{path}: JSON nested too deeply to be a report; "
                           f"{_hint()}") from None
    except ValueError:               # an integer of more digits than Python converts
        raise HarnessError(f"{path}: not a report: it holds a number of over "
                           f"{sys.get_int_max_str_digits()} digits; {_hint()}") from None
    records = [_record(data, i, path) for i, data in enumerate(_runs_in(document, path), 1)]
    return records, _plan_in(document, path)
