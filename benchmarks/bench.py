"""Matrix benchmark: builds, per-run cost, parallel speed-up, worker memory.

    .venv/bin/python benchmarks/bench.py [--configs PATTERN...] [--scenarios ...]

Prints, for the default matrix (or the narrowed one):

- cold build time per configuration (into a fresh temporary --out dir);
- warm per-run wall time (run_one with the image built and loaded),
  median, p95 and max, measured in this process, one run at a time (and
  the CPU time of the same runs, the steadier figure on a loaded machine);
- observer overhead: Machine.run() of every run with all observers on
  (block hook, oracle code hooks, bounds watches) against the bare
  platform (TLB fill, MMIO console, exception entry), medians in this
  process, and the same for the longest run; CPU time, then wall. Runs
  that inject a fault are left out (without the oracle's hook the bare
  platform runs their base scenario, uncorrupted: other work);
- native hooks against the Python fallback (PYHARNESS_NATIVE=0), and a
  reused Unicorn instance per image (the default) against a fresh one
  per run (PYHARNESS_REUSE=0);
- runs per second through the worker pool at -j1 and -j2, and the speed-up:
  the matrix's run phase in a fresh process as a user starts it (this
  process's heap, forked into workers and collected by its GC, would
  weigh on -j2, whose parent shares the cores with both workers), -j1,
  -j2, -j1, -j2, ...: POOL_ROUNDS of each, interleaved so that a drift in
  the machine's speed hits both alike; each is printed, and the fastest
  of each is compared;
- the default matrix end to end, warm (builds cached), at -j<cores>, in
  a fresh process as a user starts it (and with --all-matrix, `matrix
  --all` the same way);
- peak resident memory per worker of that matrix (each worker's own
  ru_maxrss: in a fresh process, not the pages a fork inherits from this
  one's in-process runs).

and checks them against the targets for a 2-core machine. Exit 1 when a
target is missed. Timings vary with the machine's load: run it alone.

The CPU a pool's workers used is printed beside its rate. A worker should
use one core: the machine enforces its wall-clock budget from its block
hook, because emu_start's own timeout starts a thread per call that polls
every 2 us (a sixth of a core per worker, which cost the -j2 speed-up).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from pyharness.builder import cache as builder
from pyharness.judge.corruption import find_fault
from pyharness.matrix import Selection, plan
from pyharness.matrix.worker import WorkerSettings, execute_spec
from pyharness.platform import instance, native
from pyharness.run.runner import RunRequest
from pyharness.run.spec import RunSpec

from profile_parts import BARE, machine_run_spans, switched_off

# Issue 16, "performance near the emulator's floor" (warm, in process).
TARGET_MEDIAN_MS = 5.0
TARGET_P95_MS = 40.0
TARGET_MAX_MS = 150.0
TARGET_OVERHEAD = 1.5
TARGET_SPEEDUP = 1.9
TARGET_MATRIX_S = 3.0
TARGET_ALL_S = 120.0
TARGET_WORKER_MB = 150.0

# The matrix as a user starts it: a fresh process, so that a worker's peak
# memory is its own and not the pages it inherits from this one's runs.
FRESH_MATRIX = """
import json, resource, sys, time
from pyharness.matrix import Selection, plan, run_matrix
args = json.loads(sys.argv[1])
specs = plan(Selection(configs=tuple(args["configs"]), scenarios=tuple(args["scenarios"]),
                       all_configs=args["all"])).specs
started = time.monotonic()
result = run_matrix(specs, jobs=args["jobs"])
children = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"seconds": time.monotonic() - started, "runs": len(specs),
                  "peak_kb": result.peak_worker_rss_kb, "failed": len(result.failures),
                  "builds": result.build_seconds, "run_seconds": result.run_seconds,
                  "worker_cpu_s": children.ru_utime + children.ru_stime}))
"""


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


@dataclass(frozen=True)
class RunTime:
    spec: RunSpec
    wall_ms: float        # the whole run_one
    cpu_ms: float         # the process's CPU time over the same span
    run_ms: float         # Machine.run(): emulation (wall)
    run_cpu_ms: float     # Machine.run(): emulation (CPU)
    instructions: int


def warm_runs(specs: list[RunSpec], *, quiet: bool = False) -> list[RunTime]:
    """Each run in this process, one at a time, after one warm-up run per
    configuration (images built and loaded, the oracle's scan cached)."""
    # As in a matrix worker: the parent's builds handed over, no lookup per run.
    builds = {(s.config, s.kernel_src): builder.build(s.config, kernel_src=s.kernel_src)
              for s in specs}
    settings = WorkerSettings(out_dir=None, builds=builds)
    warmed: set[str] = set()
    for spec in specs:
        if spec.config not in warmed:
            execute_spec(spec, settings)
            warmed.add(spec.config)
    times = []
    for spec in specs:
        with machine_run_spans() as spans:
            started, cpu = time.perf_counter(), time.process_time()
            record = execute_spec(spec, settings)
            wall_ms, cpu_ms = (time.perf_counter() - started) * 1000, \
                (time.process_time() - cpu) * 1000
        run_wall, run_cpu = spans[0] if spans else (0.0, 0.0)
        times.append(RunTime(spec, wall_ms, cpu_ms, run_wall, run_cpu, record.instructions))
        if not record.passed and not quiet:
            print(f"  note: {spec.id} did not pass: {record.reasons[:1]}")
    return times


def spread(values: list[float]) -> str:
    return (f"median {statistics.median(values):.1f} ms, p95 {percentile(values, 0.95):.1f} ms, "
            f"max {max(values):.1f} ms")


@contextlib.contextmanager
def environment(**values: str) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def longest_run_ms(spec: RunSpec, repeat: int = 3) -> tuple[float, float]:
    """Median Machine.run() (wall, CPU) ms of one run, repeated in this process."""
    from pyharness.run.runner import run_one
    request = RunRequest.from_spec(spec)   # the spec's own (default) budgets
    run_one(request)
    with machine_run_spans() as spans:
        for _ in range(repeat):
            run_one(request)
    return (statistics.median(s[0] for s in spans), statistics.median(s[1] for s in spans))


def fresh_matrix(configs: tuple[str, ...], scenarios: tuple[str, ...], jobs: int,
                 all_configs: bool = False) -> dict:
    """The matrix run in a new Python process (imports included), warm builds."""
    import json
    import subprocess
    args = json.dumps({"configs": list(configs), "scenarios": list(scenarios), "jobs": jobs,
                       "all": all_configs})
    out = subprocess.run([sys.executable, "-c", FRESH_MATRIX, args], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.splitlines()[-1])


def observer_overhead(specs: list[RunSpec], full: list[RunTime]) -> float:
    """All observers on (the warm runs' Machine.run()) against the bare
    platform: no block hook, code hook or watch. Runs that inject a fault
    are left out: bare, they run their base scenario uncorrupted."""
    same = [spec for spec in specs if find_fault(spec.scenario) is None]
    full = [t for t in full if find_fault(t.spec.scenario) is None]
    with switched_off(BARE):
        bare = warm_runs(same, quiet=True)
    longest = max(full, key=lambda t: t.instructions).spec
    full_max = longest_run_ms(longest)
    with switched_off(BARE):
        bare_max = longest_run_ms(longest)
    med = statistics.median
    for i, what in ((1, "CPU time"), (0, "wall")):
        median_full = med(t.run_cpu_ms if i else t.run_ms for t in full)
        median_bare = med(t.run_cpu_ms if i else t.run_ms for t in bare)
        label = "observer overhead:" if i else "observer overhead (wall):"
        print(f"{label} median {median_full / median_bare:.2f}x, "
              f"max-run {full_max[i] / bare_max[i]:.2f}x  ({what} of Machine.run(), "
              f"{len(full)} runs without an injected fault: medians {median_full:.2f} vs "
              f"{median_bare:.2f} ms bare; {longest.id}: {full_max[i]:.1f} vs "
              f"{bare_max[i]:.1f} ms bare)")
    return max(med(t.run_cpu_ms for t in full) / med(t.run_cpu_ms for t in bare),
               full_max[1] / bare_max[1])


def native_vs_fallback(specs: list[RunSpec], native_times: list[RunTime]) -> None:
    if native.unavailable_reason() is not None:
        print(f"native hooks vs Python fallback: no native hooks ({native.unavailable_reason()})")
        return
    with environment(**{native.ENV_SWITCH: "0"}):
        python_times = warm_runs(specs, quiet=True)
        longest = max(native_times, key=lambda t: t.instructions).spec
        python_max = longest_run_ms(longest)
    native_max = longest_run_ms(longest)
    for i, what, field in ((0, "wall", "wall_ms"), (1, "CPU", "cpu_ms")):
        nat = statistics.median(getattr(t, field) for t in native_times)
        py = statistics.median(getattr(t, field) for t in python_times)
        nat_all = sum(getattr(t, field) for t in native_times) / 1e3
        py_all = sum(getattr(t, field) for t in python_times) / 1e3
        print(f"native hooks vs Python fallback ({what}): per-run median {nat:.1f} vs "
              f"{py:.1f} ms ({py / nat:.2f}x), max-run {native_max[i]:.1f} vs "
              f"{python_max[i]:.1f} ms ({python_max[i] / native_max[i]:.2f}x, Machine.run() "
              f"of {longest.id}); all runs {nat_all:.1f} vs {py_all:.1f} s")


def reuse_on_and_off(specs: list[RunSpec]) -> None:
    rows = []
    for value in ("0", "1"):
        with environment(PYHARNESS_REUSE=value):
            times = warm_runs(specs, quiet=True)
        rows.append((value, times))
    # The pool's instances would be in every worker forked below (their
    # resident pages counted in each worker's peak).
    instance.clear_pool()
    gc.collect()
    for value, times in rows:
        what = "one Unicorn instance per image (default)" if value == "1" else \
            "a fresh Unicorn instance per run (PYHARNESS_REUSE=0)"
        print(f"  {what:<52} wall {spread([t.wall_ms for t in times])}; "
              f"CPU median {statistics.median(t.cpu_ms for t in times):.1f} ms")


POOL_ROUNDS = 3   # interleaved rounds of the pool at -j1 and -j2




def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", nargs="+", default=())
    parser.add_argument("--scenarios", nargs="+", default=())
    parser.add_argument("--skip-cold", action="store_true", help="skip the cold builds")
    parser.add_argument("--all-matrix", action="store_true",
                        help="also time `matrix --all` (warm; the first pass builds 168 "
                             "configurations)")
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

    reuse = os.environ.get("PYHARNESS_REUSE", "1") != "0"
    print(f"\nhooks: {native.backend()}; Unicorn instances: "
          f"{'one per image' if reuse else 'a fresh one per run (PYHARNESS_REUSE=0)'}")
    runs = warm_runs(specs)
    times, cpus = [t.wall_ms for t in runs], [t.cpu_ms for t in runs]
    median, p95, slowest = statistics.median(times), percentile(times, 0.95), max(times)
    cpu_median, cpu_p95, cpu_max = statistics.median(cpus), percentile(cpus, 0.95), max(cpus)
    print(f"warm per run (in process, one at a time): {spread(times)} over {len(times)} runs")
    print(f"  CPU time of the same runs: {spread(cpus)} "
          f"(slowest: {max(runs, key=lambda t: t.cpu_ms).spec.id})")
    overhead = observer_overhead(specs, runs)
    native_vs_fallback(specs, runs)
    print("warm per run, Unicorn instance reuse:")
    reuse_on_and_off(specs)

    selected = (tuple(args.configs), tuple(args.scenarios))
    rounds: dict[int, list[dict]] = {1: [], 2: []}
    for _ in range(POOL_ROUNDS):
        for jobs in (1, 2):
            rounds[jobs].append(fresh_matrix(*selected, jobs))
    for jobs, samples in rounds.items():
        for sample in samples:
            seconds, cpu = sample["run_seconds"], sample["worker_cpu_s"]
            print(f"pool -j{jobs}: {sample['runs'] / seconds:6.1f} runs/s ({seconds:.2f} s); "
                  f"workers used {cpu:.1f} CPU-s = {cpu / seconds:.2f} cores")
    one, two = (min(s["run_seconds"] for s in rounds[jobs]) for jobs in (1, 2))
    speedup = one / two
    print(f"speed-up -j2/-j1: {speedup:.2f}x (the fastest of {POOL_ROUNDS} rounds each)")

    fresh_matrix(*selected, cores)          # its builds cached, its imports warm
    full = fresh_matrix(*selected, cores)
    whole_s = full["seconds"]
    print(f"matrix warm, -j{cores}, in a fresh process: {whole_s:.2f} s for "
          f"{full['runs']} runs (builds {full['builds']:.2f} s)")
    peak_mb = full["peak_kb"] / 1024
    print(f"peak memory per worker: {peak_mb:.0f} MB (ru_maxrss of that matrix's workers)")
    every = None
    if args.all_matrix:
        fresh_matrix((), (), cores, all_configs=True)     # builds the 168, cached after
        every = fresh_matrix((), (), cores, all_configs=True)
        print(f"matrix --all warm, -j{cores}: {every['seconds']:.1f} s for {every['runs']} runs")

    failed = sum(s["failed"] for samples in rounds.values() for s in samples) + \
        full["failed"] + \
        (every["failed"] if every else 0)
    checks = [
        Check("warm per-run median", f"{median:.1f} ms (CPU {cpu_median:.1f})",
              f"<= {TARGET_MEDIAN_MS:g} ms", median <= TARGET_MEDIAN_MS),
        Check("warm per-run p95", f"{p95:.1f} ms (CPU {cpu_p95:.1f})",
              f"<= {TARGET_P95_MS:g} ms", p95 <= TARGET_P95_MS),
        Check("warm per-run max", f"{slowest:.1f} ms (CPU {cpu_max:.1f})",
              f"<= {TARGET_MAX_MS:g} ms", slowest <= TARGET_MAX_MS),
        Check("observer overhead", f"{overhead:.2f}x", f"<= {TARGET_OVERHEAD}x",
              overhead <= TARGET_OVERHEAD),
        Check("speed-up -j2 / -j1", f"{speedup:.2f}x", f">= {TARGET_SPEEDUP}x",
              speedup >= TARGET_SPEEDUP or cores < 2),
        Check("default matrix warm", f"{whole_s:.1f} s", f"<= {TARGET_MATRIX_S:g} s",
              whole_s <= TARGET_MATRIX_S),
        Check("matrix --all warm",
              f"{every['seconds']:.1f} s" if every else "not run (--all-matrix)",
              f"<= {TARGET_ALL_S:g} s", every is not None and every["seconds"] <= TARGET_ALL_S),
        Check("peak memory per worker", f"{peak_mb:.0f} MB", f"<= {TARGET_WORKER_MB:g} MB",
              peak_mb <= TARGET_WORKER_MB),
        Check("runs that did not pass", str(failed), "0", failed == 0),
    ]
    print("\ntargets (2 cores):")
    for check in checks:
        print(f"  {'ok  ' if check.met else 'MISS'} {check.what:<24} {check.value:>22}  "
              f"(target {check.target})")
    return 0 if all(c.met for c in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
