"""pytest plugin: the default matrix as tests, one per run.

Each shipped configuration file (``configs/*_defconfig``) is collected as a
test file whose tests are its runs: both modes x every scenario x CPU 0
and the last CPU, with the matrix's KASLR seeds. The test ids are the
matrix ids, so ``pytest -n auto configs`` is the parallel matrix::

    configs/pkvm_16k_defconfig::pkvm_16k-protected-stack_overflow-cpu0

Each test calls :func:`~pyharness.run.runner.run_one` (building through the
same cache as the CLI) and fails with the run's reasons and the command
that reproduces it. The tests carry the ``matrix`` marker
(``-m "not matrix"`` leaves them out); ``--matrix-seed`` changes the base
of the KASLR seeds as ``pyharness matrix --seed`` does.

``--kernel-src [NAME=]PATH`` (repeatable; default ``$PYHARNESS_KERNEL_SRC``)
runs the same tests with a kernel tree's nVHE unwinder, as ``pyharness
matrix --kernel-src`` does: ``lab`` among the values keeps the lab's own, and
a tree's tests are named like its runs::

    configs/pkvm_defconfig::linux-6.12/pkvm-protected-stack_overflow-cpu0

and carry which tree ran as user properties (``kernel_src``, ``tree.commit``,
``tree.dirty``, ``tree.diff_sha256``... as in ``pyharness matrix --junit``).

``--qemu`` collects the real-kernel runs instead (``pyharness matrix
--qemu``): each tree's own kernel, built by kbuild for the configuration,
booted under QEMU once per mode and real-kernel scenario (default trees:
the Debian linux-source tarballs installed)::

    pytest --qemu configs/pkvm_defconfig
    configs/pkvm_defconfig::qemu-linux-6.12/pkvm-protected-stack_overflow-cpu0

Registered through the ``pytest11`` entry point ``pyharness``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import pytest

if TYPE_CHECKING:
    from pyharness.run.spec import RunSpec
    from pyharness.run.record import RunRecord

MARKER = "matrix"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("pyharness", "pyharness matrix")
    group.addoption("--matrix-seed", type=int, default=0, metavar="S",
                    help="base of the matrix runs' KASLR seeds (as pyharness matrix --seed)")
    group.addoption("--kernel-src", action="append", default=[], metavar="[NAME=]PATH",
                    dest="kernel_src",
                    help="run the matrix tests with the nVHE unwinder of a kernel tree or "
                         "a Debian linux-source tarball (as pyharness matrix --kernel-src; "
                         "repeatable, `lab` for the lab's own; default "
                         "$PYHARNESS_KERNEL_SRC, else the lab's)")
    group.addoption("--qemu", action="store_true", default=False, dest="pyharness_qemu",
                    help="collect each configuration's real-kernel runs under QEMU instead "
                         "(as pyharness matrix --qemu; the trees are --kernel-src, default "
                         "the Debian linux-source tarballs installed)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{MARKER}: one run of the pyharness matrix "
                                       "(configuration x mode x scenario x CPU)")


def _is_shipped_config(file_path: Path) -> bool:
    if not file_path.name.endswith("_defconfig"):
        return False
    from pyharness.errors import HarnessError
    from pyharness.paths import configs_dir

    try:
        return file_path.resolve().parent == configs_dir().resolve()
    except HarnessError:
        return False


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if _is_shipped_config(file_path):
        return DefconfigFile.from_parent(parent, path=file_path)
    return None


class MatrixRunFailed(Exception):
    """A run whose verdict is not ``pass``; the message is the report."""


def failure_message(record: RunRecord) -> str:
    """The verdict, each reason, and the command that reproduces the run."""
    from pyharness.terminal import visible

    lines = [f"verdict {record.verdict}:"]
    lines += [f"  {reason}" for reason in record.reasons or ["no reason given"]]
    lines.append(f"reproduce: {record.command}")
    return visible("\n".join(lines), multiline=True)


class DefconfigFile(pytest.File):
    """A shipped configuration: its matrix runs are its tests."""

    def collect(self) -> Iterator[pytest.Item]:
        from pyharness.builder.cache import build
        from pyharness.builder.kernelsrc import default_kernel_src
        from pyharness.errors import HarnessError
        from pyharness.matrix.expand import expand, unwinder_axis
        from pyharness.run.scenarios import list_scenarios

        default = default_kernel_src()
        kernel_srcs = self.config.getoption("kernel_src") or ([default] if default else [])
        if self.config.getoption("pyharness_qemu"):
            yield from self._collect_qemu(kernel_srcs)
            return
        try:
            unwinders = unwinder_axis(kernel_srcs)
            elf = build(self.path, kernel_src=unwinders[0].kernel_src).elf
            scenarios = [s.name for s in list_scenarios(elf)]
            specs = expand([self.path], scenarios, unwinders=unwinders,
                           seed=self.config.getoption("matrix_seed"))
        except HarnessError as err:
            # Reported as one failing test rather than a collection error with
            # a traceback: the message says what is wrong and how to fix it.
            yield BrokenConfigItem.from_parent(self, name="build", message=str(err))
            return
        yield from self._items(specs)

    def _items(self, specs: list[RunSpec]) -> Iterator[pytest.Item]:
        for spec in specs:
            item = MatrixRunItem.from_parent(self, name=spec.id, spec=spec)
            item.add_marker(MARKER)
            yield item

    def _collect_qemu(self, kernel_srcs: list[str]) -> Iterator[pytest.Item]:
        from pyharness.errors import HarnessError
        from pyharness.matrix.qemu_axis import expand_qemu, qemu_axis

        try:
            specs = expand_qemu([self.path], qemu_axis(kernel_srcs, None),
                                seed=self.config.getoption("matrix_seed"))
        except HarnessError as err:
            yield BrokenConfigItem.from_parent(self, name="build", message=str(err))
            return
        yield from self._items(specs)


class MatrixRunItem(pytest.Item):
    """One matrix run: run_one, and pass only on the verdict ``pass``."""

    def __init__(self, *, spec: RunSpec, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.spec = spec

    def runtest(self) -> None:
        from pyharness.reports.junit import tree_properties
        from pyharness.reports.trees import tree_of
        from pyharness.run.qemu_runner import QemuRequest, run_qemu
        from pyharness.run.runner import RunRequest, run_one
        from pyharness.run.spec import QEMU

        if self.spec.platform == QEMU:
            record = run_qemu(QemuRequest.from_spec(self.spec))
        else:
            record = run_one(RunRequest.from_spec(self.spec))
        self.user_properties.append(("elapsed_ms", record.elapsed_ms))
        tree = tree_of(record)
        if tree is not None:     # which tree ran: pytest's JUnit XML carries it
            self.user_properties += tree_properties(tree)
        if not record.passed:
            raise MatrixRunFailed(failure_message(record))

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException],
                     style: object = None) -> str:
        from pyharness.errors import HarnessError

        if isinstance(excinfo.value, (MatrixRunFailed, HarnessError)):
            return str(excinfo.value)
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, self.name


class BrokenConfigItem(pytest.Item):
    """Stands for a configuration that could not be built or expanded."""

    def __init__(self, *, message: str, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.message = message

    def runtest(self) -> None:
        raise MatrixRunFailed(self.message)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException],
                     style: object = None) -> str:
        return str(excinfo.value)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"{self.path.name}: build"
