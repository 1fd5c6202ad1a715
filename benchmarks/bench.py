"""Matrix benchmark: builds, per-run cost, parallel speed-up, worker memory.

    .venv/bin/python benchmarks/bench.py [--configs PATTERN...] [--scenarios ...]

Prints, for the default matrix (or the narrowed one):

- cold build time per configuration (into a fresh temporary --out dir);
- warm per-run wall time (run_one with the image built and loaded),
  median and p95, measured in this process, one run at a time;
- runs per second through the worker pool at -j1 and -j2, and the speed-up;
- the default matrix end to end, warm (builds cached), at -j<cores>;
- peak resident memory per worker (each worker's own ru_maxrss).

and checks them against the targets for a 2-core machine. Exit 1 when a
target is missed. Timings vary with the machine's load: run it alone.

The CPU a pool's workers used is printed beside its rate. A worker should
use one core: the machine enforces its wall-clock budget from its block
hook, because emu_start's own timeout starts a thread per call that polls
every 2 us (a sixth of a core per worker, which cost the -j2 speed-up).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from pyharness.build import cache as builder
from pyharness.run.spec import RunSpec
from pyharness.matrix import MatrixResult, Selection, plan, run_matrix
from pyharness.matrix.pool import WorkerSettings, execute_spec
from pyharness.run.runner import DEFAULT_MAX_INSTRUCTIONS, DEFAULT_TIMEOUT_S

TARGET_MEDIAN_MS = 20.0
TARGET_SPEEDUP = 1.7
TARGET_MATRIX_S = 15.0
TARGET_WORKER_MB = 300.0


@dataclass(frozen=True)
class Check:
    what: str
    value: str
    target: str
    met: bool


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def cold_builds(configs: list[str]) -> None:
    print("cold build per configuration (fresh --out, all cores):")
    with tempfile.TemporaryDirectory(prefix="bench-build-") as out:
        for config in configs:
            result = builder.build(config, out_dir=Path(out))
            print(f"  {result.config.name:<12} {result.seconds:6.2f} s")


def warm_runs(specs: list[RunSpec]) -> list[float]:
    """Wall ms of each run in this process, after one warm-up run per configuration."""
    settings = WorkerSettings(out_dir=None, run_timeout_s=DEFAULT_TIMEOUT_S,
                              max_instructions=DEFAULT_MAX_INSTRUCTIONS)
    warmed: set[str] = set()
    for spec in specs:
        if spec.config not in warmed:
            execute_spec(spec, settings)
            warmed.add(spec.config)
    times = []
    for spec in specs:
        started = time.perf_counter()
        record = execute_spec(spec, settings)
        times.append((time.perf_counter() - started) * 1000)
        if not record.passed:
            print(f"  note: {spec.id} did not pass: {record.reasons[:1]}")
    return times


def timed_matrix(specs: list[RunSpec], jobs: int) -> tuple[MatrixResult, float]:
    """The matrix at -j``jobs``, and the CPU seconds its workers used."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = run_matrix(specs, jobs=jobs)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return result, cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", nargs="+", default=())
    parser.add_argument("--scenarios", nargs="+", default=())
    parser.add_argument("--skip-cold", action="store_true", help="skip the cold builds")
    args = parser.parse_args(argv)
    matrix = plan(Selection(configs=tuple(args.configs), scenarios=tuple(args.scenarios)))
    specs = matrix.specs
    configs = list(dict.fromkeys(s.config for s in specs))
    cores = os.cpu_count() or 1
    print(f"{matrix.describe()}; {cores} cores\n")

    if not args.skip_cold:
        cold_builds(configs)
    for config in configs:  # the warm figures below start from cached builds
        builder.build(config)

    times = warm_runs(specs)
    median, p95 = statistics.median(times), percentile(times, 0.95)
    print(f"\nwarm per run (in process, one at a time): median {median:.1f} ms, "
          f"p95 {p95:.1f} ms, max {max(times):.1f} ms over {len(times)} runs")

    one, cpu_one = timed_matrix(specs, 1)
    two, cpu_two = timed_matrix(specs, 2)
    rate_one = len(specs) / one.run_seconds
    rate_two = len(specs) / two.run_seconds
    speedup = rate_two / rate_one
    for jobs, result, rate, cpu in ((1, one, rate_one, cpu_one), (2, two, rate_two, cpu_two)):
        print(f"pool -j{jobs}: {rate:6.1f} runs/s ({result.run_seconds:.2f} s); workers used "
              f"{cpu:.1f} CPU-s = {cpu / result.run_seconds:.2f} cores")
    print(f"speed-up -j2/-j1: {speedup:.2f}x")

    started = time.monotonic()
    full = run_matrix(specs, jobs=cores)
    whole_s = time.monotonic() - started
    print(f"matrix warm, -j{cores}: {whole_s:.2f} s end to end "
          f"(builds {full.build_seconds:.2f} s, runs {full.run_seconds:.2f} s)")
    peak_mb = max(r.peak_worker_rss_kb for r in (one, two, full)) / 1024
    print(f"peak memory per worker: {peak_mb:.0f} MB (ru_maxrss)")

    failed = sum(len(r.failures) for r in (one, two, full))
    checks = [
        Check("warm per-run median", f"{median:.1f} ms", f"<= {TARGET_MEDIAN_MS:g} ms",
              median <= TARGET_MEDIAN_MS),
        Check("speed-up -j2 / -j1", f"{speedup:.2f}x", f">= {TARGET_SPEEDUP}x",
              speedup >= TARGET_SPEEDUP or cores < 2),
        Check("default matrix warm", f"{whole_s:.1f} s", f"<= {TARGET_MATRIX_S:g} s",
              whole_s <= TARGET_MATRIX_S),
        Check("peak memory per worker", f"{peak_mb:.0f} MB", f"<= {TARGET_WORKER_MB:g} MB",
              peak_mb <= TARGET_WORKER_MB),
        Check("runs that did not pass", str(failed), "0", failed == 0),
    ]
    print("\ntargets (2 cores):")
    for check in checks:
        print(f"  {'ok  ' if check.met else 'MISS'} {check.what:<24} {check.value:>10}  "
              f"(target {check.target})")
    return 0 if all(c.met for c in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
