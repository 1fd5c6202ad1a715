"""Run times from earlier matrices, so the long runs start first.

Near the end of a matrix, one long run left to a single worker while the
others sit idle costs as much as the run itself. Starting the long runs
first (by what they took last time) keeps every worker busy to the end.
The short ones then go image by image, KASLR offset by offset: a worker
keeps one Unicorn instance per image, with the code it translated at each
offset (platform/instance.py), and an order that jumped between images
evicted and rebuilt them (1.5 s of a 6 s matrix). The times live beside
the build trees, in ``matrix-timings.json``; a missing or unreadable file
only means no hint (runs keep their order, those never timed first).
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
    # type(), not isinstance(): a bool is not a time (and the file holds
    # every run of every matrix so far, tens of thousands).
    try:
        return {k: float(v) for k, v in data.items()
                if type(v) in (float, int) and type(k) is str}
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


# A run that took this long last time starts before the short ones.
LONG_RUN_MS = 20.0


def longest_first(tasks: Sequence[Task], timings: dict[str, float]) -> list[Task]:
    """Never-timed runs first (they may be long), then the long ones by last
    time, longest first, then the short ones image by image (configuration
    and unwinder), by KASLR seed, in their own order."""
    def key(task: Task) -> tuple:
        index, spec = task
        took = timings.get(spec.id, math.inf)
        if took >= LONG_RUN_MS:
            return (0, -took)
        return (1, spec.config, spec.kernel_src or "", spec.kaslr_seed, index)
    return sorted(tasks, key=key)
