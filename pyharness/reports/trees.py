"""Which kernel trees a set of runs was run with, for every report.

A tree's runs carry its path (``kernel_src``), generation, label
(``unwinder``: its ``--kernel-src NAME=``, else ``linux-<generation>``) and
what git said of it (``tree``: commit, dirty, diff hash, or why none;
:mod:`pyharness.builder.provenance`). A label stands for one tree in a
report: :func:`tree_conflict` says when two records of one label name
different trees (another path, or another known state), which
``report merge`` refuses, so the runs of two trees never share a row. A
record without a state (a report written before trees were recorded, or a
run that never got an image) says nothing about its tree's state and
joins its label's tree when the path is the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

from pyharness.builder.provenance import TreeProvenance
from pyharness.run.record import RunRecord
from pyharness.terminal import visible


@dataclass(frozen=True)
class TreeInReport:
    """One tree of a report, under its label."""

    label: str
    kernel_src: str
    generation: str | None
    provenance: TreeProvenance | None    # None: not recorded

    @property
    def state(self) -> str:
        """``commit 0123456789ab, clean``, ``not a git work tree``, ..."""
        return self.provenance.describe() if self.provenance else "state not recorded"

    def describe(self) -> str:
        return f"{self.label}: {self.kernel_src}: {self.state}"

    def same_tree(self, other: TreeInReport) -> bool:
        """Whether both can be one tree: the same path and generation, and
        the same state where both recorded one."""
        if (self.kernel_src, self.generation) != (other.kernel_src, other.generation):
            return False
        return (self.provenance is None or other.provenance is None
                or self.provenance == other.provenance)


def tree_of(record: RunRecord) -> TreeInReport | None:
    """The tree a run was run with; None for the lab's own unwinder."""
    spec = record.spec
    if spec.kernel_src is None:
        return None
    return TreeInReport(spec.unwinder, spec.kernel_src, spec.generation, record.tree)


def tested_trees(records: Iterable[RunRecord]) -> list[TreeInReport]:
    """Each label's tree, in the order the runs first name it, with a
    recorded state where any of its runs has one."""
    found: dict[str, TreeInReport] = {}
    for record in records:
        tree = tree_of(record)
        if tree is None:
            continue
        earlier = found.get(tree.label)
        if earlier is None or (earlier.provenance is None and tree.provenance is not None):
            found[tree.label] = tree
    return list(found.values())


def tree_conflict(earlier: TreeInReport, later: TreeInReport) -> str | None:
    """Why two trees of one label are not one tree, or None."""
    if earlier.same_tree(later):
        return None
    if earlier.kernel_src != later.kernel_src:
        what = f"{earlier.kernel_src} and {later.kernel_src}"
    elif earlier.generation != later.generation:
        what = f"{earlier.kernel_src} as {earlier.generation} and as {later.generation}"
    else:
        what = f"{earlier.kernel_src} at {earlier.state} and at {later.state}"
    return f"the runs labelled {earlier.label} come from two trees ({what})"


def tree_lines(records: Sequence[RunRecord]) -> list[str]:
    """The terminal's lines naming each tree (none for lab-only runs)."""
    trees = tested_trees(records)
    if not trees:
        return []
    width = max(len(t.label) for t in trees)
    return ["trees:"] + [visible(f"  {t.label:<{width}}  {t.kernel_src}: {t.state}")
                         for t in trees]
