"""The worker side of the matrix's pool (matrix/pool.py): what runs in a
forked worker process.

A worker takes tasks over its pipe, runs each with the pool's work
function (by default :func:`execute_spec`: a run, with
:func:`~pyharness.run.runner.run_one`) and sends the results back, a few
at a time (:func:`worker_main`). It never outlives the parent: it closes
the parent's pipe ends it inherited (so the parent's death is an EOF) and
asks Linux for a SIGKILL when the parent dies (for a worker busy in a
run). Linux sends that signal when the parent *thread* that forked the
worker ends, so a pool must run in a thread that lives as long as it does
(the CLI's main thread).

For tests only, ``$PYHARNESS_MATRIX_FAULTS`` makes a worker misbehave on
chosen runs: a comma-separated list of ``ACTION:RUN_ID`` where ACTION is
``crash`` (the worker exits at once, as a segfault would end it), ``hang``
(it sleeps forever) or ``raise`` (run_one's place raises an unexpected
exception). The parent reads it and hands it to the workers.
"""

from __future__ import annotations

import ctypes
import gc
import os
import resource
import signal
import time
import traceback
from collections import deque
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Callable, Mapping

from pyharness.builder.cache import BuildResult
from pyharness.builder.kernel_image import KernelImage
from pyharness.matrix.builds import BuildKey
from pyharness.run.qemu_runner import QemuRequest, run_qemu
from pyharness.errors import HarnessError
from pyharness.run.spec import QEMU, RunSpec
from pyharness.run.runner import RunRequest, run_one
from pyharness.run.record import RunRecord, error_record

FAULTS_ENV = "PYHARNESS_MATRIX_FAULTS"
FAULT_ACTIONS = ("crash", "hang", "raise")
CRASH_EXIT_CODE = 86
# The longest a worker keeps a finished task's result for a batch (s).
HOLD_S = 0.02

# A task -> its (picklable) result, in a worker.
Work = Callable[[Any, "WorkerSettings"], Any]


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
    builds: Mapping[BuildKey, BuildResult | KernelImage] = field(default_factory=dict)
    # The parent counts failures (--max-failures): a run that did not pass
    # goes back at once, never held for a batch (see worker_main).
    failures_at_once: bool = False


def max_rss_kb() -> int:
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
        built = settings.builds.get((spec.config, spec.kernel_src, spec.platform))
        if spec.platform == QEMU:
            kernel = built if isinstance(built, KernelImage) else None
            return run_qemu(QemuRequest.from_spec(spec, kernel=kernel))
        lab = built if isinstance(built, BuildResult) else None
        return run_one(RunRequest.from_spec(spec, out_dir=settings.out_dir, built=lab))
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


# The array a worker shares with the parent: how many tasks it has started,
# and when it started the last (time.monotonic(), the same clock in every
# process).
STARTED, STARTED_AT = 0, 1


def worker_main(conn: Connection, settings: WorkerSettings, work: Work, parent_pid: int,
                inherited: list[Connection], progress: Any, batch: int) -> None:
    """A worker's life: lists of tasks in, ``(results, peak RSS in KiB)``
    out, until ``None`` or the parent's end closes. Each task's start is
    counted in ``progress`` (STARTED, STARTED_AT) before it runs; results
    go back once ``batch`` are held, one is HOLD_S old, one is a run that
    did not pass (``settings.failures_at_once``), or nothing more is queued."""
    # The parent's ends of this worker's pipe and of every other worker's
    # came with the fork: closed, the parent's death is an EOF on ``conn``.
    for other in inherited:
        other.close()
    _die_with_parent(parent_pid)
    # Ctrl-C reaches the whole process group: the parent decides what stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    gc.enable()   # the parent pauses its collector while it runs a pool
    queue: deque[Any] = deque()
    held: list[Any] = []
    held_since = 0.0

    def send_held() -> None:
        conn.send((held[:], max_rss_kb()))
        held.clear()

    while True:
        if not queue:
            if held and not conn.poll():
                send_held()      # nothing else to run now: the parent gets what is done
            try:
                message = conn.recv()
            except (EOFError, OSError):
                return
            if message is None:
                return
            queue.extend(message)
            continue
        # The start time first: the parent reads the count, then the time.
        progress[STARTED_AT] = time.monotonic()
        progress[STARTED] += 1
        result = work(queue.popleft(), settings)
        held.append(result)
        if len(held) == 1:
            held_since = time.monotonic()
        if (len(held) >= batch or time.monotonic() - held_since >= HOLD_S
                or settings.failures_at_once and _did_not_pass(result)):
            send_held()


def _did_not_pass(result: Any) -> bool:
    """Sent at once when the parent counts failures: a message then holds
    at most one, so the parent stops within one run per worker of its limit.
    Not otherwise: a matrix where most runs fail would wake the parent, which
    shares the cores, once a run."""
    return isinstance(result, RunRecord) and not result.passed

