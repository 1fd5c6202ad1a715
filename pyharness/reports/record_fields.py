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
from typing import Any

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


def _problem(value: object, hint: Any) -> str | None:
    """Why ``value`` is not of type ``hint`` (a phrase), or None."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        kinds = [a for a in args if a is not type(None)]
        problems = [_problem(value, a) for a in kinds]
        if None in problems:
            return None
        inner = len(kinds) == 1 and isinstance(value, (dict, list))
        return problems[0] if inner else f"is not {_spelled(hint)}"
    if origin is list:
        if not isinstance(value, list):
            return f"is not {_spelled(hint)}"
        for i, item in enumerate(value):
            problem = _problem(item, args[0])
            if problem is not None:
                return f"item {i} {problem}"
        return None
    if dataclasses.is_dataclass(hint):
        return _object_problem(value, hint)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        ok = isinstance(value, str) and value in {m.value for m in hint}
        return None if ok else f"is not {_spelled(hint)}"
    if hint is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif hint is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif hint in (str, bool):
        ok = isinstance(value, hint)
    else:
        ok = True                         # a type with a reader of its own
    return None if ok else f"is not {_spelled(hint)}"


def _object_problem(value: object, kind: type) -> str | None:
    if not isinstance(value, dict):
        return "is not an object"
    for name, hint in typing.get_type_hints(kind).items():
        if name in value:
            problem = _problem(value[name], hint)
            if problem is not None:
                return f"has {name} that {problem}"
    return None


def field_problem(data: dict[str, object]) -> tuple[str, str] | None:
    """The first field of ``data`` not of its declared type, and why; a
    field that is absent is the caller's business (defaults)."""
    for name, hint in record_fields().items():
        if name in data:
            problem = _problem(data[name], hint)
            if problem is not None:
                return name, problem
    return None
