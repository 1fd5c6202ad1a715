"""What a worker process does with one step of a mutant: apply, build, run.

Each worker keeps its own copy of the firmware tree (a *slot*, made from
the run's snapshot of the tree the first time the worker needs it) and its
own persistent CMake trees. A step puts the mutant's edit into the slot
(undoing the previous mutant's), builds the configuration through the
normal cache (:func:`pyharness.builder.cache.build` with ``scratch``: only
what the edit touched is recompiled, the image lands in the directory
keyed by the sources' hash, so identical sources never build twice), and
then either compares the image with the unmutated one or runs the step's
run with :func:`pyharness.matrix.worker.execute_spec`, the matrix's own.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path

from pyharness.builder import cache as builder
from pyharness.builder.kernelsrc import MAKEFILE, KernelTree
from pyharness.builder.trees import KEEP_ENV
from pyharness.elf.reader import ElfReader
from pyharness.errors import BuildError, HarnessError
from pyharness.judge.verdict import Verdict
from pyharness.matrix.execute import build_failure_reason
from pyharness.matrix.worker import WorkerSettings, execute_spec
from pyharness.mutate.generate import Mutant
from pyharness.run.record import RunRecord
from pyharness.run.spec import RunSpec

ROOT_ENV = "NVHE_LAB_ROOT"
# What a snapshot of the lab tree holds: everything the build reads.
TREE_ENTRIES = ("Kconfig", "CMakeLists.txt", "configs", "csrc", "cmake", "pyharness")


@dataclass(frozen=True)
class Step:
    """One task for a worker: a run of a mutant (or of the unmutated tree
    when ``mutant`` is None)."""

    mutant: Mutant | None
    spec: RunSpec
    snapshot: str            # the unmutated tree every slot is copied from
    slots: str               # where workers make their slots
    out_dir: str             # keyed build directories of the mutants' images
    # The unmutated image's fingerprint for this configuration: when the
    # mutant's image has the same, the run is not made (it cannot differ).
    same_as: str | None = None
    # --kernel-src: the unmutated copy of the kernel tree's files; the
    # mutants edit a copy of it, the lab tree stays as it is.
    kernel: str | None = None


@dataclass(frozen=True)
class StepResult:
    kind: str                # "run", "compile-error", "same-image", "error"
    record: RunRecord | None = None
    message: str = ""        # compile error: its first error line; error: what failed
    detail: str = ""         # compile error: the compiler's output (tail)
    build_s: float = 0.0


def snapshot_tree(root: Path, dest: Path) -> Path:
    """Copy what the build reads from ``root`` to ``dest``."""
    dest.mkdir(parents=True)
    for name in TREE_ENTRIES:
        source = root / name
        if source.is_dir():
            shutil.copytree(source, dest / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        elif source.is_file():
            shutil.copy2(source, dest / name)
    return dest


# What the compiler may read of a tree besides its build files: its
# arch/arm64/include (the one -I into the tree: any header there can be
# included), and the headers beside the two compiled files (a quoted
# #include searches there first).
TREE_INCLUDE = "arch/arm64/include"


def snapshot_kernel(tree: KernelTree, dest: Path) -> Path:
    """Copy what the build may read of a kernel tree: its Makefile, its
    build files, its ``arch/arm64/include`` and the headers beside the
    compiled files (the build key follows every file the compile read, so
    a copy of only the known files failed on any other header)."""
    names = {MAKEFILE, *(str(p.relative_to(tree.root)) for p in tree.build_files)}
    for directory, _, files in os.walk(tree.root / TREE_INCLUDE):
        names.update(os.path.relpath(os.path.join(directory, f), tree.root) for f in files)
    for source in tree.compiled_files:
        names.update(str(p.relative_to(tree.root)) for p in source.parent.glob("*.h"))
    for name in sorted(names):
        if not (tree.root / name).is_file():        # a dangling link, a socket...
            continue
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(tree.root / name, dest / name)
    return dest


def image_fingerprint(elf: Path) -> str:
    """Hash of what a run can observe of an image: its loaded segments and
    its symbol table (the oracle's symbols). Debug sections are left out:
    they say where code came from, not what it does."""
    reader = ElfReader.open(elf, hint="rebuild it")
    h = hashlib.sha256()
    for vaddr, memsz, data, flags in reader.load_segments():
        h.update(f"{vaddr:x}:{memsz:x}:{flags:x}:".encode())
        h.update(data)
    for sym in sorted(reader.symbols(), key=lambda s: (s.address, s.name)):
        h.update(f"{sym.name}:{sym.address:x}:{sym.size:x}:{sym.kind}:{sym.is_global}\n".encode())
    return h.hexdigest()


class Slot:
    """One worker's copy of the tree (and of the kernel tree's files with
    --kernel-src), with at most one mutant applied."""

    def __init__(self, snapshot: Path, base: Path, kernel: Path | None = None) -> None:
        self.snapshot, self.kernel_snapshot = snapshot, kernel
        self.tree = base / "tree"
        self.kernel = base / "kernel" if kernel is not None else None
        self.scratch = base / "scratch"
        if base.exists():
            shutil.rmtree(base)
        shutil.copytree(snapshot, self.tree, symlinks=True)
        if kernel is not None:
            shutil.copytree(kernel, base / "kernel", symlinks=True)
        self.scratch.mkdir(parents=True)
        self.applied: Mutant | None = None

    def _roots(self, mutant: Mutant) -> tuple[Path, Path]:
        """(the unmutated file's tree, the slot's copy) for a mutant."""
        if mutant.tree == "lab":
            return self.snapshot, self.tree
        assert self.kernel_snapshot is not None and self.kernel is not None
        return self.kernel_snapshot, self.kernel

    def apply(self, mutant: Mutant | None) -> None:
        if mutant == self.applied:
            return
        touched = []
        if self.applied is not None:
            original, copy = self._roots(self.applied)
            text = (original / self.applied.file).read_text(encoding="utf-8")
            (copy / self.applied.file).write_text(text, encoding="utf-8")
            touched.append(copy / self.applied.file)
        self.applied = None
        if mutant is not None:
            original, copy = self._roots(mutant)
            text = (original / mutant.file).read_text(encoding="utf-8")
            (copy / mutant.file).write_text(mutant.edit.apply(text), encoding="utf-8")
            touched.append(copy / mutant.file)
            self.applied = mutant
        self._newer_than_outputs(touched)

    def _newer_than_outputs(self, paths: list[Path]) -> None:
        """Ninja rebuilds what is older than its sources by mtime: make each
        changed file strictly newer than everything built so far (the
        kernel's file clock is coarse, a few ms)."""
        newest = 0
        for directory, _, files in os.walk(self.scratch):
            for name in files:
                try:
                    newest = max(newest, os.stat(os.path.join(directory, name)).st_mtime_ns)
                except OSError:
                    pass
        for path in paths:
            while path.stat().st_mtime_ns <= newest:
                time.sleep(0.002)
                os.utime(path)


_slot: Slot | None = None


def _slot_for(step: Step) -> Slot:
    global _slot
    kernel = Path(step.kernel) if step.kernel else None
    if _slot is None or _slot.snapshot != Path(step.snapshot) or _slot.kernel_snapshot != kernel:
        _slot = Slot(Path(step.snapshot), Path(step.slots) / f"worker-{os.getpid()}", kernel)
    return _slot


def compiler_error(output: str, tree: Path) -> str:
    """The compiler's first error line, with paths relative to the tree."""
    lines = [line.strip() for line in output.splitlines()]
    first = next((line for line in lines if "error:" in line), None)
    if first is None:
        return build_failure_reason(output)
    return first.replace(f"{tree}/", "")


def run_step(step: Step, settings: WorkerSettings) -> StepResult:
    """In a worker: apply the step's mutant, build, compare or run."""
    slot = _slot_for(step)
    slot.apply(step.mutant)
    os.environ[ROOT_ENV] = str(slot.tree)
    # Every mutant image stays (build/mutate): a run must find the image its
    # step built, and a later mutation run reuses them all.
    os.environ[KEEP_ENV] = "0"
    spec = step.spec
    if slot.kernel is not None:
        spec = replace(spec, kernel_src=str(slot.kernel))
    started = time.monotonic()
    try:
        built = builder.build(spec.config, out_dir=step.out_dir, jobs=1,
                              kernel_src=spec.kernel_src, scratch=slot.scratch)
    except BuildError as err:
        where = slot.kernel if step.mutant is not None and step.mutant.tree != "lab" \
            else slot.tree
        return StepResult("compile-error", message=compiler_error(str(err), where),
                          detail=str(err), build_s=time.monotonic() - started)
    except HarnessError as err:     # the build directory, not the mutant: no verdict
        return StepResult("error", message=f"{spec.config_name}: {err}",
                          build_s=time.monotonic() - started)
    except OSError as err:
        return StepResult("error", message=f"{spec.config_name}: cannot build: {err}",
                          build_s=time.monotonic() - started)
    build_s = time.monotonic() - started
    if step.same_as is not None and image_fingerprint(built.elf) == step.same_as:
        return StepResult("same-image", build_s=build_s)
    record = execute_spec(spec, settings)
    record.spec = step.spec       # named as planned (the kernel tree it was given)
    if is_harness_error(record):
        return StepResult("error", message=f"{record.id}: {record.reasons[0]}",
                          build_s=build_s)
    return StepResult("run", record=record, build_s=build_s)


def is_harness_error(record: RunRecord) -> bool:
    """A run that never ran: the harness could not start it (a missing
    image, an internal error). A run that ran and ended in an error (the
    emulator stopped on an exception the mutant caused) is judged."""
    return record.verdict == Verdict.ERROR and record.instructions == 0


def lost_step(step: Step, reason: str) -> StepResult:
    """The result of a step whose worker died or hung: the harness's
    failure, not a verdict on the mutant."""
    return StepResult("error", message=f"{step.spec.id}: {reason}")
