"""The JSON report: one record per run, as ``pyharness run --json`` prints it.

The file is an object ``{"format": ..., "summary": {...}, "plan": {...},
"runs": [...]}``. ``plan`` (written by ``pyharness matrix``) holds the id
of every run of the whole matrix, in matrix order, and the shard this file
is (``"1/4"``, or null): ``pyharness report merge`` puts shards back in
that order and names the runs no shard has. :func:`load_records` reads a
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
class MatrixPlanIds:
    """Which matrix a report's runs belong to: every run's id, and the shard."""

    ids: tuple[str, ...]
    shard: str | None = None

    def to_json(self) -> dict[str, object]:
        return {"runs": len(self.ids), "shard": self.shard, "ids": list(self.ids)}


def records_document(records: Sequence[RunRecord],
                     plan: MatrixPlanIds | None = None) -> dict[str, object]:
    document: dict[str, object] = {"format": FORMAT, "summary": summary_of(records)}
    if plan is not None:
        document["plan"] = plan.to_json()
    document["runs"] = [r.to_json() for r in records]
    return document


def write_json(records: Sequence[RunRecord], path: Path,
               plan: MatrixPlanIds | None = None) -> None:
    write_atomically(path, json.dumps(records_document(records, plan), indent=1) + "\n")


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


def _plan_in(document: object, path: Path) -> MatrixPlanIds | None:
    plan = document.get("plan") if isinstance(document, dict) else None
    if plan is None:
        return None
    ids = plan.get("ids") if isinstance(plan, dict) else None
    shard = plan.get("shard") if isinstance(plan, dict) else None
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids) \
            or not (shard is None or isinstance(shard, str)):
        raise HarnessError(f"{path}: its \"plan\" is not a list of run ids and a shard; "
                           f"{_hint()}")
    return MatrixPlanIds(ids=tuple(ids), shard=shard)


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
