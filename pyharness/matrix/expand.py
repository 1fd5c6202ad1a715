"""Matrix expansion: configurations x unwinders x runtime options x
scenarios -> runs.

Configurations come from the shipped ``configs/``, from every valid
combination of the matrix symbols (``--all``), or from N random valid
ones (``--randconfig N --seed S``). Validity is Kconfig's: each candidate
goes through the same resolution as a user's fragment, so a combination
Kconfig would change is never built.

The unwinder axis comes from ``--kernel-src`` (:func:`unwinder_axis`): the
lab's own unwinder when none is given, else each tree or tarball named
(``lab`` for the lab's own). A tree's runs are ids prefixed with its label,
``linux-6.12/pkvm-nvhe-bug-cpu0``; the lab's keep their plain ids.
"""

from __future__ import annotations

import fnmatch
import itertools
import os
import random
import tempfile
from collections import Counter
from pathlib import Path
from typing import Sequence

from pyharness.builder.kernelsrc import KernelSource, open_source, source_name
from pyharness.kconfig import resolve as kconfig
from pyharness.errors import ConfigError, HarnessError
from pyharness.files import write_if_changed
from pyharness.paths import build_base
from pyharness.run.spec import LAB, LAB_UNWINDER, MODES, RunSpec, Unwinder, run_id

# The matrix symbols and the values --all tries for each.
PAGE_SIZES = ("ARM64_4K_PAGES", "ARM64_16K_PAGES", "ARM64_64K_PAGES")
VA_CHOICES = ("ARM64_VA_BITS_36", "ARM64_VA_BITS_39", "ARM64_VA_BITS_42",
              "ARM64_VA_BITS_47", "ARM64_VA_BITS_48")
OPTIMIZE = ("CC_OPTIMIZE_FOR_PERFORMANCE", "CC_OPTIMIZE_FOR_SIZE")
CPU_COUNTS_ALL = (1, 4)
# The toolchain symbols: --all cycles through their combinations across the
# memory/debug combinations (so each compiler and hardening choice meets
# every page size, VA size and stacktrace option) instead of multiplying
# the matrix by eight; --randconfig draws them freely.
COMPILERS = ("CC_IS_GCC", "CC_IS_CLANG")
TOOLCHAIN_VARIANTS = tuple(
    {compiler: "y", "ARM64_PTR_AUTH_KERNEL": pac, "ARM64_BTI_KERNEL": bti}
    for compiler in COMPILERS for pac in "ny" for bti in "ny")
# --randconfig stops looking after this many draws in a row gave nothing new
# (there are only a few thousand valid configurations).
RANDCONFIG_GIVE_UP = 20_000


def _fragment(assignments: dict[str, str]) -> str:
    lines = []
    for name, value in assignments.items():
        lines.append(f"# CONFIG_{name} is not set" if value == "n"
                     else f"CONFIG_{name}={value}")
    return "\n".join(lines) + "\n"


def _name(resolved: kconfig.ResolvedConfig, prefix: str) -> str:
    s = resolved.summary
    parts = [prefix, f"{s.page_size_kb}k", f"va{s.va_bits}",
             "kaslr" if s.kaslr else "nokaslr",
             "pst" if s.protected_stacktrace else ("dbg" if s.el2_debug else "nodbg"),
             "os" if s.optimize == "-Os" else "o2", f"cpus{s.nr_cpus}"]
    parts += [part for part, on in (("clang", s.compiler == "clang"), ("pac", s.pac_ret),
                                    ("bti", s.bti)) if on]
    return "-".join(parts)


class _Candidates:
    """Tries candidate fragments in a scratch directory of this process's own
    (another process generating into the same ``out_dir`` never sees it) and
    publishes the valid ones into ``out_dir`` atomically, writing only what
    is not already there: a read-only directory that holds them all will do."""

    def __init__(self, out_dir: Path, prefix: str) -> None:
        self.out_dir, self.prefix = out_dir, prefix
        self._scratch = tempfile.TemporaryDirectory(prefix="pyharness-candidates-")
        self._tried: dict[tuple[tuple[str, str], ...], Path | None] = {}

    def __enter__(self) -> _Candidates:
        return self

    def __exit__(self, *_exc: object) -> None:
        self._scratch.cleanup()

    def resolve(self, assignments: dict[str, str]) -> Path | None:
        """The published fragment of a candidate, or None if Kconfig does not
        honour all of it."""
        key = tuple(assignments.items())
        if key not in self._tried:
            self._tried[key] = self._try(assignments)
        return self._tried[key]

    def _try(self, assignments: dict[str, str]) -> Path | None:
        scratch = Path(self._scratch.name) / f"candidate-{len(self._tried)}"
        scratch.write_text(_fragment(assignments))
        try:
            resolved = kconfig.resolve(scratch)
        except ConfigError:
            return None
        path = self.out_dir / f"{_name(resolved, self.prefix)}_defconfig"
        try:
            # exist_ok: another process generating into the same directory
            # may make it between a check and the mkdir.
            self.out_dir.mkdir(parents=True, exist_ok=True)
            write_if_changed(path, _fragment(assignments))
        except OSError as err:
            raise HarnessError(f"cannot write the generated configurations into "
                               f"{self.out_dir}: the directory is not writable "
                               f"({err.strerror}); pass a writable --out DIR") from None
        return path


def all_combinations() -> list[dict[str, str]]:
    """Every assignment of the matrix symbols, valid or not.

    Within each (page size, EL2 debug, stacktrace option) group the
    toolchain variants are taken in turn. The combinations Kconfig rejects
    (a VA size the page size cannot have) are whole runs of eight in that
    order, so every variant still meets every page size and stacktrace
    option among the valid ones."""
    out = []
    taken: dict[tuple[str, str, str], int] = {}
    for page, va, kaslr, debug, pst, opt, cpus in itertools.product(
            PAGE_SIZES, VA_CHOICES, "yn", "yn", "yn", OPTIMIZE, CPU_COUNTS_ALL):
        turn = taken.get((page, debug, pst), 0)
        taken[page, debug, pst] = turn + 1
        out.append({"KVM": "y", page: "y", va: "y", "RANDOMIZE_BASE": kaslr,
                    "NVHE_EL2_DEBUG": debug, "PROTECTED_NVHE_STACKTRACE": pst,
                    opt: "y", "NR_CPUS": str(cpus),
                    **TOOLCHAIN_VARIANTS[turn % len(TOOLCHAIN_VARIANTS)]})
    return out


def enumerate_all(out_dir: Path) -> list[Path]:
    """A fragment per valid combination of the matrix symbols (--all)."""
    with _Candidates(out_dir, "all") as candidates:
        paths = [candidates.resolve(a) for a in all_combinations()]
    return sorted({p for p in paths if p is not None})


def random_configs(count: int, seed: int, out_dir: Path) -> list[Path]:
    """``count`` distinct random valid configurations, reproducible from seed."""
    rng = random.Random(seed)
    found: list[Path] = []
    misses = 0
    with _Candidates(out_dir, f"rand{seed}") as candidates:
        while len(found) < count:
            if misses > RANDCONFIG_GIVE_UP:
                raise HarnessError(f"--randconfig {count}: found only {len(found)} distinct "
                                   "valid configurations; ask for fewer")
            candidate = {"KVM": "y", rng.choice(PAGE_SIZES): "y", rng.choice(VA_CHOICES): "y",
                         "RANDOMIZE_BASE": rng.choice("yn"),
                         "NVHE_EL2_DEBUG": rng.choice("yn"),
                         "PROTECTED_NVHE_STACKTRACE": rng.choice("yn"),
                         rng.choice(OPTIMIZE): "y", "NR_CPUS": str(rng.randint(1, 16)),
                         **rng.choice(TOOLCHAIN_VARIANTS)}
            path = candidates.resolve(candidate)
            if path is not None and path not in found:
                found.append(path)
                misses = 0
            else:
                misses += 1
    return found


def select_configs(patterns: list[str] | None) -> list[Path]:
    """Shipped configs whose name matches one of the glob patterns."""
    shipped = kconfig.named_configs()
    if not patterns:
        return shipped
    chosen = []
    for pattern in patterns:
        path = Path(pattern)
        if path.is_file():
            chosen.append(path)
            continue
        matches = [p for p in shipped
                   if fnmatch.fnmatchcase(kconfig.config_name(p), pattern)]
        if not matches:
            names = ", ".join(kconfig.config_name(p) for p in shipped)
            raise HarnessError(f"--configs {pattern!r} matches no shipped config "
                               f"({names}) and is not a file")
        chosen.extend(matches)
    return list(dict.fromkeys(chosen))


def _glob_filter(values: list[str], patterns: list[str] | None, what: str) -> list[str]:
    if not patterns:
        return values
    out = [v for v in values if any(fnmatch.fnmatchcase(v, p) for p in patterns)]
    unknown = [p for p in patterns if not any(fnmatch.fnmatchcase(v, p) for v in values)]
    if unknown:
        raise HarnessError(f"unknown {what} {', '.join(map(repr, unknown))}; "
                           f"known: {', '.join(values)}")
    return out


def cpus_for(nr_cpus: int) -> list[int]:
    """CPU 0, and the last CPU when there is more than one."""
    return [0] if nr_cpus == 1 else [0, nr_cpus - 1]


# How many KASLR seeds one configuration's runs share. Unicorn translates
# code per virtual address, so a KASLR offset a worker has not run yet
# costs the translation of every host function the run reaches again
# (about 2.5 ms of a 4 ms run). Eight per configuration keep that to a few
# runs per worker and still place each image at eight offsets (nine
# configurations: 72 across the default matrix); --seed picks another set.
KASLR_SEEDS_PER_CONFIG = 8


def kaslr_seed_for(base_seed: int, config_name: str, run_key: str) -> int:
    """A run's KASLR seed, stable for a given base seed and run: one of
    :data:`KASLR_SEEDS_PER_CONFIG` seeds of its configuration, picked by the
    run. (Seeded with the keys' UTF-8 bytes, as a str seed is; a file name
    that is not UTF-8 keeps its raw bytes.)"""
    def key(text: str) -> bytes:
        return f"{base_seed}:{text}".encode("utf-8", "surrogateescape")

    slot = random.Random(key(run_key)).randrange(KASLR_SEEDS_PER_CONFIG)
    return random.Random(key(f"{config_name}#{slot}")).randrange(1 << 32)


def unwinder_axis(kernel_srcs: Sequence[str], out_dir: Path | None = None) -> list[Unwinder]:
    """``--kernel-src`` values -> the unwinder axis, in the order given,
    each tree checked (and each tarball extracted) once; none: the lab's
    only. A tree named ``NAME=PATH`` is labelled NAME; any other
    ``linux-<generation>``, and two of one generation get their names
    appended (``linux-6.12-linux``, ``linux-6.12-linux-source-6.12``), so
    every run id stays unique. One name for two trees, or two names for
    one tree, is bad input."""
    if not kernel_srcs:
        return [LAB_UNWINDER]
    base = build_base(out_dir)
    sources: dict[str, KernelSource | None] = {}
    for value in kernel_srcs:
        source = open_source(value, base)
        key = os.path.realpath(source.given) if source else LAB    # a link is the same tree
        earlier = sources.setdefault(key, source)
        if source and earlier and earlier.name != source.name:
            raise HarnessError(f"--kernel-src {value}: {source.given} is given twice, "
                               f"{_named(earlier)} and {_named(source)}; give each tree once")
    named = Counter(s.name for s in sources.values() if s is not None and s.name)
    twice = [name for name, count in named.items() if count > 1]
    if twice:
        raise HarnessError(f"--kernel-src: the name {twice[0]} is given to "
                           f"{named[twice[0]]} trees; give each tree a name of its own")
    generations = Counter(s.generation for s in sources.values()
                          if s is not None and not s.name)
    axis: list[Unwinder] = []
    taken = set(named)
    for source in sources.values():
        if source is None:
            axis.append(LAB_UNWINDER)
            continue
        label = source.label
        if not source.name:
            if generations[source.generation] > 1:
                label += f"-{source_name(source.given)}"
            unique, n = label, 2
            while unique in taken:
                unique, n = f"{label}-{n}", n + 1
            label = unique
        taken.add(label)
        axis.append(Unwinder(label, source.given, source.generation))
    return axis


def _named(source: KernelSource) -> str:
    return f"as {source.name}" if source.name else "unnamed"


def expand(configs: list[Path], scenarios: list[str], *,
           scenario_patterns: list[str] | None = None,
           mode_patterns: list[str] | None = None,
           seed: int = 0, unwinders: Sequence[Unwinder] = (LAB_UNWINDER,)) -> list[RunSpec]:
    """The runs of the matrix, in a stable order: each configuration with
    each unwinder next to each other. A run has the same KASLR seed with
    every unwinder, so their consoles compare line by line."""
    modes = _glob_filter(list(MODES), mode_patterns, "mode")
    chosen = _glob_filter(scenarios, scenario_patterns, "scenario")
    runs = []
    for path in configs:
        resolved = kconfig.resolve(path)
        for unwinder, mode, scenario, cpu in itertools.product(
                unwinders, modes, chosen, cpus_for(resolved.summary.nr_cpus)):
            key = run_id(resolved.name, mode, scenario, cpu)
            runs.append(RunSpec.with_unwinder(unwinder, config=str(path),
                                              config_name=resolved.name, mode=mode,
                                              scenario=scenario, cpu=cpu,
                                              kaslr_seed=kaslr_seed_for(seed, resolved.name,
                                                                         key)))
    return runs


def parse_shard(text: str) -> tuple[int, int]:
    """``K/N`` -> (K, N) with 1 <= K <= N."""
    try:
        k_text, n_text = text.split("/")
        k, n = int(k_text), int(n_text)
    except ValueError:
        raise HarnessError(f"--shard {text!r}: expected K/N, for example 1/4") from None
    if n < 1 or not 1 <= k <= n:
        raise HarnessError(f"--shard {text}: K must be between 1 and N (N >= 1)")
    return k, n


def shard(runs: list[RunSpec], k: int, n: int) -> list[RunSpec]:
    """The K-th of N deterministic slices (every N-th run by id); together
    they are exactly all runs. Each keeps the matrix's order."""
    ordered = sorted(runs, key=lambda r: r.id)
    chosen = {run.id for i, run in enumerate(ordered) if i % n == k - 1}
    return [run for run in runs if run.id in chosen]
