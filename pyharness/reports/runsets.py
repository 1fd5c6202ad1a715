"""A set of runs said in a few globs: ``pkvm*/protected/*`` rather than 48 ids.

A run is a point on four axes (configuration, mode, scenario, CPU). A set
of runs of a matrix is covered by boxes (a set of values, or ``*``, per
axis), each box standing for the matrix's runs that match it. Boxes start
as single runs and merge along one axis at a time when they agree on the
others; a box's values on an axis become ``*`` when they hold every value
the matrix has there for the rest of the box (so ``tiny``, which has only
CPU 0, and ``pkvm``, which has CPUs 0 and 1, both read ``*`` on the CPU
axis). Every box is exact: it names only runs of the set.

A value set renders as a name, a glob over the matrix's names (``fault_*``,
``pkvm*``, ``all-*-pst-*``) when the glob matches only names in the set,
every name but one or two (``!(smoke)``, as bash's extglob writes it), or
``{a,b*}``.
"""

from __future__ import annotations

import fnmatch
from typing import Iterable, Sequence

from pyharness.run.spec import RunSpec, row_name

STAR = "*"
MAX_EXCEPT = 2       # "every value but these" reads best for at most this many
AXES = ("configuration", "mode", "scenario", "cpu")
_Point = tuple[str, str, str, str]
_Values = frozenset[str] | str          # a set of values, or STAR
_Box = tuple[_Values, _Values, _Values, _Values]


def point(spec: RunSpec) -> _Point:
    return (row_name(spec.config_name, spec.unwinder), spec.mode, spec.scenario, f"cpu{spec.cpu}")


def _union(members: Iterable[_Values]) -> _Values:
    out: set[str] = set()
    for values in members:
        if values == STAR:
            return STAR
        out |= values
    return frozenset(out)


class _Index:
    """The universe's runs as bit masks per axis value, to match boxes quickly."""

    def __init__(self, universe: Sequence[_Point]) -> None:
        self.all = (1 << len(universe)) - 1
        self.masks: list[dict[str, int]] = [{} for _ in AXES]
        for i, p in enumerate(universe):
            for axis, value in enumerate(p):
                self.masks[axis][value] = self.masks[axis].get(value, 0) | (1 << i)

    def mask(self, box: Sequence[_Values], skip: int | None = None) -> int:
        """The runs that match ``box`` (ignoring axis ``skip``)."""
        out = self.all
        for axis, values in enumerate(box):
            if axis == skip or values == STAR:
                continue
            out &= sum(self.masks[axis].get(v, 0) for v in values)
        return out


def _merge_along(boxes: set[_Box], axis: int, index: _Index) -> set[_Box]:
    """Merge the boxes that agree off ``axis``; promote full value sets to ``*``."""
    groups: dict[tuple[_Values, ...], list[_Values]] = {}
    for box in boxes:
        groups.setdefault(box[:axis] + box[axis + 1:], []).append(box[axis])
    merged: set[_Box] = set()
    for rest, members in groups.items():
        values = _union(members)
        if values != STAR:
            others = index.mask(rest[:axis] + (STAR,) + rest[axis:], skip=axis)
            possible = {v for v, m in index.masks[axis].items() if m & others}
            if possible <= values:
                values = STAR
        merged.add(rest[:axis] + (values,) + rest[axis:])  # type: ignore[arg-type]
    return merged


def cover(chosen: Iterable[_Point], index: _Index) -> list[_Box]:
    """Boxes whose matches in the indexed universe are exactly ``chosen``, biggest first."""
    boxes: set[_Box] = {tuple(frozenset([v]) for v in p) for p in chosen}  # type: ignore[misc]
    while True:
        before = boxes
        for axis in reversed(range(len(AXES))):    # CPU first, configuration last
            boxes = _merge_along(boxes, axis, index)
        if boxes == before:
            break
    return sorted(boxes, key=lambda b: (-bin(index.mask(b)).count("1"),
                                        render_box(b, (), index)))


# Rendering

def _glob_ok(pattern: str, values: frozenset[str], names: Sequence[str]) -> frozenset[str]:
    """The names ``pattern`` matches, if all of them are in ``values`` (else empty)."""
    hits = frozenset(n for n in names if fnmatch.fnmatchcase(n, pattern))
    return hits if hits <= values else frozenset()


def _join(parts: list[str], sep: str) -> str:
    """Segments joined, each run of ``*`` segments as one."""
    kept = [p for i, p in enumerate(parts) if not (p == STAR and i and parts[i - 1] == STAR)]
    return sep.join(kept)


def _segment_glob(values: frozenset[str], names: Sequence[str]) -> str | None:
    """One glob over ``-``/``_``-separated segments (``all-*-pst-*``) matching
    exactly ``values``: the segments they differ in are ``*``, and so is every
    later segment that is not needed to keep the glob exact."""
    for sep in ("-", "_"):
        split = [v.split(sep) for v in sorted(values)]
        if len({len(s) for s in split}) != 1 or len(split[0]) < 2:
            continue
        parts = [column[0] if len(set(column)) == 1 else STAR for column in zip(*split)]
        if STAR not in parts or _glob_ok(_join(parts, sep), values, names) != values:
            continue
        for i in reversed(range(1, len(parts))):
            trial = parts[:i] + [STAR] + parts[i + 1:]
            if parts[i] != STAR and _glob_ok(_join(trial, sep), values, names) == values:
                parts = trial
        return _join(parts, sep)
    return None


def _prefix_glob(value: str, values: frozenset[str], names: Sequence[str]) -> tuple[str, frozenset[str]]:
    """The longest ``prefix*`` of the widest such glob that stays inside
    ``values``; a prefix is a name of its own or ends at a ``_`` or ``-``
    (``fault_*``, ``pkvm*``; never ``bu*``)."""
    best, covered = value, frozenset([value])
    for length in range(len(value), 0, -1):
        prefix = value[:length]
        if prefix not in names and not prefix.endswith(("_", "-")):
            continue
        hits = _glob_ok(prefix + STAR, values, names)
        if len(hits) > len(covered):
            best, covered = value[:length] + STAR, hits
    return best, covered


def render_values(values: _Values, names: Sequence[str]) -> str:
    """``*``, one name, one glob, or ``{a,b*,c}``, in the matrix's order of names."""
    if values == STAR:
        return STAR
    if len(values) == 1:
        return next(iter(values))
    whole = _segment_glob(values, names)
    if whole is not None:
        return whole
    others = [n for n in names if n not in values]
    if len(others) <= MAX_EXCEPT < len(values):
        return f"!({'|'.join(others)})"
    order = {n: i for i, n in enumerate(names)}
    items: list[str] = []
    left = set(values)
    for value in sorted(values, key=lambda v: order.get(v, len(order))):
        if value not in left:
            continue
        glob, covered = _prefix_glob(value, values, names)
        items.append(glob)
        left -= covered
    return items[0] if len(items) == 1 else "{" + ",".join(items) + "}"


def render_box(box: _Box, universe: Sequence[_Point], index: _Index | None = None) -> str:
    """``config/mode/scenario[/cpuN]`` (the CPU part left out when it is ``*``).

    A ``*`` that stands for one value only, given the rest of the box,
    shows that value (``smp/*/*/cpu3`` rather than ``*/*/*/cpu3``)."""
    index = index or _Index(universe)
    parts = []
    for axis, values in enumerate(box):
        if values == STAR and axis < len(AXES) - 1:
            others = index.mask(box, skip=axis)
            possible = [v for v, m in index.masks[axis].items() if m & others]
            if len(possible) == 1:
                values = frozenset(possible)
        parts.append(render_values(values, list(index.masks[axis])))
    if parts[-1] == STAR:
        parts.pop()
    return "/".join(parts)


class RunNamer:
    """:func:`describe_runs` for many sets of runs of one universe (the HTML
    report names every cause's runs): the universe's index is built once."""

    def __init__(self, universe: Sequence[RunSpec]) -> None:
        self._points = [point(s) for s in universe]
        self._index = _Index(self._points)

    def describe(self, chosen: Sequence[RunSpec]) -> list[str]:
        return [render_box(b, self._points, self._index)
                for b in cover([point(s) for s in chosen], self._index)]


def describe_runs(chosen: Sequence[RunSpec], universe: Sequence[RunSpec]) -> list[str]:
    """The globs that name exactly ``chosen`` among ``universe``, widest first."""
    return RunNamer(universe).describe(chosen)
