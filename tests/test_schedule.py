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
    timings[specs[7].id] = 1.5 * LONG_RUN_MS
    timings[specs[30].id] = LONG_RUN_MS
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
    # Whole images, costliest first to the lane with the least time: a (52
    # ms, with the 30 ms run) and c (42, with the 20 ms one) open the two
    # lanes, b (24) joins c, d (24) joins a.
    assert configs == {0: {"a", "d"}, 1: {"b", "c"}}


def test_an_idle_slot_takes_the_long_runs_then_the_last_groups_of_the_busiest_lane():
    tasks, timings = matrix()
    lanes = Lanes(tasks, timings, 2)
    taken = [lanes.take(0) for _ in range(len(tasks) + 1)]          # slot 0 alone
    assert taken[-1] is None and not len(lanes)
    taken = taken[:-1]
    assert sorted(index for index, _ in taken) == list(range(len(tasks)))
    assert taken[0][0] == 7                                          # its own long run
    stolen_long = [i for i, (index, _) in enumerate(taken) if index == 30]
    own = [group_of(task) for task in taken[1:stolen_long[0]]]
    assert {group[0] for group in own} == {"a", "d"}                 # then its own groups
    rest = [group_of(task) for task in taken[stolen_long[0] + 1:]]
    # then lane 1's long run, and its groups from the last one back, each whole
    switches = [g for i, g in enumerate(rest) if i == 0 or rest[i - 1] != g]
    assert len(switches) == len(set(switches)) == 4
    assert [g[0] for g in switches] == ["c", "c", "b", "b"]


def test_images_are_not_split_between_lanes_even_when_uneven():
    # Three equal images for two lanes: one lane gets two, and the other
    # slot evens it out by taking whole groups when its lane runs dry.
    specs = [spec(config, seed, f"s{n}") for config in ("a", "b", "c")
             for n in range(4) for seed in (1, 2)]
    timings = {s.id: 2.0 for s in specs}
    lanes = Lanes(longest_first(list(enumerate(specs)), timings), timings, 2)
    taken = drain(lanes, [0, 1])
    assert sorted(index for _, (index, _) in taken) == list(range(len(specs)))
    first = {slot: [group_of(task) for s, task in taken[:12] if s == slot] for slot in (0, 1)}
    assert {g[0] for g in first[0]}.isdisjoint({g[0] for g in first[1]})
    assert len([1 for s, _ in taken if s == 0]) - len([1 for s, _ in taken if s == 1]) in (-4, 0, 4)


def test_one_lane_takes_everything_in_order():
    tasks, timings = matrix()
    taken = drain(Lanes(tasks, timings, 1), [0])
    assert [task for _, task in taken] == tasks
