"""Which code each baseline run executes, to skip the runs a mutant's code
never reaches.

A baseline run is made like any matrix run (:func:`pyharness.run.runner.observe`
and ``judge``) with one more observer: a basic-block hook that records
every block the CPU enters, turned into link-time address ranges of the
image after the run. A mutant of function ``f`` only needs the runs that
executed some of ``f``'s code in the unmutated image: its out-of-line body
or any copy inlined elsewhere (:func:`pyharness.elf.inlined.function_instances`).

The argument (docs/mutation.md): a mutant changes what ``f`` computes and
nothing else; until a run reaches ``f``'s code, the mutant executes the
same instructions as the original (only addresses may have moved, and the
oracle reads those from the mutant's own image), so a run that never
reaches ``f`` cannot tell them apart. Whatever cannot be placed in one
function this way (a ``#define``, a file-scope size, assembly, a function
DWARF cannot locate) keeps every run.
"""

from __future__ import annotations

import bisect
import traceback
from typing import Sequence

from pyharness.elf.image import Image
from pyharness.errors import HarnessError
from pyharness.matrix.worker import WorkerSettings
from pyharness.platform.machine import Machine
from pyharness.run.record import RunRecord, error_record
from pyharness.run.runner import RunRequest, judge, observe
from pyharness.run.spec import RunSpec

Ranges = tuple[tuple[int, int], ...]


class BlockProbe:
    """Records the basic blocks a run enters (by VA) and places them in the image."""

    def __init__(self) -> None:
        self.blocks: dict[int, int] = {}
        self.machine: Machine | None = None
        self.image: Image | None = None

    def attach(self, machine: Machine, image: Image) -> None:
        self.machine, self.image = machine, image
        blocks = self.blocks

        def on_block(address: int, size: int) -> None:
            if blocks.get(address, -1) < size:
                blocks[address] = size

        machine.add_block_hook(on_block)

    def executed(self) -> Ranges:
        """The link-time ranges of image code the run executed, merged."""
        assert self.machine is not None and self.image is not None
        spans = []
        for va, size in self.blocks.items():
            link = _link_address(self.machine, self.image, va)
            if link is not None:
                spans.append((link, link + max(size, 4)))
        return merge(spans)


def _link_address(machine: Machine, image: Image, va: int) -> int | None:
    """The image address of a VA the CPU executed, at EL2 (hyp code) or EL1."""
    at_el2 = machine.link_address(va, 2)
    if at_el2 is not None:
        hit = image.lookup(at_el2)
        if hit is not None and hit.symbol.is_hyp:
            return at_el2
    at_el1 = machine.link_address(va, 1)
    return at_el1 if at_el1 is not None else at_el2


def merge(spans: Sequence[tuple[int, int]]) -> Ranges:
    out: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return tuple(out)


def intersects(code: Ranges, executed: Ranges) -> bool:
    """Whether any range of ``code`` overlaps the (merged, sorted) ``executed``."""
    starts = [s for s, _ in executed]
    for start, end in code:
        i = bisect.bisect_right(starts, start) - 1
        if i >= 0 and executed[i][1] > start:
            return True
        if i + 1 < len(executed) and executed[i + 1][0] < end:
            return True
    return False


def baseline_step(spec: RunSpec, settings: WorkerSettings) -> tuple[RunRecord, Ranges | None]:
    """In a worker: one run of the unmutated tree, and the code it executed
    (None when the run could not be made)."""
    probe = BlockProbe()
    try:
        request = RunRequest.from_spec(spec, out_dir=settings.out_dir)
        observation = observe(request, setup=probe.attach)
        return judge(observation), probe.executed()
    except HarnessError as err:
        return error_record(spec, str(err)), None
    except Exception as err:  # a harness bug costs this run, as in the matrix
        record = error_record(spec, f"internal error: {type(err).__name__}: {err}")
        record.console = traceback.format_exc().splitlines()
        return record, None


def lost_baseline(spec: RunSpec, reason: str) -> tuple[RunRecord, None]:
    return error_record(spec, reason), None
