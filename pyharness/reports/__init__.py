"""Reports of a matrix: terminal summary, JUnit XML, JSON records, HTML page.

Each takes the run records (:class:`~pyharness.run.runner.RunRecord`) in run
order and writes or returns one format; none of them runs anything.
"""

from __future__ import annotations

from pyharness.reports.html import html_report, write_html
from pyharness.reports.junit import junit_tree, write_junit
from pyharness.reports.records import load_records, write_json
from pyharness.reports.summary import failure_report, summary_table, verdict_counts

__all__ = ["failure_report", "html_report", "junit_tree", "load_records", "summary_table",
           "verdict_counts", "write_html", "write_json", "write_junit"]
