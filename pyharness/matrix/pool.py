"""Worker processes for the matrix's runs, robust to crashes and hangs.

Each worker is a forked process that takes one run at a time over its own
pipe, calls :func:`~pyharness.run.runner.run_one` and sends the record back.
A worker never outlives the parent: it closes the parent's pipe ends it
inherited (so the parent's death is an EOF) and asks Linux for a SIGKILL
when the parent dies (for a worker busy in a run). Linux sends that signal
when the parent *thread* that forked the worker ends, so a pool must run in
a thread that lives as long as it does (the CLI's main thread).
The parent gives each run a wall-clock deadline. A worker that dies (a
crash in Unicorn, an ``os._exit``) or misses the deadline (a hang) costs
that run an ``error`` record saying so; the parent kills it if needed,
starts a fresh worker, and the matrix goes on.

The pool is not tied to runs: ``WorkerPool(..., work=, lost=)`` runs any
picklable task with a function of the worker's (``pyharness mutate`` builds
a mutant there before its run), and :meth:`WorkerPool.run_from` takes its
tasks from a callable as workers free up, so that the caller can decide
the next task from the results so far.

For tests only, ``$PYHARNESS_MATRIX_FAULTS`` makes a worker misbehave on
chosen runs: a comma-separated list of ``ACTION:RUN_ID`` where ACTION is
``crash`` (the worker exits at once, as a segfault would end it), ``hang``
(it sleeps forever) or ``raise`` (run_one's place raises an unexpected
exception). The parent reads it and hands it to the workers.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import resource
import selectors
import signal
import time
import traceback
from collections import deque
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Protocol

from pyharness.builder.cache import BuildResult
from pyharness.errors import HarnessError
from pyharness.run.spec import RunSpec
from pyharness.run.runner import RunRequest, run_one
from pyharness.run.record import RunRecord, error_record

FAULTS_ENV = "PYHARNESS_MATRIX_FAULTS"
FAULT_ACTIONS = ("crash", "hang", "raise")
CRASH_EXIT_CODE = 86

# Called with each run's index in the task list and its record.
RecordCallback = Callable[[int, RunRecord], None]
# In a worker: a task -> its (picklable) result. In the parent: the result
# of a task whose worker died or hung, from the task and what happened.
Work = Callable[[Any, "WorkerSettings"], Any]
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


def parse_faults(text: str | None) -> dict[str, str]:
    """``crash:ID,hang:ID`` -> {run id: action}; bad text is bad input."""
    faults: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in (text or "").split(","))):
        action, _, run_id = item.partition(":")
        if action not in FAULT_ACTIONS or not run_id:
            raise HarnessError(f"{FAULTS_ENV}: {item!r} is not ACTION:RUN_ID with ACTION "
                               f"one of {', '.join(FAULT_ACTIONS)}")
        faults[run_id] = action
    return faults


def faults_from_environment() -> dict[str, str]:
    return parse_faults(os.environ.get(FAULTS_ENV))


@dataclass(frozen=True)
class WorkerSettings:
    """What every run in a worker shares. ``builds``: the images the parent
    built (or found cached) for this matrix, by (config, kernel_src): a run
    of one of them uses that build as is, without looking it up again."""

    out_dir: Path | str | None
    faults: Mapping[str, str] = field(default_factory=dict)
    builds: Mapping[tuple[str, str | None], BuildResult] = field(default_factory=dict)


@dataclass(frozen=True)
class PoolStats:
    """What the pool saw besides the records."""

    workers_started: int
    workers_lost: int
    peak_worker_rss_kb: int
    not_run: int = 0          # runs dropped because ``stop`` said so


def _max_rss_kb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


def _inject_fault(action: str | None) -> None:
    if action == "crash":
        os._exit(CRASH_EXIT_CODE)
    if action == "hang":
        while True:
            time.sleep(3600)
    if action == "raise":
        raise RuntimeError("fault injected by " + FAULTS_ENV)


def execute_spec(spec: RunSpec, settings: WorkerSettings) -> RunRecord:
    """One run in this process; never raises for a problem of that run."""
    try:
        _inject_fault(settings.faults.get(spec.id))
        built = settings.builds.get((spec.config, spec.kernel_src))
        return run_one(RunRequest.from_spec(spec, out_dir=settings.out_dir, built=built))
    except HarnessError as err:
        return error_record(spec, str(err))
    except Exception as err:  # a harness bug costs this run, not the matrix
        record = error_record(spec, f"internal error: {type(err).__name__}: {err}")
        record.console = traceback.format_exc().splitlines()
        return record


PR_SET_PDEATHSIG = 1


def _die_with_parent(parent_pid: int) -> None:
    """Ask Linux to SIGKILL this process when its parent dies (prctl
    PR_SET_PDEATHSIG), so a worker busy in a run does not outlive a killed
    matrix; elsewhere the closed pipe ends are the only line."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent_pid:   # the parent died before the prctl
        os._exit(0)


def _worker_main(conn: Connection, settings: WorkerSettings, work: Work, parent_pid: int,
                 inherited: list[Connection]) -> None:
    # The parent's ends of this worker's pipe and of every other worker's
    # came with the fork: closed, the parent's death is an EOF on ``conn``.
    for other in inherited:
        other.close()
    _die_with_parent(parent_pid)
    # Ctrl-C reaches the whole process group: the parent decides what stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        conn.send((work(task, settings), _max_rss_kb()))


@dataclass(eq=False)
class _Worker:
    process: BaseProcess
    conn: Connection
    slot: int
    # Sent and not answered yet, in order: the first is running; its
    # deadline is ``deadline``.
    tasks: deque[tuple[int, Any]] = field(default_factory=deque)
    deadline: float = 0.0


def _context() -> multiprocessing.context.BaseContext:
    # fork: a worker starts in milliseconds with the harness already imported.
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn")


class WorkerPool:
    """Up to ``size`` worker processes running the given tasks to completion:
    by default runs (RunSpec -> RunRecord)."""

    def __init__(self, size: int, settings: WorkerSettings, kill_after_s: float,
                 work: Work = execute_spec, lost: Lost = error_record, *,
                 depth: int = 1) -> None:
        """``depth``: tasks sent to a worker ahead of its answers. Above 1 a
        worker starts its next task without waiting for the parent (which
        shares the cores) to read a result and send more; a task sent ahead
        to a worker that dies goes back to the queue."""
        if size < 1:
            raise HarnessError(f"-j {size}: the number of workers must be at least 1")
        self.size = size
        self.depth = max(1, depth)
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
        process = self._context.Process(target=_worker_main,
                                        args=(child_end, self.settings, self.work, os.getpid(),
                                              inherited),
                                        name=f"pyharness-worker-{self._started}",
                                        daemon=True)
        process.start()
        child_end.close()
        self._started += 1
        worker = _Worker(process, parent_end, slot)
        self._workers.append(worker)
        self._selector.register(parent_end, selectors.EVENT_READ, worker)
        self._selector.register(process.sentinel, selectors.EVENT_READ, worker)
        return worker

    def _busy(self) -> list[_Worker]:
        return [w for w in self._workers if w.tasks]

    def _fill(self, next_task: NextTask) -> None:
        """A task to every idle worker and to a new worker in every free
        slot, then more to each, up to ``depth``."""
        for want in range(1, self.depth + 1):
            for worker in [w for w in self._workers if len(w.tasks) < want]:
                item = self._next(next_task, worker.slot)
                if item is None:
                    return
                self._send(worker, item)
            if want > 1:
                continue
            free = sorted(set(range(self.size)) - {w.slot for w in self._workers},
                          reverse=True)
            while free:
                item = self._next(next_task, free[-1])
                if item is None:
                    return
                self._send(self._start_worker(free.pop()), item)

    def _next(self, next_task: NextTask, slot: int) -> tuple[int, Any] | None:
        return self._retry.popleft() if self._retry else next_task(slot)

    def _send(self, worker: _Worker, item: tuple[int, Any]) -> None:
        worker.tasks.append(item)
        if len(worker.tasks) == 1:
            worker.deadline = time.monotonic() + self.kill_after_s
        try:
            worker.conn.send(item[1])
        except OSError:
            pass  # it died while idle: _collect sees its sentinel and replaces it

    def _collect(self, on_record: RecordCallback) -> None:
        busy = self._busy()
        if not busy:
            return
        timeout = max(0.0, min(w.deadline for w in busy) - time.monotonic())
        ready = {key.data for key, _ in self._selector.select(timeout)}
        now = time.monotonic()
        for worker in ready:
            if not worker.tasks and not worker.process.is_alive():
                self._stop(worker)   # died idle: _fill starts another in its slot
        for worker in busy:
            if worker in ready:
                self._receive(worker, on_record)
            elif now >= worker.deadline:
                self._lose(worker, on_record,
                           f"no result within {self.kill_after_s:g} s: the worker "
                           "was killed (a hang in the emulator or the harness)")

    def _receive(self, worker: _Worker, on_record: RecordCallback) -> None:
        assert worker.tasks
        try:
            # Readable, or its process ended: a dead worker's pipe has no
            # other writer, so recv() then reads what it sent or EOF.
            record, rss_kb = worker.conn.recv()
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
        index, _ = worker.tasks.popleft()
        if worker.tasks:   # the next one sent ahead is running from now
            worker.deadline = time.monotonic() + self.kill_after_s
        self._peak_rss_kb = max(self._peak_rss_kb, rss_kb)
        on_record(index, record)

    def _lose(self, worker: _Worker, on_record: RecordCallback,
              reason: str) -> None:
        """Record the worker's run as an error and get rid of the worker; the
        tasks sent to it ahead go back to the queue."""
        assert worker.tasks
        index, task = worker.tasks.popleft()
        self._retry.extendleft(reversed(worker.tasks))
        worker.tasks.clear()
        self._stop(worker)
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
