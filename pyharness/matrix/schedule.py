"""Which worker takes which run: the long runs first, to whoever is free;
then the short ones in lanes, one per worker.

A worker keeps one Unicorn instance per image and the code it translated
at each KASLR offset (platform/instance.py): the first run of an image at
an offset in a worker translates every host function it reaches again. The
short runs therefore go in groups (one image at one KASLR seed, as
:func:`~pyharness.matrix.timings.longest_first` orders them), and the groups
are dealt to the workers' lanes in contiguous blocks of about equal time,
so each worker warms only its share of the images. A worker whose lane is
empty takes the last group of the lane with the most work left (its owner
goes on undisturbed with the group it is in).
"""

from __future__ import annotations

import math
from collections import deque
from typing import Hashable, Sequence

from pyharness.matrix.timings import LONG_RUN_MS
from pyharness.run.spec import RunSpec

Task = tuple[int, RunSpec]   # (index in the matrix, the run)

# The time a never-timed short run is taken to need (ms), for dealing.
UNTIMED_MS = 5.0


def group_of(task: Task) -> Hashable:
    """The warm state a run needs: its image (configuration and unwinder)
    at its KASLR seed."""
    spec = task[1]
    return (spec.config, spec.kernel_src, spec.kaslr_seed)


class Lanes:
    """A :class:`~pyharness.matrix.pool.TaskQueue` over ``tasks`` (in the
    order :func:`~pyharness.matrix.timings.longest_first` gives) for
    ``lanes`` workers; see the module docstring."""

    def __init__(self, tasks: Sequence[Task], timings: dict[str, float], lanes: int) -> None:
        def took(task: Task) -> float:
            return timings.get(task[1].id, math.inf)

        self._front = deque(t for t in tasks if took(t) >= LONG_RUN_MS)
        groups: list[list[Task]] = []
        for task in (t for t in tasks if took(t) < LONG_RUN_MS):
            if groups and group_of(groups[-1][0]) == group_of(task):
                groups[-1].append(task)
            else:
                groups.append([task])
        cost = [sum(took(t) for t in g) for g in groups]
        share, spent = sum(cost) / max(1, lanes), 0.0
        self._lanes: list[deque[Task]] = [deque() for _ in range(max(1, lanes))]
        for group, group_cost in zip(groups, cost):
            lane = min(int(spent / share) if share else 0, len(self._lanes) - 1)
            self._lanes[lane].extend(group)
            spent += group_cost

    def __len__(self) -> int:
        return len(self._front) + sum(len(lane) for lane in self._lanes)

    def take(self, slot: int) -> Task | None:
        if self._front:
            return self._front.popleft()
        lane = self._lanes[slot % len(self._lanes)]
        if not lane:
            self._steal_into(lane)
        return lane.popleft() if lane else None

    def _steal_into(self, lane: deque[Task]) -> None:
        """The last group of the lane with the most runs left, into ``lane``."""
        victim = max(self._lanes, key=len)
        if not victim:
            return
        last = group_of(victim[-1])
        stolen: list[Task] = []
        while victim and group_of(victim[-1]) == last:
            stolen.append(victim.pop())
        lane.extend(reversed(stolen))
