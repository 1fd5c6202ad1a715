"""``pyharness mutate``: how many unwinder bugs does the matrix catch?

Exit 0 when no mutant survived, 1 when one did, 2 for bad input.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pyharness.cli.options import capped_jobs
from pyharness.errors import EXIT_OK, HarnessError
from pyharness.mutate.html import MUTATE_HTML, write_html
from pyharness.mutate.report import MUTATE_JSON, extra_lines, mutant_lines, to_json, write_json
from pyharness.reports.output_guard import Output, check_outputs
from pyharness.mutate.session import Options, Result, execute, prepare
from pyharness.run.spec import DEFAULT_MAX_INSTRUCTIONS, DEFAULT_TIMEOUT_S
from pyharness.terminal import visible


def _options(args: argparse.Namespace) -> Options:
    return Options(configs=tuple(args.config or ()), files=tuple(args.files or ()),
                   only=tuple(args.only or ()), scenarios=tuple(args.scenarios or ()),
                   modes=tuple(args.modes or ()), kernel_src=args.kernel_src,
                   all_runs=args.all_runs,
                   equivalents=args.equivalents, jobs=args.jobs, out_dir=args.out,
                   seed=args.seed, timeout_s=args.timeout,
                   max_instructions=args.max_instructions)


def _print_list(prepared) -> int:  # type: ignore[no-untyped-def]
    for mutant in prepared.mutants:
        minus, plus = mutant.diff()
        entry = prepared.listed.get(mutant.key)
        print(visible(f"{mutant.id} {mutant.location()} {mutant.operator}: {mutant.what}"))
        print(visible(f"    {minus}\n    {plus}\n    key {mutant.key}"
                      + (f"  (listed equivalent: {entry.argument})" if entry else ""),
                      multiline=True))
    print(f"{len(prepared.mutants)} of {prepared.generated} mutants")
    return EXIT_OK


def _notes(result: Result) -> list[str]:
    b = result.baseline
    runs = sum(len(v) for v in b.passing.values())
    return [f"configurations: {', '.join(result.configs)}; {runs} baseline runs passed, "
            f"{len(b.failing)} failed without a mutant (left out)",
            f"wall time: {result.wall_seconds:.1f} s (baseline {b.seconds:.1f} s, mutants "
            f"{result.mutant_seconds:.1f} s, -j{result.jobs})"]


def cmd_mutate(args: argparse.Namespace) -> int:
    check_outputs([Output(flag, path, kind) for flag, path, kind in
                   (("--json", args.json, MUTATE_JSON), ("--html", args.html, MUTATE_HTML))
                   if path is not None])
    if args.jobs is not None and args.jobs < 1:
        raise HarnessError(f"-j {args.jobs}: the number of workers must be at least 1")
    args.jobs = capped_jobs(args.jobs)
    prepared = prepare(_options(args))
    for entry in prepared.stale:
        print(visible(f"warning: {prepared.equivalents_path}:{entry.line}: {entry.key} matches "
                      "no mutant (the code changed?): check the entry"), file=sys.stderr)
    if args.list:
        return _print_list(prepared)
    if not prepared.mutants:
        raise HarnessError("no mutant selected (--files/--only match none)")
    count = len(prepared.mutants)
    print(visible(f"mutate: {count} mutant{'s' if count != 1 else ''} of {prepared.tree} "
                  f"({', '.join(sorted({m.file for m in prepared.mutants}))})"), flush=True)

    def show(verdict) -> None:  # type: ignore[no-untyped-def]
        print("\n".join(mutant_lines(verdict)), flush=True)

    result = execute(prepared, on_verdict=show,
                     on_note=lambda text: print(visible(text), file=sys.stderr, flush=True))
    notes = _notes(result)
    info = {"tree": prepared.tree, "configurations": result.configs,
            "wall_seconds": round(result.wall_seconds, 1),
            "baseline_seconds": round(result.baseline.seconds, 1),
            "mutant_seconds": round(result.mutant_seconds, 1), "jobs": result.jobs,
            "baseline_failing": [r.id for r in result.baseline.failing],
            "equivalents_file": str(prepared.equivalents_path)}
    try:
        if args.json:
            write_json(args.json, to_json(result.verdicts, result.counts, info))
        if args.html:
            write_html(args.html, result.verdicts, result.counts,
                       f"pyharness mutate: {prepared.tree}", notes)
    except OSError as err:
        raise HarnessError(f"cannot write a report: {err}") from None
    print()
    survivors = [v for v in result.verdicts if v.verdict == "survived"]
    if survivors:
        print(f"survivors ({len(survivors)}):")
        for verdict in survivors:
            m = verdict.mutant
            print(visible(f"  {m.id} {m.location()} {m.operator}: {m.before}  ->  {m.after}"))
    for line in notes + extra_lines(result.counts):
        print(visible(line))
    print(result.counts.summary_line())
    return result.counts.exit_code


def add_mutate_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``mutate`` and its handler."""
    p = subparsers.add_parser(
        "mutate", help="measure how many unwinder bugs the matrix catches",
        description="Generate mutants of the unwinding path (the shared unwinder "
                    "headers, the hyp's stacktrace and overflow vector, the host's dump "
                    "and panic), build each in a copy of the tree and run the matrix on "
                    "it until a run fails. Prints each mutant with its diff and verdict, "
                    "then `mutants: N generated, K killed, E equivalent, S survived "
                    "(score P%%)` (docs/mutation.md).",
        epilog="Exit codes: 0 no mutant survived, 1 some survived, 2 bad input.")
    p.set_defaults(handler=cmd_mutate)
    choose = p.add_argument_group("what to mutate and run")
    choose.add_argument("--config", nargs="+", metavar="FILE|NAME",
                        help="configurations to run (default: every shipped one)")
    choose.add_argument("--files", nargs="+", metavar="GLOB",
                        help="only mutants of these files, e.g. '*stacktrace/common.h'")
    choose.add_argument("--only", nargs="+", metavar="ID|KEY",
                        help="only these mutants (ids like m017, or keys)")
    choose.add_argument("--scenarios", nargs="+", metavar="PATTERN",
                        help="only these scenarios (globs; narrows what can kill)")
    choose.add_argument("--modes", nargs="+", metavar="PATTERN",
                        help="only these hypervisor modes (globs)")
    choose.add_argument("--all-runs", action="store_true",
                        help="also run a mutant on the runs that never execute its "
                             "function (by default they are skipped: docs/mutation.md)")
    choose.add_argument("--kernel-src", metavar="PATH",
                        help="mutate a copy of the nVHE unwinder of this kernel tree (or "
                             "Debian linux-source tarball) and run with it "
                             "(docs/kernel-src.md); the tree is never written. Without "
                             "it (or with `lab`) the lab's own unwinder is mutated")
    choose.add_argument("--equivalents", type=Path, metavar="FILE",
                        help="the equivalent mutants' list (default: "
                             "mutants/equivalent.txt)")
    choose.add_argument("--list", action="store_true",
                        help="list the mutants with their keys and stop")
    run = p.add_argument_group("how to run")
    run.add_argument("-j", "--jobs", type=int, default=None, metavar="N",
                     help="worker processes (default: number of CPUs)")
    run.add_argument("--seed", type=int, default=0, metavar="S",
                     help="seed of the per-run KASLR seeds, as in the matrix (default 0)")
    run.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, metavar="S",
                     help=f"wall-clock budget per run (default {DEFAULT_TIMEOUT_S:g})")
    run.add_argument("--max-instructions", type=int, default=DEFAULT_MAX_INSTRUCTIONS,
                     metavar="N", help="instruction budget per run")
    run.add_argument("--out", type=str, default=None, metavar="DIR",
                     help="base directory for build trees (default: build/); mutant "
                          "images go to DIR/mutate")
    out = p.add_argument_group("reports")
    out.add_argument("--json", type=Path, metavar="FILE", help="the run as JSON")
    out.add_argument("--html", type=Path, metavar="FILE",
                     help="a self-contained HTML page, survivors first")
