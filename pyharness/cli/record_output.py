"""How one run's record reaches the terminal (``pyharness run`` and
``pyharness qemu``): the JSON record, or the console, then on stderr a
verdict line with the run's cost, each reason, and what else the record
says (the tree tested, the differences from the lab, the diagnosis)."""

from __future__ import annotations

import json
import sys

from pyharness.errors import EXIT_CHECK_FAILED, EXIT_OK
from pyharness.run.record import RunRecord
from pyharness.terminal import visible


def print_record(record: RunRecord, as_json: bool, cost: str) -> int:
    """Print a record; its exit code (0 pass, 1 otherwise)."""
    if as_json:
        print(json.dumps(record.to_json(), indent=1))
        return EXIT_OK if record.passed else EXIT_CHECK_FAILED
    for line in record.console:
        print(visible(line))
    spec = record.spec
    notes = [f"    {reason}" for reason in record.reasons]
    if record.tree is not None:
        notes.append(f"    tree {spec.kernel_src}: {record.tree.describe()}")
    notes += [f"    lab vs real kernel: {d}" for d in record.differences]
    if record.diagnosis is not None:
        notes += [f"    {line}" for line in record.diagnosis.lines()]
    print(visible(f"--- {spec.row} {spec.mode} {spec.scenario} cpu{spec.cpu}: "
                  f"{record.verdict.upper()} ({cost})"), file=sys.stderr)
    for note in notes:
        print(visible(note), file=sys.stderr)
    return EXIT_OK if record.passed else EXIT_CHECK_FAILED
