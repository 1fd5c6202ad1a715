"""One report from many: the JSON reports of a matrix's shards, merged.

Each shard's JSON carries the matrix's plan (every run id, in matrix order;
:mod:`pyharness.reports.records`), so the merged runs come back in that
order: the merge of all shards is the unsharded matrix's report. A run in
two files is kept once when both say the same (timings and the image's
path aside: two machines may time and place it differently); when they
disagree, or the files come from different matrices, the merge stops with
one line saying which run or file and what differs. So does a label whose
runs come from two kernel trees (another path, or another commit, dirty
state or diff: :mod:`pyharness.reports.trees`), so that one row never
holds the runs of two trees.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from pyharness.errors import HarnessError
from pyharness.reports.records import MatrixPlanIds, load_report
from pyharness.reports.trees import TreeInReport, tree_conflict, tree_of
from pyharness.run.record import RunRecord
from pyharness.run.spec import MODES

# What may differ between two copies of one run without a conflict.
_INCIDENTAL = ("elapsed_ms", "build_ms", "elf")


@dataclass(frozen=True)
class MergedReport:
    records: list[RunRecord]
    plan: MatrixPlanIds | None      # the matrix's plan, as one unsharded report
    missing: tuple[str, ...]         # plan runs in no file
    duplicates: int                  # copies of a run dropped


def _outcome(record: RunRecord) -> dict[str, object]:
    data = record.to_json()
    for name in _INCIDENTAL:
        data.pop(name, None)
    return data


def _first_difference(a: dict[str, object], b: dict[str, object]) -> str:
    for name in a:
        if a[name] != b.get(name):
            left, right = str(a[name]), str(b.get(name))
            if len(left) > 40 or len(right) > 40:
                return f"their {name} differ"
            return f"{name} {left} vs {right}"
    return "their fields differ"


def _plan_difference(a: MatrixPlanIds, b: MatrixPlanIds) -> str | None:
    """What makes two plans of the same runs two matrices: the seed, a
    budget, or a tree label on another tree (a value one of them did not
    record is not a difference)."""
    for name, what in (("seed", "--seed"), ("max_instructions", "--max-instructions"),
                       ("timeout_s", "--timeout")):
        left, right = getattr(a, name), getattr(b, name)
        if left is not None and right is not None and left != right:
            return f"{what} {left} and {what} {right}"
    theirs = {t.label: t for t in b.trees or ()}
    for tree in a.trees or ():
        other = theirs.get(tree.label)
        if other is not None and other != tree:
            return (f"{tree.label} is {tree.kernel_src} ({tree.generation}) in one and "
                    f"{other.kernel_src} ({other.generation}) in the other")
    return None


def _union(a: MatrixPlanIds, b: MatrixPlanIds) -> MatrixPlanIds:
    trees = None
    if a.trees is not None or b.trees is not None:
        labels = {t.label: t for t in (*(a.trees or ()), *(b.trees or ()))}
        trees = tuple(labels.values())
    return MatrixPlanIds(
        ids=a.ids, shard=None, seed=a.seed if a.seed is not None else b.seed,
        max_instructions=a.max_instructions if a.max_instructions is not None
        else b.max_instructions,
        timeout_s=a.timeout_s if a.timeout_s is not None else b.timeout_s, trees=trees)


def _common_plan(plans: list[tuple[Path, MatrixPlanIds]]) -> MatrixPlanIds | None:
    if not plans:
        return None
    first_path, first = plans[0]
    merged = MatrixPlanIds(ids=first.ids)
    for path, plan in plans:
        if plan.ids != first.ids:
            raise HarnessError(
                f"{first_path} and {path} come from different matrices (their plans have "
                f"{len(first.ids)} and {len(plan.ids)} runs"
                f"{'' if set(plan.ids) != set(first.ids) else ' in another order'}); "
                "merge the shards of one `pyharness matrix` command")
        difference = _plan_difference(merged, plan)
        if difference is not None:
            raise HarnessError(
                f"{first_path} and {path} come from different matrices of the same runs "
                f"({difference}); merge the shards of one `pyharness matrix` command")
        merged = _union(merged, plan)
    return merged


def _matrix_order(records: Sequence[RunRecord]) -> list[RunRecord]:
    """Without a plan: configurations and scenarios in order of first
    appearance, modes in their usual order, CPUs ascending."""
    configs = {n: i for i, n in enumerate(dict.fromkeys(r.spec.config_name for r in records))}
    scenarios = {n: i for i, n in enumerate(dict.fromkeys(r.spec.scenario for r in records))}
    modes = {m: i for i, m in enumerate(MODES)}
    return sorted(records, key=lambda r: (configs[r.spec.config_name],
                                          modes.get(r.spec.mode, len(modes)),
                                          scenarios[r.spec.scenario], r.spec.cpu))


def _check_tree(record: RunRecord, path: Path,
                trees: dict[str, tuple[TreeInReport, Path]]) -> None:
    """One label, one tree: bad input when ``record``'s is another than its
    label's first (a recorded state is kept over an unrecorded one)."""
    tree = tree_of(record)
    if tree is None:
        return
    first = trees.get(tree.label)
    if first is None or (first[0].provenance is None and tree.provenance is not None
                         and first[0].same_tree(tree)):
        trees[tree.label] = (tree, path)
        return
    problem = tree_conflict(first[0], tree)
    if problem is not None:
        where = f"in {path}" if first[1] == path else f"in {first[1]} and {path}"
        raise HarnessError(f"{problem}, {where}; merge the reports of one tree, or run "
                           "each tree under a name of its own (--kernel-src NAME=PATH), "
                           "so that each has rows of its own")


def merge_reports(paths: Sequence[Path]) -> MergedReport:
    """The runs of every report in ``paths``, once each, in matrix order."""
    if not paths:
        raise HarnessError("report merge needs at least one JSON report")
    seen: dict[str, tuple[RunRecord, Path]] = {}
    trees: dict[str, tuple[TreeInReport, Path]] = {}
    plans: list[tuple[Path, MatrixPlanIds]] = []
    duplicates = 0
    for path in paths:
        records, plan = load_report(path)
        if plan is not None:
            plans.append((path, plan))
        for record in records:
            _check_tree(record, path, trees)
            earlier = seen.get(record.id)
            if earlier is None:
                seen[record.id] = (record, path)
                continue
            before, now = _outcome(earlier[0]), _outcome(record)
            if before.get("tree") is None or now.get("tree") is None:
                for outcome in (before, now):     # a report from before trees were recorded
                    outcome.pop("tree", None)
            if before != now:
                where = (f"twice in {path}" if earlier[1] == path
                         else f"in {earlier[1]} and {path}")
                raise HarnessError(
                    f"run {record.id} is {where} with different results "
                    f"({_first_difference(before, now)}); merge the shards of one matrix "
                    "run, or rerun that run and keep one of the two")
            duplicates += 1
    plan = _common_plan(plans)
    records = [record for record, _ in seen.values()]
    if plan is None:
        return MergedReport(_matrix_order(records), None, (), duplicates)
    position = {run_id: i for i, run_id in enumerate(plan.ids)}
    records.sort(key=lambda r: position.get(r.id, len(position)))
    missing = tuple(i for i in plan.ids if i not in seen)
    return MergedReport(records, plan, missing, duplicates)
