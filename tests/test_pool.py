"""The worker pool on its own: tasks sent ahead, results answered in
batches, and a crash or a hang charged to the task that had it even while
a worker held the results of earlier ones. The tasks are small functions
of this module, run in real forked workers."""

from __future__ import annotations

import gc
import os
import time

import pytest

from pyharness.matrix.pool import WorkerPool
from pyharness.matrix.worker import WorkerSettings

SETTINGS = WorkerSettings(out_dir=None)


def echo(task: str, _settings: WorkerSettings) -> tuple[str, int]:
    """The task back, with the worker's pid; ``crash`` ends the worker, ``hang`` never returns."""
    if task == "crash":
        os._exit(86)
    if task == "hang":
        while True:
            time.sleep(3600)
    if task == "hog":   # 64 MiB every 20 ms, up to 3 GiB (the test's own bound)
        held = []
        while len(held) < 48:
            held.append(b"x" * (64 << 20))
            time.sleep(0.02)
    return task, os.getpid()


def lost(task: str, reason: str) -> tuple[str, str]:
    return task, "lost: " + reason


def run(tasks: list[str], *, size: int = 1, depth: int = 8, batch: int = 4,
        kill_after_s: float = 30.0, memory_limit: int | None = None
        ) -> tuple[dict[int, tuple], object]:
    results: dict[int, tuple] = {}

    def on_result(index: int, result: tuple) -> None:
        assert index not in results, f"task {index} answered twice"
        results[index] = result
    pool = WorkerPool(size, SETTINGS, kill_after_s, work=echo, lost=lost,
                      depth=depth, batch=batch, memory_limit=memory_limit)
    stats = pool.run(list(enumerate(tasks)), on_result)
    return results, stats


@pytest.mark.parametrize("size, depth, batch", [(1, 1, 1), (1, 8, 4), (2, 8, 4), (2, 3, 9)])
def test_every_task_answered_once_in_any_batching(size, depth, batch):
    tasks = [f"t{i}" for i in range(41)]
    results, stats = run(tasks, size=size, depth=depth, batch=batch)
    assert [results[i][0] for i in range(len(tasks))] == tasks
    assert stats.workers_started == size and stats.workers_lost == 0 and stats.not_run == 0


def test_a_crash_after_held_results_is_charged_to_its_own_task():
    # One worker, eight tasks sent ahead, four results held: t0 and t1 are
    # done and held when "crash" ends the worker.
    tasks = ["t0", "t1", "crash", "t3", "t4"]
    results, stats = run(tasks)
    assert results[2] == ("crash", "lost: the worker process died (exit code 86) "
                                   "during this run")
    assert [results[i][0] for i in (0, 1, 3, 4)] == ["t0", "t1", "t3", "t4"]
    # The held ones ran again in the new worker, with the ones never started.
    assert len({results[i][1] for i in (0, 1, 3, 4)}) == 1
    assert stats.workers_started == 2 and stats.workers_lost == 1


def test_a_hang_after_held_results_is_charged_to_its_own_task():
    tasks = ["t0", "hang", "t2"]
    started = time.monotonic()
    results, stats = run(tasks, kill_after_s=1.0)
    assert results[1][0] == "hang" and "no result within 1 s" in results[1][1]
    assert [results[i][0] for i in (0, 2)] == ["t0", "t2"]
    assert stats.workers_lost == 1
    assert time.monotonic() - started < 10


def test_a_worker_past_the_memory_limit_costs_its_task_not_the_machine():
    results, stats = run(["t0", "hog", "t2"], memory_limit=256 << 20)
    assert results[1][0] == "hog"
    assert "past the 256 MiB a worker may" in results[1][1]
    assert [results[i][0] for i in (0, 2)] == ["t0", "t2"]
    assert stats.workers_lost == 1


def test_the_default_memory_limit_leaves_room_for_every_worker():
    from pyharness.matrix.pool import MAX_WORKER_BYTES, default_memory_limit
    physical = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    for workers in (1, 2, 64):
        limit = default_memory_limit(workers)
        assert limit <= MAX_WORKER_BYTES and (limit * (workers + 1) <= physical
                                              or limit == 256 << 20)


def collector_state(_task: str, _settings: WorkerSettings) -> tuple[bool, bool]:
    return gc.isenabled(), gc.get_freeze_count() > 0


def test_the_collector_is_paused_only_in_the_parent_and_only_during_the_pool():
    seen: dict[int, tuple[bool, bool]] = {}
    in_parent: list[bool] = []

    def on_result(index: int, result: tuple[bool, bool]) -> None:
        seen[index] = result
        in_parent.append(gc.isenabled())
    frozen_before = gc.get_freeze_count()
    pool = WorkerPool(2, SETTINGS, 30.0, work=collector_state, lost=lost, depth=2, batch=1)
    pool.run(list(enumerate(["a", "b", "c"])), on_result)
    # Workers collect, and what they inherited is frozen out of it.
    assert set(seen.values()) == {(True, True)}
    assert in_parent == [False] * 3
    assert gc.isenabled() and gc.get_freeze_count() == frozen_before
    gc.disable()
    try:   # a caller's own choice stands
        WorkerPool(1, SETTINGS, 30.0, work=collector_state, lost=lost).run([(0, "a")], on_result)
        assert not gc.isenabled()
    finally:
        gc.enable()
