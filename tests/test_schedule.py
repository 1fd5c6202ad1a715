"""pyharness.matrix.schedule: which worker slot takes which run."""

from __future__ import annotations

from pyharness.matrix.schedule import Lanes, group_of
from pyharness.matrix.timings import LONG_RUN_MS, longest_first
from pyharness.run.spec import RunSpec


def spec(config: str, seed: int, scenario: str) -> RunSpec:
    return RunSpec(config=config, config_name=config, mode="nvhe", scenario=scenario, cpu=0,
                   kaslr_seed=seed)


def matrix() -> tuple[list[tuple[int, RunSpec]], dict[str, float]]:
    specs = [spec(config, seed, f"s{n}x{seed}") for config in ("a", "b", "c", "d")
             for n in range(6) for seed in (1, 2)]
    timings = {s.id: 2.0 for s in specs}
    timings[specs[7].id] = 10 * LONG_RUN_MS
    timings[specs[30].id] = 2 * LONG_RUN_MS
    return longest_first(list(enumerate(specs)), timings), timings


def drain(lanes: Lanes, order: list[int]) -> list[tuple[int, tuple[int, RunSpec]]]:
    """Take from the slots in ``order``, round and round, until empty."""
    taken = []
    while len(lanes):
        for slot in order:
            task = lanes.take(slot)
            if task is not None:
                taken.append((slot, task))
    return taken


def test_long_runs_go_first_then_each_slot_keeps_to_its_own_images():
    tasks, timings = matrix()
    taken = drain(Lanes(tasks, timings, 2), [0, 1])
    assert sorted(index for _, (index, _) in taken) == list(range(len(tasks)))
    assert [index for _, (index, _) in taken[:2]] == [7, 30]       # longest first
    by_slot = {slot: {group_of(task) for s, task in taken[2:] if s == slot} for slot in (0, 1)}
    assert not by_slot[0] & by_slot[1]                               # no group warmed twice
    configs = {slot: {group[0] for group in groups} for slot, groups in by_slot.items()}
    assert configs == {0: {"a", "b"}, 1: {"c", "d"}}                 # contiguous halves


def test_an_idle_slot_takes_the_last_group_of_the_busiest_lane():
    tasks, timings = matrix()
    lanes = Lanes(tasks, timings, 2)
    first = [lanes.take(0), lanes.take(0)]                           # the two long runs
    assert [index for index, _ in first] == [7, 30]
    mine = [lanes.take(0) for _ in range(len(tasks))]                # slot 0 alone
    mine = [task for task in mine if task is not None]
    assert len(mine) == len(tasks) - 2 and not len(lanes)
    groups = [group_of(task) for task in mine]
    # Its own lane first, then lane 1's groups from the last one back,
    # each whole.
    switches = [g for i, g in enumerate(groups) if i == 0 or groups[i - 1] != g]
    assert len(switches) == len(set(switches))
    assert switches[-1][0] == "c" and switches[len(switches) // 2][0] == "d"


def test_one_lane_takes_everything_in_order():
    tasks, timings = matrix()
    taken = drain(Lanes(tasks, timings, 1), [0])
    assert [task for _, task in taken] == tasks
