"""Where a run's time goes: the same runs with parts of the harness switched off.

    .venv/bin/python benchmarks/profile_parts.py [--config pkvm_64k --scenario stack_overflow
                                                  --mode protected] [--repeat 5]

Runs one scenario (default: the longest of the default matrix that the
bare platform runs the same way, pkvm_64k protected stack_overflow, 8.3M
instructions; the longest of all, fault_packed_stacks on 64K pages, 16.5M,
needs the oracle's hook to inject its records) in this process with:

- everything (the block hook's instruction count, budget and deadline;
  the oracle's frame-setup hooks and its unwind-start hook; the bounds
  watches), with the native hooks and with the Python fallback;
- each part switched off in turn, and all of them (the bare platform:
  TLB fill, MMIO console, exception entry);
- "count all along": the budget kept by emu_start's own instruction
  count from the first instruction (how the harness kept it before the
  block hook did: a callback per instruction);

and prints the median wall and CPU time of ``Machine.run()`` (emulation
only) and of the whole run (build lookup, machine, oracle, check). A
switched-off part changes the verdict (the oracle sees no frames): that is
expected here, only the times matter. (A ``fault_*`` scenario without the
code hooks runs its base scenario uncorrupted: a different run.)
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Iterator

from unicorn import UC_HOOK_BLOCK

from pyharness.platform import native, native_lib
from pyharness.platform.machine import Machine
from pyharness.run.runner import RunRequest, judge, observe

PARTS = ("block", "frames", "watches", "count")
BARE = ("block", "frames", "watches")


@contextlib.contextmanager
def switched_off(parts: tuple[str, ...] = (), *, backend: str | None = None) -> Iterator[None]:
    """Monkeypatch parts of the harness away for the runs inside.

    block: no block hook (no instruction count, budget or deadline);
    frames: no code hooks (the oracle's frame-setup and unwind-start hooks);
    watches: no bounds watches; count: the budget kept by Unicorn's own
    count from the first instruction (``exact`` all along)."""
    saved_env = os.environ.get(native.ENV_SWITCH)
    saved = {}

    def patch(owner: object, name: str, value: object) -> None:
        saved[owner, name] = getattr(owner, name)
        setattr(owner, name, value)

    if backend is not None:
        os.environ[native.ENV_SWITCH] = "1" if backend == "native" else "0"
    if "block" in parts:
        hook_add = native_lib.hook_add

        def without_block(uc, kind, *args, **kwargs):
            return 0 if kind == UC_HOOK_BLOCK else hook_add(uc, kind, *args, **kwargs)
        patch(native_lib, "hook_add", without_block)
    if "frames" in parts:
        patch(Machine, "add_frame_setup_hooks", lambda self, links, space=None: [])
        patch(Machine, "add_code_hook", lambda self, link, callback, space=None: 0)
    if "watches" in parts:
        patch(Machine, "watch_writes", lambda self, pa, size: -1)
        patch(Machine, "watch_reads", lambda self, pa, size: -1)
    if "count" in parts:
        run = Machine.run

        def counted_all_along(self):
            self.add_pre_run(lambda m: setattr(m._hooks, "exact", True))
            return run(self)
        patch(Machine, "run", counted_all_along)
    try:
        yield
    finally:
        for (owner, name), value in saved.items():
            setattr(owner, name, value)
        if backend is not None:
            if saved_env is None:
                os.environ.pop(native.ENV_SWITCH, None)
            else:
                os.environ[native.ENV_SWITCH] = saved_env


@dataclass(frozen=True)
class Timing:
    run_wall_ms: float     # Machine.run(): emulation
    run_cpu_ms: float
    total_wall_ms: float   # the whole run_one
    total_cpu_ms: float
    instructions: int
    verdict: str


@contextlib.contextmanager
def machine_run_spans() -> Iterator[list[tuple[float, float]]]:
    """(wall ms, CPU ms) of each Machine.run() inside, in order. CPU time is
    the process's (a run is single-threaded): on a loaded machine it is the
    steadier figure."""
    spans: list[tuple[float, float]] = []
    run = Machine.run

    def timed_run(self):
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            return run(self)
        finally:
            spans.append(((time.perf_counter() - wall) * 1e3,
                          (time.process_time() - cpu) * 1e3))
    Machine.run = timed_run
    try:
        yield spans
    finally:
        Machine.run = run


def time_run(request: RunRequest, repeat: int) -> Timing:
    """Medians over ``repeat`` runs, after one warm-up run."""
    with machine_run_spans() as spans:
        judge(observe(request))
        spans.clear()
        totals = []
        for _ in range(repeat):
            wall, cpu = time.perf_counter(), time.process_time()
            record = judge(observe(request))
            totals.append(((time.perf_counter() - wall) * 1e3,
                           (time.process_time() - cpu) * 1e3))
    med = statistics.median
    return Timing(med(s[0] for s in spans), med(s[1] for s in spans),
                  med(t[0] for t in totals), med(t[1] for t in totals),
                  record.instructions, record.verdict)


VARIANTS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("everything, native hooks", (), "native"),
    ("everything, Python fallback", (), "python"),
    ("everything, native, count all along", ("count",), "native"),
    ("no block hook", ("block",), "native"),
    ("no frame/code hooks", ("frames",), "native"),
    ("no bounds watches", ("watches",), "native"),
    ("bare platform (none of the three)", BARE, "native"),
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="pkvm_64k")
    parser.add_argument("--scenario", default="stack_overflow")
    parser.add_argument("--mode", default="protected")
    parser.add_argument("--cpu", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    request = RunRequest(config=args.config, scenario=args.scenario, mode=args.mode,
                         cpu=args.cpu)
    if native.unavailable_reason() is not None:
        print(f"note: {native.unavailable_reason()}: the native rows use Python hooks")
    print(f"{args.config} {args.mode} {args.scenario} cpu{args.cpu}, median of {args.repeat} "
          f"in one process; run() = emulation, total = the whole run_one")
    print(f"  {'variant':<38} {'run() wall':>10} {'run() cpu':>10} {'total wall':>11} "
          f"{'total cpu':>10}  instructions")
    for name, parts, backend in VARIANTS:
        with switched_off(parts, backend=backend):
            t = time_run(request, args.repeat)
        print(f"  {name:<38} {t.run_wall_ms:8.1f}ms {t.run_cpu_ms:8.1f}ms "
              f"{t.total_wall_ms:9.1f}ms {t.total_cpu_ms:8.1f}ms  {t.instructions} ({t.verdict})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
