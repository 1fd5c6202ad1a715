"""One ``pyharness mutate`` run, from options to verdicts (the CLI, the
benchmark and the tests call :func:`prepare` then :func:`execute`)."""

from __future__ import annotations

import fnmatch
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Sequence

from pyharness.builder import cache as builder
from pyharness.builder import kernelsrc
from pyharness.errors import BuildError, HarnessError
from pyharness.kconfig import resolve as kconfig
from pyharness.kconfig.resolve import config_name
from pyharness.matrix.execute import default_jobs
from pyharness.matrix.expand import expand
from pyharness.mutate import equivalents
from pyharness.mutate.baseline import Baseline, lab_root, run_baseline
from pyharness.mutate.execute import Outcome, run_mutants
from pyharness.mutate.generate import LAB_TARGETS, Mutant, Target, mutants_of, select_files
from pyharness.mutate.plan import plan_mutant
from pyharness.mutate.scratch import scratch_dir
from pyharness.mutate.report import Counts, Verdict, classify, count
from pyharness.mutate.worker import (compiler_error, is_harness_error, snapshot_kernel,
                                     snapshot_tree)
from pyharness.paths import build_base, source_root
from pyharness.platform.results import check_budgets
from pyharness.run.spec import DEFAULT_MAX_INSTRUCTIONS, DEFAULT_TIMEOUT_S
from pyharness.run.scenarios import list_scenarios
from pyharness.run.spec import LAB_UNWINDER, Unwinder

# The mutants' images and the run's scratch copies, under the build directory.
MUTATE_DIR = "mutate"

KERNEL_TARGETS = (
    Target(kernelsrc.COMMON_H, focus=LAB_TARGETS[0].focus),
    Target(kernelsrc.NVHE_H, focus=LAB_TARGETS[1].focus),
    Target(kernelsrc.HYP_STACKTRACE_C, focus=LAB_TARGETS[2].focus, modes=LAB_TARGETS[2].modes),
    Target(kernelsrc.HOST_STACKTRACE_C, focus=LAB_TARGETS[5].focus,
           modes=((r"pkvm", "protected"), (r"hyp_|kvm_nvhe_dump_backtrace_entry", "nvhe"))),
)


@dataclass(frozen=True)
class Options:
    configs: tuple[str, ...] = ()        # names or files; default: every shipped one
    files: tuple[str, ...] = ()          # globs over the mutated files
    only: tuple[str, ...] = ()           # mutant ids or keys
    scenarios: tuple[str, ...] = ()      # globs: narrow every plan (tests, CI)
    modes: tuple[str, ...] = ()
    kernel_src: str | Path | None = None  # a tree or tarball; None or "lab": the lab's
    all_runs: bool = False               # no narrowing by the code a run executes
    equivalents: Path | None = None
    jobs: int | None = None
    out_dir: Path | str | None = None
    seed: int = 0
    timeout_s: float = DEFAULT_TIMEOUT_S
    max_instructions: int = DEFAULT_MAX_INSTRUCTIONS


@dataclass
class Prepared:
    """The mutants chosen, and what they are checked against."""

    options: Options
    tree: str                            # "lab" or "linux-6.12"...
    root: Path                           # the tree the mutants edit (never written)
    kernel: kernelsrc.KernelTree | None  # --kernel-src: the tree (root is its top)
    files: list[str]
    mutants: list[Mutant]                # the chosen ones, in id order
    generated: int                       # before --files / --only
    listed: dict[str, equivalents.Equivalent]
    equivalents_path: Path
    stale: list[equivalents.Equivalent] = field(default_factory=list)


@dataclass
class Result:
    verdicts: list[Verdict]
    counts: Counts
    baseline: Baseline
    configs: list[str]
    runs_per_mutant: int
    wall_seconds: float
    mutant_seconds: float
    jobs: int


def _select_only(mutants: list[Mutant], only: Sequence[str]) -> list[Mutant]:
    if not only:
        return mutants
    by_id = {m.id: m for m in mutants}
    by_key = {m.key: m for m in mutants}
    unknown = [x for x in only if x not in by_id and x not in by_key]
    if unknown:
        raise HarnessError(f"--only {' '.join(unknown)}: no such mutant id or key "
                           "(`pyharness mutate --list` lists them)")
    chosen = {(by_id.get(x) or by_key[x]).id for x in only}
    return [m for m in mutants if m.id in chosen]


def prepare(options: Options) -> Prepared:
    """Generate the mutants and read the equivalents list (no build)."""
    source = kernelsrc.open_source(options.kernel_src, build_base(options.out_dir))
    tree = source.tree if source is not None else None
    if tree is not None:
        name, root, targets, prefix = f"linux-{tree.generation}", tree.root, KERNEL_TARGETS, "k"
    else:
        name, root, targets, prefix = "lab", source_root(), LAB_TARGETS, "m"
    every = mutants_of(name, root, targets, prefix)
    files = [t.path for t in targets]
    chosen = _select_only(select_files(every, options.files, files), options.only)
    path = options.equivalents or equivalents.default_path(source_root(), name)
    listed = equivalents.load(path, required=options.equivalents is not None)
    keys = {m.key for m in every}
    in_scope = [f for f in files if not options.files
                or any(fnmatch.fnmatchcase(f, p) for p in options.files)]
    stale = [e for e in listed.values()
             if e.key not in keys and e.key.rsplit(":", 2)[0] in in_scope]
    return Prepared(options=options, tree=name, root=root, kernel=tree, files=files,
                    mutants=chosen, generated=len(every), listed=listed,
                    equivalents_path=path, stale=stale)


def execute(prepared: Prepared, on_verdict: Callable[[Verdict], None] | None = None,
            on_note: Callable[[str], None] | None = None) -> Result:
    """Baseline, then every chosen mutant; ``on_verdict`` gets each mutant's
    verdict in id order as soon as it and all before it are decided."""
    options = prepared.options
    note = on_note or (lambda text: None)
    check_budgets(options.max_instructions, options.timeout_s)
    jobs = options.jobs or default_jobs()
    if jobs < 1:
        raise HarnessError(f"-j {jobs}: the number of workers must be at least 1")
    started = time.monotonic()
    base = build_base(options.out_dir)
    with scratch_dir(base / MUTATE_DIR) as tmp:     # not /tmp: a killed run's is removed
        paths = [kconfig.find_config(c) for c in options.configs] or kconfig.named_configs()
        configs = [kconfig.resolve(p) for p in paths]
        try:
            snapshot = snapshot_tree(source_root(), Path(tmp) / "tree")
            kernel = unwinder = None
            if prepared.kernel is not None:
                kernel = snapshot_kernel(prepared.kernel, Path(tmp) / "kernel")
                unwinder = Unwinder(prepared.tree, str(kernel), prepared.kernel.generation)
        except OSError as err:      # shutil.Error too: a full or read-only disk
            raise HarnessError(f"cannot copy the trees to mutate into {tmp}: "
                               f"{str(err)[:200]}; pass --out DIR on a writable disk with "
                               "room") from None
        with lab_root(snapshot):
            scenarios = [s.name for s in list_scenarios(_unmutated_build(paths[0], base, kernel))]
            specs = [replace(s, max_instructions=options.max_instructions,
                             timeout_s=options.timeout_s)
                     for s in expand(paths, scenarios,
                                     scenario_patterns=list(options.scenarios) or None,
                                     mode_patterns=list(options.modes) or None,
                                     seed=options.seed, unwinders=(unwinder or LAB_UNWINDER,))]
        note(f"baseline: {len(specs)} runs of the unmutated tree in {len(configs)} "
             f"configuration{'s' if len(configs) != 1 else ''}")
        baseline = run_baseline(specs, snapshot, jobs, base)
        unmade = [r for r in baseline.failing if is_harness_error(r)]
        if unmade:          # not the tree's failures: no plan can be made without them
            raise HarnessError(f"baseline: {len(unmade)} run{'s' if len(unmade) != 1 else ''} "
                               f"could not be made ({unmade[0].id}: {unmade[0].reasons[0]}); "
                               "no mutant was measured")
        for record in baseline.failing:
            note(f"baseline: {record.id} fails without any mutant ({record.reasons[:1]}): "
                 "left out of every plan")
        note(f"baseline: {len(specs) - len(baseline.failing)} runs passed in "
             f"{baseline.seconds:.1f} s")

        plans = [(m, plan_mutant(m, configs, baseline, scenarios, options.all_runs))
                 for m in prepared.mutants]
        printer = _InOrder([m.id for m in prepared.mutants], prepared.listed, on_verdict)
        mutants_started = time.monotonic()
        outcomes = run_mutants(plans, baseline, snapshot, base / MUTATE_DIR, jobs,
                               printer.done, kernel=kernel, slots=Path(tmp) / "slots")
        mutant_seconds = time.monotonic() - mutants_started
    verdicts = classify(outcomes, prepared.listed)
    return Result(verdicts=verdicts, counts=count(verdicts), baseline=baseline,
                  configs=[c.name for c in configs],
                  runs_per_mutant=sum(len(v) for v in baseline.passing.values()),
                  wall_seconds=time.monotonic() - started, mutant_seconds=mutant_seconds,
                  jobs=jobs)


def _unmutated_build(config: Path, base: Path, kernel: Path | None) -> Path:
    """The first configuration's unmutated image (its scenarios are listed
    from it); a tree that does not build is one line, not the compiler's dump."""
    try:
        return builder.build(config, out_dir=base, kernel_src=kernel).elf
    except BuildError as err:
        where = kernel if kernel is not None else source_root()
        raise HarnessError(f"the unmutated {'tree' if kernel else 'firmware'} does not build "
                           f"for {config_name(config)}: {compiler_error(str(err), where)}; "
                           "fix that before measuring mutants (`pyharness build` shows the "
                           "compiler's output)") from None


class _InOrder:
    """Hands verdicts on in id order while mutants finish in any order."""

    def __init__(self, ids: list[str], listed: dict[str, equivalents.Equivalent],
                 sink: Callable[[Verdict], None] | None) -> None:
        self.ids, self.listed, self.sink = ids, listed, sink
        self.waiting: dict[str, Outcome] = {}
        self.next = 0

    def done(self, outcome: Outcome) -> None:
        self.waiting[outcome.mutant.id] = outcome
        while self.next < len(self.ids) and self.ids[self.next] in self.waiting:
            ready = self.waiting.pop(self.ids[self.next])
            self.next += 1
            if self.sink is not None:
                self.sink(classify([ready], self.listed)[0])
