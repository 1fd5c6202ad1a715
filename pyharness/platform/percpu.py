"""Per-CPU isolation: did a run touch another CPU's per-CPU data?

Each side (hyp and host) has one per-CPU template repeated NR_CPUS times
(docs/platform.md, "Per-CPU data"). Just before the first instruction the
machine snapshots the copies of every CPU but the one that runs; after the
run, every changed byte range becomes a :class:`PerCpuChange`.
"""

from __future__ import annotations

from unicorn import Uc

from pyharness.elf.image import Image
from pyharness.platform.results import PerCpuChange

SIDES = ("hyp", "host")


class PerCpuSnapshot:
    """The other CPUs' per-CPU copies of one run, before it started."""

    def __init__(self, image: Image, running_cpu: int) -> None:
        self._image = image
        self._cpu = running_cpu
        self._areas = [(side, *image.percpu_area(side)) for side in SIDES]
        self._before: dict[tuple[str, int], bytes] | None = None

    def _read(self, uc: Uc) -> dict[tuple[str, int], bytes]:
        snapshot = {}
        for side, start, stride in self._areas:
            for cpu in range(self._image.layout.nr_cpus):
                if cpu != self._cpu:
                    pa = self._image.phys_address(start + cpu * stride)
                    snapshot[side, cpu] = bytes(uc.mem_read(pa, stride))
        return snapshot

    def take(self, uc: Uc) -> None:
        self._before = self._read(uc)

    @property
    def taken(self) -> bool:
        return self._before is not None

    def changes(self, uc: Uc) -> list[PerCpuChange]:
        """Every run of changed bytes since :meth:`take`."""
        assert self._before is not None
        changes = []
        after = self._read(uc)
        starts = {side: start for side, start, _ in self._areas}
        for (side, cpu), before in self._before.items():
            now = after[side, cpu]
            if now == before:   # the usual case: one memcmp, no byte loop
                continue
            i = 0
            while i < len(before):
                if before[i] == now[i]:
                    i += 1
                    continue
                j = i
                while j < len(before) and before[j] != now[j]:
                    j += 1
                changes.append(PerCpuChange(side, cpu, i, j - i,
                                            self._image.describe(starts[side] + i)))
                i = j
        return changes
