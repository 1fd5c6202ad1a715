"""``pyharness matrix``: expand, build, run in parallel, report.

Exit 0 when every run passed, 1 when any failed or could not be judged,
2 for bad input (raised as HarnessError for the CLI's one-line message).
"""

from __future__ import annotations

import argparse
import functools
import shutil
import sys
from pathlib import Path
from typing import Callable, Iterable

from pyharness.builder.cache import source_files
from pyharness.builder.kernelsrc import default_kernel_src
from pyharness.cli.options import add_kernel_src_option, capped_jobs
from pyharness.errors import EXIT_OK, HarnessError
from pyharness.paths import configs_dir, kconfig_file
from pyharness.matrix.progress import make_progress
from pyharness.platform.results import check_budgets
from pyharness.reports import write_html, write_json, write_junit
from pyharness.reports.html_runs import check_source_url
from pyharness.reports.output_guard import (MATRIX_HTML, MATRIX_JSON, MATRIX_JUNIT, Output,
                                            check_outputs, real_path)
from pyharness.reports.records import MatrixPlanIds, PlannedTree, load_report, with_reruns
from pyharness.reports.triage import terminal_report
from pyharness.run.spec import DEFAULT_MAX_INSTRUCTIONS, DEFAULT_QEMU_TIMEOUT_S, DEFAULT_TIMEOUT_S
from pyharness.terminal import visible
from pyharness.run.record import RunRecord
from pyharness.matrix.execute import KILL_GRACE_S, default_jobs, run_matrix
from pyharness.matrix.selection import MatrixPlan, Selection, plan

_WRITERS: dict[str, Callable[[list[RunRecord], Path], None]] = {
    "junit": write_junit, "json": write_json, "html": write_html}


_KINDS = {"junit": MATRIX_JUNIT, "json": MATRIX_JSON, "html": MATRIX_HTML}


def _check_reports(args: argparse.Namespace, inputs: Iterable[str]) -> dict[str, Path]:
    """The requested report files, checked harmless before any work starts:
    each absent or a report of its kind pyharness wrote, none an input or
    another report, none in the configurations directory."""
    paths = {kind: getattr(args, kind) for kind in _WRITERS if getattr(args, kind)}
    for kind, path in paths.items():
        if real_path(configs_dir(), "configs") in real_path(path, f"--{kind}").parents:
            raise HarnessError(f"--{kind} {path}: inside the configurations directory "
                               f"{configs_dir()}; write reports elsewhere")
    check_outputs([Output(f"--{kind}", path, _KINDS[kind]) for kind, path in paths.items()],
                  {Path(p): f"that is {p}, an input of this matrix, which the report "
                            "would replace" for p in inputs})
    return paths


def _report_paths(args: argparse.Namespace) -> dict[str, Path]:
    return _check_reports(args, [c for c in args.configs or () if Path(c).is_file()]
                          + [str(p) for p in source_files()] + [str(kconfig_file())])


def _kernel_srcs(args: argparse.Namespace) -> tuple[str, ...]:
    """The --kernel-src values; none: $PYHARNESS_KERNEL_SRC (not with --only-failed,
    whose runs name their own)."""
    if args.kernel_src:
        return tuple(args.kernel_src)
    default = default_kernel_src()
    return (default,) if default and args.only_failed is None else ()


def _rerun_target(args: argparse.Namespace, reports: dict[str, Path]) \
        -> tuple[list[RunRecord], MatrixPlanIds | None] | None:
    """The report ``--only-failed`` reads when ``--json`` writes it again
    (its records and plan, to keep), else None."""
    json_path = reports.get("json")
    if args.only_failed is None or json_path is None or \
            real_path(json_path, "--json") != real_path(args.only_failed, "--only-failed"):
        return None
    return load_report(args.only_failed)


def _plan_ids(args: argparse.Namespace, matrix_plan: MatrixPlan) -> MatrixPlanIds:
    """The plan a JSON report carries: what ``report merge`` needs to tell
    this matrix's shards from another's (a rerun's seed and budgets are its
    runs' own, unless given)."""
    rerun = args.only_failed is not None
    timeout = args.timeout
    if timeout is None and not rerun:
        timeout = DEFAULT_QEMU_TIMEOUT_S if args.qemu else DEFAULT_TIMEOUT_S
    instructions = args.max_instructions
    if instructions is None and not rerun:
        instructions = DEFAULT_MAX_INSTRUCTIONS
    trees = {s.unwinder: PlannedTree(s.unwinder, s.kernel_src, s.generation)
             for s in matrix_plan.specs if s.kernel_src is not None}
    return MatrixPlanIds(matrix_plan.all_ids, args.shard, seed=None if rerun else args.seed,
                         max_instructions=instructions, timeout_s=timeout,
                         trees=None if rerun else tuple(trees.values()))


def _selection(args: argparse.Namespace) -> Selection:
    return Selection(configs=tuple(args.configs or ()), scenarios=tuple(args.scenarios or ()),
                     modes=tuple(args.modes or ()), all_configs=args.all,
                     randconfig=args.randconfig, seed=args.seed,
                     only_failed=args.only_failed, shard=args.shard, out_dir=args.out,
                     kernel_srcs=_kernel_srcs(args), qemu=args.qemu,
                     differential=args.differential)


def cmd_matrix(args: argparse.Namespace) -> int:
    if args.jobs is not None and args.jobs < 1:
        raise HarnessError(f"-j {args.jobs}: the number of workers must be at least 1")
    check_budgets(args.max_instructions, args.timeout)
    if args.max_failures is not None and args.max_failures < 1:
        raise HarnessError(f"--max-failures {args.max_failures}: give at least 1")
    check_source_url(args.source_url)
    reports = _report_paths(args)
    rerun_target = _rerun_target(args, reports)
    matrix_plan = plan(_selection(args))
    _check_reports(args, {spec.config for spec in matrix_plan.specs})
    jobs = capped_jobs(args.jobs) or default_jobs()
    print(visible(f"{matrix_plan.describe()}; {jobs} worker{'s' if jobs > 1 else ''}"),
          flush=True)

    result = run_matrix(matrix_plan.specs, jobs, out_dir=args.out,
                        run_timeout_s=args.timeout, max_instructions=args.max_instructions,
                        progress=make_progress(sys.stderr, enabled=not args.quiet,
                                               verbose=args.verbose),
                        max_failures=args.max_failures, compiled_before=matrix_plan.compiled)
    writers = dict(_WRITERS, json=functools.partial(
        write_json, plan=_plan_ids(args, matrix_plan)),
                   html=functools.partial(write_html, source_url=args.source_url))
    if rerun_target is not None:                # the input, each rerun replacing its record
        original, original_plan = rerun_target
        writers["json"] = lambda records, path: write_json(
            with_reruns(original, records), path, original_plan)
    for kind, path in reports.items():
        try:
            writers[kind](result.records, path)
        except OSError as err:
            raise HarnessError(f"--{kind} {path}: cannot write it: {err.strerror}") from None

    if result.records:
        print()
        print(terminal_report(result.records, verbose=args.verbose,
                              colour=sys.stdout.isatty(),
                              width=shutil.get_terminal_size((120, 24)).columns,
                              universe=matrix_plan.specs))
    print()
    print(result.summary_line())
    for kind, path in reports.items():
        print(visible(f"{kind}: {path}"))
    return result.exit_code if result.records else EXIT_OK


def add_matrix_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``matrix`` and its handler (``args.handler(args) -> exit code``)."""
    p = subparsers.add_parser(
        "matrix", help="run many configurations x modes x scenarios x CPUs in parallel",
        description="Build each configuration once (cached, in parallel), run every "
                    "combination of configuration, mode, scenario and CPU in worker "
                    "processes, and report. Default: every shipped configuration x both "
                    "modes x every scenario x CPU 0 and the last CPU.",
        epilog="Exit codes: 0 all passed, 1 a run failed or could not be judged, "
               "2 bad input.")
    p.set_defaults(handler=cmd_matrix)
    choose = p.add_argument_group("what to run")
    choose.add_argument("--configs", nargs="+", metavar="PATTERN",
                        help="shipped config names (globs, e.g. 'pkvm*') or files; with "
                             "--all/--randconfig, globs over the generated names")
    choose.add_argument("--scenarios", nargs="+", metavar="PATTERN",
                        help="scenario names or globs (see `pyharness scenarios`)")
    choose.add_argument("--modes", nargs="+", metavar="PATTERN",
                        help="hypervisor modes: nvhe, protected (globs)")
    choose.add_argument("--all", action="store_true",
                        help="every valid combination of the matrix Kconfig symbols")
    choose.add_argument("--randconfig", type=int, metavar="N",
                        help="N random valid configurations (reproducible with --seed)")
    choose.add_argument("--seed", type=int, default=0, metavar="S",
                        help="seed of --randconfig and of the per-run KASLR seeds (default 0)")
    choose.add_argument("--only-failed", type=Path, metavar="FILE.json",
                        help="rerun the runs that did not pass in an earlier --json report")
    choose.add_argument("--shard", metavar="K/N",
                        help="run only the K-th of N deterministic slices (CI)")
    add_kernel_src_option(choose, repeat=True)
    choose.add_argument("--qemu", action="store_true",
                        help="run each tree's real kernel under QEMU instead of the lab "
                             "(configs x trees x modes x real-kernel scenarios; default "
                             "configuration pkvm, default trees the Debian linux-source "
                             "tarballs installed; docs/real-kernel.md)")
    choose.add_argument("--differential", action="store_true",
                        help="with --qemu: run each shared scenario on the lab's fast path "
                             "with the same tree too and compare the dumps; a difference "
                             "docs/real-kernel.md does not explain fails the run")
    run = p.add_argument_group("how to run")
    run.add_argument("-j", "--jobs", type=int, default=None, metavar="N",
                     help="worker processes and parallel builds (default: number of CPUs)")
    run.add_argument("--timeout", type=float, default=None, metavar="S",
                     help=f"wall-clock budget per run in seconds (default "
                          f"{DEFAULT_TIMEOUT_S:g}, or each rerun's own with --only-failed); "
                          f"a worker still busy {KILL_GRACE_S:g} s later is killed and its "
                          "run is an error")
    run.add_argument("--max-instructions", type=int, default=None, metavar="N",
                     help=f"instruction budget per run (default {DEFAULT_MAX_INSTRUCTIONS}, "
                          "or each rerun's own with --only-failed)")
    run.add_argument("--out", default=None, metavar="DIR",
                     help="base directory for build trees (default: build/)")
    run.add_argument("--max-failures", type=int, default=None, metavar="N",
                     help="stop after N runs did not pass: no new runs, workers stopped, "
                          "reports written for the runs that finished (exit 1)")
    run.add_argument("-q", "--quiet", action="store_true",
                     help="no progress bar or progress lines")
    run.add_argument("-v", "--verbose", action="store_true",
                     help="print every failure with its reasons and reproduce command "
                          "(default: one block per cause)")
    out = p.add_argument_group("reports")
    out.add_argument("--junit", type=Path, metavar="FILE", help="JUnit XML, one testcase per run")
    out.add_argument("--json", type=Path, metavar="FILE",
                     help="JSON, one record per run (as `pyharness run --json`)")
    out.add_argument("--html", type=Path, metavar="FILE",
                     help="a self-contained HTML page: grid, consoles, diffs, footprint")
    out.add_argument("--source-url", metavar="URL",
                     help="link each frame's file:line in the HTML to URL/FILE#LLINE "
                          "(e.g. https://github.com/OWNER/REPO/blob/COMMIT); default: a "
                          "link to the file in this checkout (or the kernel tree)")
