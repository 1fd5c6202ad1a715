"""Run times from earlier matrices, so the long runs start first.

Near the end of a matrix, one long run left to a single worker while the
others sit idle costs as much as the run itself. Starting the long runs
first (by what they took last time) keeps every worker busy to the end.
The short ones then go image by image, KASLR offset by offset: a worker
keeps one Unicorn instance per image, with the code it translated at each
offset (platform/instance.py), and an order that jumped between images
evicted and rebuilt them (1.5 s of a 6 s matrix).

The times live beside the build trees, in ``matrix-timings/``, one small
JSON file per row of the grid (configuration and unwinder): a matrix reads
and writes only its own rows' files (one file of every run ever timed took
30 ms to rewrite after `matrix --all`), and a row's file is rewritten only
when a time in it moved (SAME_TIME_FRACTION). A missing or unreadable file
only means no hint (runs keep their order, those never timed first).
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Iterable, Sequence, TypeVar

from pyharness.files import write_atomically
from pyharness.run.spec import RunSpec
from pyharness.paths import build_base
from pyharness.run.record import RunRecord

DIRECTORY_NAME = "matrix-timings"

Task = TypeVar("Task", bound=tuple[int, RunSpec])

# A time is a hint for the order: a run's new time replaces its old one
# only when they differ by more than this fraction (or by SAME_TIME_MS).
SAME_TIME_FRACTION = 0.25
SAME_TIME_MS = 1.0


def timings_dir(out_dir: Path | str | None) -> Path:
    return build_base(out_dir) / DIRECTORY_NAME


def row_file(directory: Path, row: str) -> Path:
    """The file of one row (``linux-6.12/pkvm`` -> ``linux-6.12+pkvm.json``;
    any other character a file name should not hold becomes ``_``)."""
    return directory / (re.sub(r"[^A-Za-z0-9.+_-]", "_", row.replace("/", "+")) + ".json")


def read_timings(path: Path) -> dict[str, float]:
    """One file's times by run id; {} for a missing or unreadable file."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return {}
    if not isinstance(data, dict):
        return {}
    # type(), not isinstance(): a bool is not a time.
    try:
        return {k: float(v) for k, v in data.items()
                if type(v) in (float, int) and type(k) is str}
    except OverflowError:   # an integer too large for a float: not our file
        return {}


def load_timings(directory: Path, rows: Iterable[str]) -> dict[str, float]:
    """The times of every run of these rows, by run id."""
    times: dict[str, float] = {}
    for row in sorted(set(rows)):
        times.update(read_timings(row_file(directory, row)))
    return times


def _same_time(old: float | None, new: float) -> bool:
    return old is not None and abs(new - old) <= max(SAME_TIME_MS, SAME_TIME_FRACTION * old)


def save_timings(directory: Path, records: Sequence[RunRecord]) -> None:
    """Merge the runs' times into their rows' files (atomically; best
    effort). A row's file is left as it is when none of its times moved;
    the times of runs not in ``records`` stay."""
    by_row: dict[str, list[RunRecord]] = {}
    for record in records:
        if record.instructions > 0:  # it ran: an error before the start says nothing
            by_row.setdefault(record.spec.row, []).append(record)
    for row, ran in sorted(by_row.items()):
        path = row_file(directory, row)
        times = read_timings(path)
        changed = not path.exists()
        for record in ran:
            took = round(record.elapsed_ms + record.build_ms, 3)
            if not _same_time(times.get(record.id), took):
                times[record.id] = took
                changed = True
        if not changed:
            continue
        try:
            directory.mkdir(parents=True, exist_ok=True)
            write_atomically(path, json.dumps(times, sort_keys=True))
        except OSError:
            return  # a read-only build directory: no hint next time


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
