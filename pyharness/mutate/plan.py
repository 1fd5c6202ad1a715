"""Which runs can kill a mutant, and in which order to try them.

Narrowing (it never drops a run that could tell the mutant apart):

- a configuration in which the mutated code is not compiled cannot see
  it: a mutant under ``#ifdef CONFIG_PROTECTED_NVHE_STACKTRACE`` only
  matters for configurations with the option (and one in its ``#else``
  only for those without). Only ``CONFIG_`` conditions narrow; any other
  ``#if`` keeps every configuration;
- at run time (pyharness.mutate.execute), a configuration whose mutant
  image is the same as the unmutated one (loaded bytes and symbols) cannot
  fail where the unmutated image passed: its runs are skipped;
- a run that already fails without any mutation cannot kill anything: it
  is left out of every plan (the baseline);
- a run that never executes the mutated function's code in the unmutated
  image (out-of-line or inlined anywhere) cannot tell the mutant apart
  (pyharness.mutate.coverage has the argument); ``--all-runs`` keeps them.

Order (it only decides how soon a kill is found, and which run is named):
configurations compiled with the mutated code's mode first (protected
stacktrace configurations for protected-only code), then runs of the mode
the mutated function serves, then the scenarios the target names as its
likeliest killers, then the rest as the matrix lists them; CPU 0 before
the last CPU.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Sequence

from pyharness.kconfig.resolve import ResolvedConfig
from pyharness.mutate.baseline import Baseline
from pyharness.mutate.coverage import Ranges, intersects
from pyharness.mutate.generate import Mutant
from pyharness.mutate.lexer import Condition
from pyharness.run.spec import RunSpec

# Symbols the lab build never defines: code under #ifdef of one of them is
# not compiled, code under #ifndef always is.
UNDEFINED_IN_LAB_BUILD = frozenset({"NVHE_KERNEL_UNWINDER"})


@dataclass(frozen=True)
class ConfigRuns:
    """A configuration's runs for one mutant, in the order to try them."""

    config: str          # the config file, as in RunSpec.config
    name: str
    specs: tuple[RunSpec, ...]


def compiled_in(conditions: Sequence[Condition], config: ResolvedConfig,
                tree: str = "lab") -> bool:
    """Whether code under these conditions is compiled in this configuration
    (True when a condition cannot be decided here)."""
    for condition in conditions:
        symbol = condition.symbol
        if symbol is None:
            continue
        if symbol.startswith("CONFIG_"):
            defined = config.values.get(symbol[len("CONFIG_"):], "n") != "n"
        elif tree == "lab" and symbol in UNDEFINED_IN_LAB_BUILD:
            defined = False
        else:
            continue
        if defined != condition.want:
            return False
    return True


def _scenario_rank(scenario: str, focus: Sequence[str]) -> int:
    for rank, pattern in enumerate(focus):
        if fnmatch.fnmatchcase(scenario, pattern):
            return rank
    return len(focus)


def order_runs(mutant: Mutant, specs: Sequence[RunSpec], scenarios: Sequence[str]) -> list[RunSpec]:
    """One configuration's runs in the order to try them on this mutant."""
    position = {name: i for i, name in enumerate(scenarios)}

    def key(spec: RunSpec) -> tuple[int, ...]:
        mode_first = 0 if mutant.mode in (None, spec.mode) else 1
        return (mode_first, _scenario_rank(spec.scenario, mutant.focus),
                position.get(spec.scenario, len(position)), spec.cpu, spec.mode != "nvhe")

    return sorted(specs, key=key)


@dataclass(frozen=True)
class MutantPlan:
    """A mutant's configurations and runs, and what was left out."""

    configs: tuple[ConfigRuns, ...]
    compiled: int        # selected configurations that compile the mutated code
    skipped: int         # runs left out because they never execute its function


def _reaches(mutant: Mutant, functions: dict[str, Ranges | None],
             executed: Ranges | None) -> bool:
    """Whether a run (that executed ``executed``) can reach the mutant's code."""
    if mutant.function is None or executed is None:
        return True
    code = functions.get(mutant.function)
    return code is None or intersects(code, executed)


def plan_mutant(mutant: Mutant, configs: Sequence[ResolvedConfig], baseline: Baseline,
                scenarios: Sequence[str], all_runs: bool = False) -> MutantPlan:
    """The configurations (and their runs) that can see the mutant, best
    killers first: configurations that compile its code, runs that passed
    in the baseline and (unless ``all_runs``) executed its function."""
    chosen = [c for c in configs if compiled_in(mutant.conditions, c, mutant.tree)]

    def config_key(config: ResolvedConfig) -> int:
        protected = config.enabled("PROTECTED_NVHE_STACKTRACE")
        if mutant.mode == "protected":
            return 0 if protected else 1
        # Without a mode, configurations with the protected stacktrace first:
        # both modes' dumps are real there.
        return 0 if protected or mutant.mode == "nvhe" else 1

    out, skipped = [], 0
    for config in sorted(chosen, key=config_key):
        specs = baseline.passing.get(config.name, [])
        if not all_runs:
            functions = baseline.functions.get(config.name, {})
            reaching = [s for s in specs
                        if _reaches(mutant, functions, baseline.executed.get(s.id))]
            skipped += len(specs) - len(reaching)
            specs = reaching
        if specs:
            out.append(ConfigRuns(config=specs[0].config, name=config.name,
                                  specs=tuple(order_runs(mutant, specs, scenarios))))
    return MutantPlan(tuple(out), len(chosen), skipped)
