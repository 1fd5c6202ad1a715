"""Whether Kconfig honoured every assignment of a fragment, and if not, why:
an unmet dependency, a value out of range, a choice member overridden.
Resolution (:mod:`pyharness.kconfig.resolve`) turns any of them into one
error naming the option and the reason, never a silent change."""

from __future__ import annotations

import re

import kconfiglib

from pyharness.errors import ConfigError
from pyharness.kconfig.assignment import Assignment, unescape


def _unmet_symbols(expr: object) -> list[str]:
    names = []
    for item in kconfiglib.expr_items(expr):
        if isinstance(item, kconfiglib.Symbol) and not item.is_constant \
                and item.tri_value == 0 and item.name not in names:
            names.append(item.name)
    return names


def _number(sym: kconfiglib.Symbol, text: str) -> int:
    """An int or hex symbol's value (decimal, or hex with or without 0x)."""
    return int(text, 16 if sym.orig_type == kconfiglib.HEX else 10)


def _active_range(sym: kconfiglib.Symbol) -> tuple[int, int] | None:
    for low, high, cond in sym.ranges:
        if kconfiglib.expr_value(cond):
            return _number(sym, low.str_value), _number(sym, high.str_value)
    return None


def _same_value(sym: kconfiglib.Symbol, wanted: str) -> bool:
    got = sym.str_value
    if sym.orig_type in (kconfiglib.INT, kconfiglib.HEX):
        try:
            return _number(sym, got) == _number(sym, wanted)
        except ValueError:
            return False
    if sym.orig_type == kconfiglib.STRING:
        return got == unescape(wanted)
    return got == wanted


def _dependency_text(sym: kconfiglib.Symbol) -> str:
    """The dependency expression, without kconfiglib's choice marker."""
    text = kconfiglib.expr_str(sym.direct_dep)
    text = re.sub(r"\s*&&\s*<choice>|<choice>\s*&&\s*", "", text)
    return text


def _why_dropped(sym: kconfiglib.Symbol, a: Assignment,
                 by_name: dict[str, Assignment]) -> str:
    """Explain why Kconfig did not honour an assignment."""
    head = (f"{a.where}: CONFIG_{a.name}={a.value} was dropped by Kconfig "
            f"(it resolved to {sym.str_value or 'n'})")
    if sym.orig_type in (kconfiglib.INT, kconfiglib.HEX):
        bounds = _active_range(sym)
        if bounds and not bounds[0] <= _number(sym, a.value) <= bounds[1]:
            return (f"{a.where}: CONFIG_{a.name}={a.value} is outside its "
                    f"range {bounds[0]}..{bounds[1]}")
    if not any(node.prompt for node in sym.nodes):
        return (f"{head}: CONFIG_{a.name} has no prompt and is derived from "
                "other options; set those instead")
    if a.value != "n" and kconfiglib.expr_value(sym.direct_dep) == 0:
        unmet = _unmet_symbols(sym.direct_dep)
        names = ", ".join(f"CONFIG_{n}" for n in unmet) or "its dependencies"
        return (f"{head}: it depends on {_dependency_text(sym)}, and {names} "
                f"{'is' if len(unmet) == 1 else 'are'} not set; "
                f"enable {names} in the same file")
    if sym.choice is not None:
        chosen = sym.choice.selection
        if a.value == "y" and chosen is not None:
            rival = by_name.get(chosen.name)
            where = f" at {rival.where}" if rival else " (the choice's default)"
            return (f"{head}: CONFIG_{chosen.name}{where} is selected in the "
                    "same choice; keep only one of them")
        return (f"{head}: one member of its choice must be y; set another "
                "member to y instead of unsetting this one")
    if a.value == "n" and sym.rev_dep is not None \
            and kconfiglib.expr_value(sym.rev_dep):
        return (f"{head}: it is selected by "
                f"{kconfiglib.expr_str(sym.rev_dep)}")
    return head


def check_honoured(kconf: kconfiglib.Kconfig,
                    assignments: list[Assignment]) -> None:
    last: dict[str, Assignment] = {}
    for a in assignments:
        last[a.name] = a
    for a in last.values():
        sym = kconf.syms[a.name]
        if not _same_value(sym, a.value):
            raise ConfigError(_why_dropped(sym, a, last))
