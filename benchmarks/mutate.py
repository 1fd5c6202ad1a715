"""Mutation score of the matrix, and what it costs to measure.

    .venv/bin/python benchmarks/mutate.py [-j N] [--files GLOB...] [--config NAME...]
                                          [--json FILE] [--html FILE] [--all-runs]

Runs ``pyharness mutate`` on the lab's unwinding path (every shipped
configuration unless narrowed), then prints the score line, the wall time
split into baseline and mutants, the build and run effort, and the
survivors. Exit 1 when a mutant survived (as the command). Timings vary
with the machine's load: on a shared machine, note the load average
printed with them.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from pyharness.errors import HarnessError
from pyharness.mutate.html import write_html
from pyharness.mutate.report import extra_lines, to_json, write_json
from pyharness.mutate.session import Options, execute, prepare


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-j", "--jobs", type=int, default=None)
    parser.add_argument("--files", nargs="+", default=())
    parser.add_argument("--config", nargs="+", default=())
    parser.add_argument("--json", type=Path)
    parser.add_argument("--html", type=Path)
    parser.add_argument("--all-runs", action="store_true")
    args = parser.parse_args(argv)
    started = time.monotonic()
    load_before = os.getloadavg()[0]
    try:
        prepared = prepare(Options(files=tuple(args.files), configs=tuple(args.config),
                                   jobs=args.jobs, all_runs=args.all_runs))
        done = []

        def progress(verdict) -> None:  # type: ignore[no-untyped-def]
            done.append(verdict)
            print(f"[{len(done)}/{len(prepared.mutants)}] {verdict.mutant.id} "
                  f"{verdict.verdict}", file=sys.stderr, flush=True)

        result = execute(prepared, on_verdict=progress,
                         on_note=lambda text: print(text, file=sys.stderr, flush=True))
    except HarnessError as err:
        print(f"benchmarks/mutate.py: {err}", file=sys.stderr)
        return err.exit_code
    wall = time.monotonic() - started
    verdicts, counts = result.verdicts, result.counts
    outcomes = [v.outcome for v in verdicts]
    runs = sum(o.runs for o in outcomes)
    skipped = sum(o.skipped for o in outcomes)
    build_s = sum(o.build_seconds for o in outcomes)
    if args.json:
        write_json(args.json, to_json(verdicts, counts, {"wall_seconds": round(wall, 1)}))
    if args.html:
        write_html(args.html, verdicts, counts, "benchmarks/mutate.py", [])
    print(f"configurations: {', '.join(result.configs)} "
          f"({result.runs_per_mutant} baseline runs passing)")
    print(f"runs made on mutants: {runs} (skipped as never reaching the mutated "
          f"function: {skipped}); worker time in builds: {build_s:.0f} s")
    survivors = [v for v in verdicts if v.verdict == "survived"]
    for v in survivors:
        m = v.mutant
        print(f"  survived {m.id} {m.location()} {m.operator}: {m.before}  ->  {m.after}")
    for line in extra_lines(counts):
        print(line)
    print(f"wall time: {wall:.1f} s on {os.cpu_count()} cores at -j{result.jobs} "
          f"(baseline {result.baseline.seconds:.1f} s, mutants {result.mutant_seconds:.1f} s; "
          f"load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after)")
    print(counts.summary_line())
    return counts.exit_code


if __name__ == "__main__":
    sys.exit(main())
