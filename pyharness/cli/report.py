"""``pyharness report merge``: one report from the JSON reports of many shards.

Exit 0 when every run of the merged matrix is there and passed, 1 when a
run did not pass or the matrix's plan names runs no file has (a shard
missing), 2 for bad input (an unreadable file, conflicting copies of a run,
files from different matrices).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from pyharness.errors import EXIT_CHECK_FAILED, EXIT_OK, HarnessError
from pyharness.reports import write_html, write_json, write_junit
from pyharness.reports.html_runs import check_source_url
from pyharness.reports.merge import MergedReport, merge_reports
from pyharness.reports.output_guard import (MATRIX_HTML, MATRIX_JSON, MATRIX_JUNIT, Output,
                                            check_outputs)
from pyharness.reports.summary import verdict_counts
from pyharness.reports.triage import terminal_report
from pyharness.terminal import visible

_SHOW_MISSING = 5


_KINDS = {"json": MATRIX_JSON, "junit": MATRIX_JUNIT, "html": MATRIX_HTML}


def _outputs(args: argparse.Namespace) -> dict[str, Path]:
    """The reports to write, each checked before the merge: none may replace
    a shard being merged or a file that is not a report of its kind."""
    outputs = {kind: getattr(args, kind) for kind in _KINDS if getattr(args, kind) is not None}
    check_outputs([Output(f"--{kind}", path, _KINDS[kind]) for kind, path in outputs.items()],
                  {path: "is one of the reports being merged" for path in args.reports})
    return outputs


def _write(merged: MergedReport, outputs: dict[str, Path], source_url: str | None) -> None:
    for kind, path in outputs.items():
        try:
            if kind == "json":
                write_json(merged.records, path, merged.plan)
            elif kind == "junit":
                write_junit(merged.records, path)
            else:
                write_html(merged.records, path, source_url=source_url)
        except OSError as err:
            raise HarnessError(f"--{kind} {path}: cannot write it: {err.strerror}") from None


def cmd_report_merge(args: argparse.Namespace) -> int:
    check_source_url(args.source_url)
    outputs = _outputs(args)
    merged = merge_reports(args.reports)
    _write(merged, outputs, args.source_url)
    records = merged.records
    dropped = f", {merged.duplicates} duplicate runs dropped" if merged.duplicates else ""
    print(f"merged {len(args.reports)} reports: {len(records)} runs{dropped}")
    if records:
        print()
        print(terminal_report(records, verbose=args.verbose, colour=sys.stdout.isatty(),
                              width=shutil.get_terminal_size((120, 24)).columns))
    print()
    print(verdict_counts(records))
    if merged.missing:
        shown = ", ".join(merged.missing[:_SHOW_MISSING])
        more = (f" and {len(merged.missing) - _SHOW_MISSING} more"
                if len(merged.missing) > _SHOW_MISSING else "")
        print(visible(f"incomplete: {len(merged.missing)} of the matrix's "
                      f"{len(merged.plan.ids)} runs are in none of the reports (a shard "
                      f"missing?): {shown}{more}"))
    for kind, path in outputs.items():
        print(visible(f"{kind}: {path}"))
    bad = merged.missing or any(not r.passed for r in records)
    return EXIT_CHECK_FAILED if bad else EXIT_OK


def add_report_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``report`` (with its one action, ``merge``)."""
    report = subparsers.add_parser(
        "report", help="work on matrix reports (merge the shards' JSON)",
        description="Work on the JSON reports `pyharness matrix --json` writes.")
    actions = report.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = actions.add_parser(
        "merge", help="one report from the JSON reports of many shards",
        description="Merge the JSON reports of a matrix's shards (or of any runs) into "
                    "one: each run once, in the matrix's order, as if it had run "
                    "unsharded. Prints the summary and writes the merged JSON, JUnit "
                    "and HTML reports.",
        epilog="Exit codes: 0 every run there and passed, 1 a run did not pass or runs "
               "of the matrix are in no report, 2 bad input (conflicting copies of a "
               "run, reports of different matrices).")
    p.set_defaults(handler=cmd_report_merge)
    p.add_argument("reports", nargs="+", type=Path, metavar="REPORT.json",
                   help="JSON reports of `pyharness matrix --json` (or `run --json`)")
    p.add_argument("--json", type=Path, metavar="FILE", help="the merged JSON report")
    p.add_argument("--junit", type=Path, metavar="FILE", help="the merged JUnit XML")
    p.add_argument("--html", type=Path, metavar="FILE", help="the merged HTML page")
    p.add_argument("--source-url", metavar="URL",
                   help="link each frame's file:line in the HTML to URL/FILE#LLINE "
                        "(e.g. https://github.com/OWNER/REPO/blob/COMMIT); default: "
                        "a relative link to the file when it exists here")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="print every failure (default: one block per cause)")
