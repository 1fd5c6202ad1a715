"""Which worker takes which run: one lane of runs per worker.

A worker keeps one Unicorn instance per image and the code it translated
at each KASLR offset (platform/instance.py): the first run of an image in
a worker loads it (about 15 ms), and the first at an offset translates
every host function it reaches again. So the runs go in groups, one image
at one KASLR seed, and whole images are dealt to the workers' lanes, the
costliest first, each to the lane with the least time so far (by what
each run took last time): each worker loads and warms only its share of
the images. In its lane a worker takes the long runs first (never-timed ones
first, then longest first: a long run left for last would keep one worker
busy while the others sit idle), then the short ones group by group. A
worker whose lane is empty takes from the lane with the most runs left:
its long runs first, else its last group, whole (that lane's owner goes on
undisturbed with the group it is in).
"""

from __future__ import annotations

import math
from collections import deque
from typing import Hashable, Sequence

from pyharness.matrix.timings import LONG_RUN_MS
from pyharness.run.spec import RunSpec

Task = tuple[int, RunSpec]   # (index in the matrix, the run)

# The time a never-timed run is taken to need (ms), for dealing.
UNTIMED_MS = 5.0


def group_of(task: Task) -> Hashable:
    """The warm state a run needs: its image (configuration and unwinder)
    at its KASLR seed."""
    spec = task[1]
    return (spec.config, spec.kernel_src or "", spec.kaslr_seed)


def image_of(group: Hashable) -> Hashable:
    """The image (configuration and unwinder) of a :func:`group_of` key."""
    return group[:2]  # type: ignore[index]


class _Lane:
    def __init__(self) -> None:
        self.long: deque[Task] = deque()    # longest first
        self.short: deque[Task] = deque()   # group by group

    def __len__(self) -> int:
        return len(self.long) + len(self.short)


class Lanes:
    """A :class:`~pyharness.matrix.pool.TaskQueue` over ``tasks`` for
    ``lanes`` workers; see the module docstring. With one lane the order
    is :func:`~pyharness.matrix.timings.longest_first`'s."""

    def __init__(self, tasks: Sequence[Task], timings: dict[str, float], lanes: int) -> None:
        def took(task: Task) -> float:
            return timings.get(task[1].id, math.inf)

        groups: dict[Hashable, list[Task]] = {}
        for task in sorted(tasks, key=lambda t: (group_of(t), t[0])):
            groups.setdefault(group_of(task), []).append(task)
        images: dict[Hashable, list[list[Task]]] = {}
        for key, group in groups.items():
            images.setdefault(image_of(key), []).append(group)
        cost = {image: sum(UNTIMED_MS if math.isinf(took(t)) else took(t)
                           for group in image_groups for t in group)
                for image, image_groups in images.items()}
        self._lanes = [_Lane() for _ in range(max(1, lanes))]
        spent = [0.0 for _ in self._lanes]
        dealt: list[list[Hashable]] = [[] for _ in self._lanes]
        for image in sorted(images, key=lambda i: (-cost[i], i)):
            number = spent.index(min(spent))
            dealt[number].append(image)
            spent[number] += cost[image]
        long_ones: list[list[Task]] = [[] for _ in self._lanes]
        for number, lane in enumerate(self._lanes):
            for image in sorted(dealt[number]):
                for task in (t for group in images[image] for t in group):
                    if took(task) >= LONG_RUN_MS:
                        long_ones[number].append(task)
                    else:
                        lane.short.append(task)
        for lane, tasks_ in zip(self._lanes, long_ones):
            lane.long.extend(sorted(tasks_, key=lambda t: (-took(t), t[0])))

    def __len__(self) -> int:
        return sum(len(lane) for lane in self._lanes)

    def take(self, slot: int) -> Task | None:
        lane = self._lanes[slot % len(self._lanes)]
        if not lane:
            return self._steal(lane)
        return lane.long.popleft() if lane.long else lane.short.popleft()

    def _steal(self, thief: _Lane) -> Task | None:
        """From the lane with the most runs left: a long run, else its last
        group (the first of the group now, the rest into the ``thief``'s
        lane)."""
        victim = max(self._lanes, key=len)
        if not victim:
            return None
        if victim.long:
            return victim.long.popleft()
        last = group_of(victim.short[-1])
        stolen: list[Task] = []
        while victim.short and group_of(victim.short[-1]) == last:
            stolen.append(victim.short.pop())
        stolen.reverse()
        thief.short.extend(stolen[1:])
        return stolen[0]
