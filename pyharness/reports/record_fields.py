"""The type of every field of a run record read back from JSON.

A JSON report is input: a hand-edited or hostile file may put any JSON
value in any field. Each field is checked against the type the record's
dataclasses declare (:class:`~pyharness.run.spec.RunSpec`,
:class:`~pyharness.run.record.RunRecord`, and within them
:class:`~pyharness.judge.verdict.FrameLine` and
:class:`~pyharness.builder.provenance.TreeProvenance`), read from their
type hints, so a field a record gains later is checked by the same rule.
:func:`field_problem` names the first field that is not of its type.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import types
import typing
from typing import Any, Callable

from pyharness.run.record import RunRecord
from pyharness.run.spec import RunSpec

# Fields a record writes that its dataclasses do not hold (derived on reading).
_DERIVED: dict[str, Any] = {"command": str}


@functools.cache
def record_fields() -> dict[str, Any]:
    """Every field of a record's JSON -> its declared type."""
    hints = {**typing.get_type_hints(RunSpec), **typing.get_type_hints(RunRecord),
             **_DERIVED}
    hints.pop("spec")
    return hints


def _spelled(hint: Any) -> str:
    """A type as the message names it: ``a list of strings``, ``a number or null``."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        named = [_spelled(a) for a in args if a is not type(None)]
        return " or ".join(named + (["null"] if type(None) in args else []))
    if typing.get_origin(hint) is list:
        return f"a list of {_spelled(args[0]).removeprefix('a ').removeprefix('an ')}s"
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return "one of " + ", ".join(str(m.value) for m in hint)
    if dataclasses.is_dataclass(hint):
        return "an object"
    return {str: "a string", int: "a whole number", float: "a number",
            bool: "true or false"}.get(hint, "a value")


Check = Callable[[object], "str | None"]


@functools.cache
def _checker(hint: Any) -> Check:
    """A function saying why a value is not of type ``hint`` (a phrase), or
    None; made once per type, so a report of thousands of runs is checked
    at the speed of its isinstance calls."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    spelled = _spelled(hint)
    if origin in (typing.Union, types.UnionType):
        kinds = [_checker(a) for a in args if a is not type(None)]
        nullable = type(None) in args

        def union(value: object) -> str | None:
            if value is None and nullable:
                return None
            problems = [check(value) for check in kinds]
            if None in problems:
                return None
            inner = len(kinds) == 1 and isinstance(value, (dict, list))
            return problems[0] if inner else f"is not {spelled}"
        return union
    if origin is list:
        item = _checker(args[0])

        def items(value: object) -> str | None:
            if not isinstance(value, list):
                return f"is not {spelled}"
            for i, element in enumerate(value):
                problem = item(element)
                if problem is not None:
                    return f"item {i} {problem}"
            return None
        return items
    if dataclasses.is_dataclass(hint):
        return functools.partial(_object_problem, fields={
            name: _checker(h) for name, h in typing.get_type_hints(hint).items()})
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        values = frozenset(m.value for m in hint)
        return lambda value: (None if isinstance(value, str) and value in values
                              else f"is not {spelled}")
    if hint in (int, float, str, bool):
        kinds = {int: (int,), float: (int, float), str: (str,), bool: (bool,)}[hint]
        exact_bool = hint is bool
        return lambda value: (None if isinstance(value, kinds)
                              and (exact_bool or not isinstance(value, bool))
                              else f"is not {spelled}")
    return lambda value: None              # a type with a reader of its own


def _object_problem(value: object, fields: dict[str, Check]) -> str | None:
    if not isinstance(value, dict):
        return "is not an object"
    for name, check in fields.items():
        if name in value:
            problem = check(value[name])
            if problem is not None:
                shown = repr(value[name])
                shown = shown if len(shown) <= 40 else shown[:37] + "..."
                return f"has {name} {shown} that {problem}"
    return None


def field_problem(data: dict[str, object]) -> tuple[str, str] | None:
    """The first field of ``data`` not of its declared type, and why; a
    field that is absent is the caller's business (defaults)."""
    for name, hint in record_fields().items():
        if name in data:
            problem = _checker(hint)(data[name])
            if problem is not None:
                return name, problem
    return None
