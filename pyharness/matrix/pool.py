"""Worker processes for the matrix's runs, robust to crashes and hangs.

The parent side: :class:`WorkerPool` forks up to ``size`` workers
(matrix/worker.py), hands them tasks over their pipes and reads their
results. The parent gives each run a wall-clock deadline. A worker that
dies (a crash in Unicorn, an ``os._exit``) or misses the deadline (a hang)
costs that run an ``error`` record saying so; the parent kills it if
needed, starts a fresh worker, and the matrix goes on.

A worker may be sent several tasks ahead (``depth``) and may answer with
several results at once (``batch``): the parent, which shares the cores
with the workers, then wakes once for a handful of runs instead of once a
run. A worker sends what it holds when it has ``batch`` results, when a
result is older than HOLD_S or when it has nothing left to run. Which
task a worker is running, and since when, is in a small array shared with
the parent, so that a crash or a hang is charged to the run that had it
even while results of earlier runs were held (those, lost with the
worker, go back to the queue with the tasks it had not started).

The pool is not tied to runs: ``WorkerPool(..., work=, lost=)`` runs any
picklable task with a function of the worker's (``pyharness mutate`` builds
a mutant there before its run), and :meth:`WorkerPool.run_from` takes its
tasks from a callable as workers free up, so that the caller can decide
the next task from the results so far.
"""

from __future__ import annotations

import contextlib
import gc
import multiprocessing
import os
import selectors
import signal
import time
from collections import deque
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any, Callable, Iterable, Iterator, Protocol

from pyharness.errors import HarnessError
from pyharness.matrix.worker import (STARTED, STARTED_AT, Work, WorkerSettings, execute_spec,
                                     worker_main)
from pyharness.run.record import RunRecord, error_record

# Called with each run's index in the task list and its record.
RecordCallback = Callable[[int, RunRecord], None]
# In the parent: the result of a task whose worker died or hung, from the
# task and what happened.
Lost = Callable[[Any, str], Any]
# The next (index, task) to hand to the free worker in a slot (0 .. size-1;
# a worker that replaces a lost one takes its slot), or None for none now.
NextTask = Callable[[int], "tuple[int, Any] | None"]


class TaskQueue(Protocol):
    """Tasks handed out by worker slot (matrix/schedule.py's lanes)."""

    def take(self, slot: int) -> tuple[int, Any] | None: ...

    def __len__(self) -> int: ...


# Asked after each record: True stops the pool (the runs in flight are dropped).
StopCheck = Callable[[], bool]


@dataclass(frozen=True)
class PoolStats:
    """What the pool saw besides the records."""

    workers_started: int
    workers_lost: int
    peak_worker_rss_kb: int
    not_run: int = 0          # runs dropped because ``stop`` said so



@dataclass(eq=False)
class _Worker:
    process: BaseProcess
    conn: Connection
    slot: int
    progress: Any                # shared with the worker: STARTED, STARTED_AT
    # Sent and not answered yet, in order: the first ones may be done (their
    # results held for a batch), one running, the rest waiting.
    tasks: deque[tuple[int, Any]] = field(default_factory=deque)
    answered: int = 0            # results received, in all
    # Since when it has had tasks and sent nothing (for a worker that has
    # not started the first of them yet).
    waiting_since: float = 0.0

    def started_unanswered(self) -> int:
        """How many of ``tasks`` it has started (the last of them is running)."""
        return min(len(self.tasks), max(0, int(self.progress[STARTED]) - self.answered))


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off in the parent while the pool
    runs, and what the parent holds frozen out of it in the workers it
    forks meanwhile. The parent then allocates little besides the results
    it reads, which hold no cycles: collecting them cost it 15% of its CPU
    (taken from the workers at -j2). A worker's own collections would touch
    every object it inherited, copying those pages. Both are restored on
    the way out; workers turn the collector back on (worker_main)."""
    was_enabled = gc.isenabled()
    freezing = gc.get_freeze_count() == 0   # else the caller freezes: leave it be
    if freezing:
        gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        if freezing:
            gc.unfreeze()
        if was_enabled:
            gc.enable()


# How often the parent looks at its workers' memory (s), and the most a
# worker may hold: a runaway allocation in a run (a hook building a list
# from a broken firmware's registers once took a worker to 24 GB in a
# minute, and the kernel's OOM killer chose) costs that run, not the machine.
MEMORY_CHECK_S = 0.5
MAX_WORKER_BYTES = 4 << 30


def default_memory_limit(workers: int) -> int:
    """MAX_WORKER_BYTES, or less where the machine's memory shared among the
    workers and the parent is less."""
    try:
        physical = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return MAX_WORKER_BYTES
    return max(256 << 20, min(MAX_WORKER_BYTES, physical // (workers + 1)))


def resident_bytes(pid: int) -> int | None:
    """A process's resident memory (Linux /proc), None where unknown."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def _context() -> multiprocessing.context.BaseContext:
    # fork: a worker starts in milliseconds with the harness already imported.
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn")


class WorkerPool:
    """Up to ``size`` worker processes running the given tasks to completion:
    by default runs (RunSpec -> RunRecord)."""

    def __init__(self, size: int, settings: WorkerSettings, kill_after_s: float,
                 work: Work = execute_spec, lost: Lost = error_record, *,
                 depth: int = 1, batch: int = 1, memory_limit: int | None = None) -> None:
        """``depth``: tasks sent to a worker ahead of its answers. Above 1 a
        worker starts its next task without waiting for the parent (which
        shares the cores) to read a result and send more; a task sent ahead
        to a worker that dies goes back to the queue. ``batch``: the most
        results a worker holds before it sends them (at most ``depth``;
        below it, so that a worker that answers still has tasks to run).
        ``memory_limit``: the resident bytes past which a worker is killed
        and its task lost (default: :func:`default_memory_limit`)."""
        if size < 1:
            raise HarnessError(f"-j {size}: the number of workers must be at least 1")
        self.size = size
        self.depth = max(1, depth)
        self.batch = min(max(1, batch), self.depth)
        self._retry: deque[tuple[int, Any]] = deque()
        # Every worker's pipe and process sentinel, registered once (wait()
        # would build a selector for every result).
        self._selector = selectors.DefaultSelector()
        self.settings = settings
        self.kill_after_s = kill_after_s
        self.work = work
        self.lost = lost
        self._context = _context()
        self._workers: list[_Worker] = []
        self._started = 0
        self._lost = 0
        self._peak_rss_kb = 0
        self.memory_limit = memory_limit or default_memory_limit(size)
        self._next_memory_check = 0.0

    def run(self, tasks: Iterable[tuple[int, Any]] | TaskQueue,
            on_record: RecordCallback, stop: StopCheck | None = None) -> PoolStats:
        """Run every (index, spec), in that order (or as a :class:`TaskQueue`
        hands them to each worker slot); ``on_record`` gets each result.

        When ``stop()`` turns true the pool starts nothing more, kills the
        workers still running a run and returns; those runs have no record.
        """
        pending: TaskQueue | deque = tasks if hasattr(tasks, "take") else deque(tasks)

        def next_task(slot: int) -> tuple[int, Any] | None:
            if isinstance(pending, deque):
                return pending.popleft() if pending else None
            return pending.take(slot)
        stats = self.run_from(next_task, on_record, stop)
        # Stopped early, the runs never started count too (none are left otherwise).
        return PoolStats(stats.workers_started, stats.workers_lost, stats.peak_worker_rss_kb,
                         stats.not_run + len(pending) + len(self._retry))

    def run_from(self, next_task: NextTask, on_result: Callable[[int, Any], None],
                 stop: StopCheck | None = None) -> PoolStats:
        """Run tasks from ``next_task(slot)`` until it has none and no worker is
        busy; ``on_result`` gets each result (it may change what
        ``next_task`` returns next). ``stop`` as in :meth:`run`; the
        returned ``not_run`` then counts the tasks dropped in flight."""
        not_run = 0
        with _collector_paused():
            try:
                while True:
                    if stop is not None and stop():
                        busy = self._busy()
                        not_run = sum(len(w.tasks) for w in busy)
                        for worker in busy:
                            self._stop(worker)
                        break
                    self._fill(next_task)
                    if not self._busy():
                        break
                    self._collect(on_result)
            except BaseException:  # Ctrl-C, or a bug here: stop the workers now
                for worker in list(self._workers):
                    self._stop(worker)
                raise
        self._shutdown()
        return PoolStats(self._started, self._lost, self._peak_rss_kb, not_run)

    # Workers

    def _start_worker(self, slot: int) -> _Worker:
        parent_end, child_end = self._context.Pipe(duplex=True)
        inherited = [parent_end] + [w.conn for w in self._workers]
        progress = self._context.RawArray("d", 2)
        process = self._context.Process(target=worker_main,
                                        args=(child_end, self.settings, self.work, os.getpid(),
                                              inherited, progress, self.batch),
                                        name=f"pyharness-worker-{self._started}",
                                        daemon=True)
        process.start()
        child_end.close()
        self._started += 1
        worker = _Worker(process, parent_end, slot, progress)
        self._workers.append(worker)
        self._selector.register(parent_end, selectors.EVENT_READ, worker)
        self._selector.register(process.sentinel, selectors.EVENT_READ, worker)
        return worker

    def _busy(self) -> list[_Worker]:
        return [w for w in self._workers if w.tasks]

    def _fill(self, next_task: NextTask) -> None:
        """A task to every idle worker and to a new worker in every free
        slot, then more to each, up to ``depth``; each worker's in one
        message."""
        sending: dict[_Worker, list[tuple[int, Any]]] = {}

        def queued(worker: _Worker) -> int:
            return len(worker.tasks) + len(sending.get(worker, ()))
        try:
            for want in range(1, self.depth + 1):
                for worker in [w for w in self._workers if queued(w) < want]:
                    item = self._next(next_task, worker.slot)
                    if item is None:
                        return
                    sending.setdefault(worker, []).append(item)
                if want > 1:
                    continue
                free = sorted(set(range(self.size)) - {w.slot for w in self._workers},
                              reverse=True)
                while free:
                    item = self._next(next_task, free[-1])
                    if item is None:
                        return
                    sending[self._start_worker(free.pop())] = [item]
        finally:
            for worker, items in sending.items():
                self._send(worker, items)

    def _next(self, next_task: NextTask, slot: int) -> tuple[int, Any] | None:
        return self._retry.popleft() if self._retry else next_task(slot)

    def _send(self, worker: _Worker, items: list[tuple[int, Any]]) -> None:
        if not worker.tasks:
            worker.waiting_since = time.monotonic()
        worker.tasks.extend(items)
        try:
            worker.conn.send([task for _, task in items])
        except OSError:
            pass  # it died: _collect sees its sentinel (or EOF) and replaces it

    def _deadline(self, worker: _Worker) -> float:
        """When the task it is running (or, none started yet, the first it
        was sent) is out of time."""
        if worker.started_unanswered():
            return worker.progress[STARTED_AT] + self.kill_after_s
        return worker.waiting_since + self.kill_after_s

    def _collect(self, on_record: RecordCallback) -> None:
        busy = self._busy()
        if not busy:
            return
        wake = min(min(self._deadline(w) for w in busy), self._next_memory_check)
        ready = {key.data for key, _ in self._selector.select(max(0.0, wake - time.monotonic()))}
        now = time.monotonic()
        for worker in ready:
            if not worker.tasks and not worker.process.is_alive():
                self._stop(worker)   # died idle: _fill starts another in its slot
        oversized = self._oversized(busy, now)
        for worker in busy:
            if worker in ready:
                self._receive(worker, on_record)
            elif now >= self._deadline(worker):
                self._lose(worker, on_record,
                           f"no result within {self.kill_after_s:g} s: the worker "
                           "was killed (a hang in the emulator or the harness)")
            elif worker in oversized:
                self._lose(worker, on_record,
                           f"the worker held {oversized[worker] >> 20} MiB, past the "
                           f"{self.memory_limit >> 20} MiB a worker may: it was killed "
                           "(a runaway allocation in the run)")

    def _oversized(self, busy: list[_Worker], now: float) -> dict[_Worker, int]:
        """The busy workers past the memory limit (looked at every
        MEMORY_CHECK_S), with their resident bytes."""
        if now < self._next_memory_check:
            return {}
        self._next_memory_check = now + MEMORY_CHECK_S
        sizes = {w: resident_bytes(w.process.pid or 0) or 0 for w in busy}
        return {w: size for w, size in sizes.items() if size > self.memory_limit}

    def _receive(self, worker: _Worker, on_record: RecordCallback) -> None:
        assert worker.tasks
        try:
            # Readable, or its process ended: a dead worker's pipe has no
            # other writer, so recv() then reads what it sent or EOF.
            results, rss_kb = worker.conn.recv()
            if not isinstance(results, list) or not 0 < len(results) <= len(worker.tasks):
                raise ValueError(f"{type(results).__name__} of results, "
                                 f"{len(worker.tasks)} tasks sent")
        except (EOFError, OSError):
            worker.process.join(timeout=5)
            code = worker.process.exitcode
            self._lose(worker, on_record, f"the worker process died ({_describe_exit(code)}) "
                                          "during this run")
            return
        except Exception as err:  # a garbled message: that run's problem, not the matrix's
            self._lose(worker, on_record, f"unreadable result from the worker: "
                                          f"{type(err).__name__}: {err}")
            return
        worker.waiting_since = time.monotonic()
        self._peak_rss_kb = max(self._peak_rss_kb, rss_kb)
        for result in results:
            index, _ = worker.tasks.popleft()
            worker.answered += 1
            on_record(index, result)

    def _lose(self, worker: _Worker, on_record: RecordCallback,
              reason: str) -> None:
        """Record the worker's run as an error and get rid of the worker:
        the run it was in (by the shared progress; the first it was sent if
        it had started none). The others it was sent go back to the queue:
        the ones it had not started, and the ones whose results it held."""
        assert worker.tasks
        self._stop(worker)   # first: a hung worker must not start another task meanwhile
        tasks = list(worker.tasks)
        culprit = max(0, worker.started_unanswered() - 1)
        index, task = tasks.pop(culprit)
        self._retry.extendleft(reversed(tasks))
        worker.tasks.clear()
        self._lost += 1
        on_record(index, self.lost(task, reason))

    def _stop(self, worker: _Worker) -> None:
        for fileobj in (worker.conn, worker.process.sentinel):
            try:
                self._selector.unregister(fileobj)
            except (KeyError, ValueError):
                pass
        if worker.process.is_alive():
            worker.process.kill()
        worker.process.join(timeout=5)
        worker.conn.close()
        self._workers.remove(worker)

    def _shutdown(self) -> None:
        for worker in self._workers:
            try:
                worker.conn.send(None)
            except OSError:
                pass
        deadline = time.monotonic() + 5
        for worker in list(self._workers):
            worker.process.join(timeout=max(0.0, deadline - time.monotonic()))
            self._stop(worker)


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "exit status unknown"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"
