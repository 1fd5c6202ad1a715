"""Run times from earlier matrices, so the longest runs start first.

Near the end of a matrix, one long run left to a single worker while the
others sit idle costs as much as the run itself. Starting the longest
runs first (by what they took last time) keeps every worker busy to the
end. The times live beside the build trees, in ``matrix-timings.json``;
a missing or unreadable file only means no hint (runs keep their order,
those never timed first).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Sequence, TypeVar

from pyharness.files import write_atomically
from pyharness.run.spec import RunSpec
from pyharness.paths import build_base
from pyharness.run.record import RunRecord

FILE_NAME = "matrix-timings.json"

Task = TypeVar("Task", bound=tuple[int, RunSpec])


def timings_path(out_dir: Path | str | None) -> Path:
    return build_base(out_dir) / FILE_NAME


def load_timings(path: Path) -> dict[str, float]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return {}
    if not isinstance(data, dict):
        return {}
    try:
        return {k: float(v) for k, v in data.items()
                if isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool)}
    except OverflowError:   # an integer too large for a float: not our file
        return {}


def save_timings(path: Path, records: Sequence[RunRecord],
                 previous: dict[str, float]) -> None:
    """Merge the runs' times into the file (atomically; best effort)."""
    merged = dict(previous)
    for record in records:
        if record.instructions > 0:  # it ran: an error before the start says nothing
            key = record.id
            merged[key] = round(record.elapsed_ms + record.build_ms, 3)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, json.dumps(merged, sort_keys=True))
    except OSError:
        pass  # a read-only build directory: no hint next time


def longest_first(tasks: Sequence[Task], timings: dict[str, float]) -> list[Task]:
    """Never-timed runs first (they may be long), then by last time, longest first."""
    return sorted(tasks, key=lambda task: -timings.get(task[1].id, math.inf))
