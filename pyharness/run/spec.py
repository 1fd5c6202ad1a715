"""What one run is: a configuration, the nVHE unwinder built into it, a
runtime mode, a scenario, a CPU, a KASLR seed and the run's budgets.
:class:`RunSpec` is made by the matrix expansion, the CLI and the pytest
plugin, and every report names a run by :func:`run_id`."""

from __future__ import annotations

import functools
import os
import shlex
import shutil
import sys
from dataclasses import asdict, dataclass

# The runtime hypervisor modes (the kernel's kvm-arm.mode=nvhe|protected).
MODES = ("nvhe", "protected")
# A run's budgets unless told otherwise (`pyharness run --max-instructions
# --timeout`); a run out of either is judged on what it printed by then.
DEFAULT_MAX_INSTRUCTIONS = 20_000_000
DEFAULT_TIMEOUT_S = 30.0

# The lab's own unwinder (no --kernel-src): its runs keep their plain ids.
LAB = "lab"
# Where a run runs: the lab's firmware on the Unicorn platform, or a real
# kernel under QEMU (`pyharness qemu`, docs/real-kernel.md).
UNICORN = "unicorn"
QEMU = "qemu"
# A real-kernel run's row: "qemu-" and the tree's label ("qemu-linux-6.12").
QEMU_LABEL_PREFIX = "qemu-"
# A real kernel's wall budget unless told otherwise: a boot to a hyp panic
# takes about half a second.
DEFAULT_QEMU_TIMEOUT_S = 20.0


@functools.lru_cache(maxsize=1)
def program_argv() -> tuple[str, ...]:
    """How the user ran ``pyharness``, for the commands printed to paste back
    (learnt once): ``pyharness`` when that is what the shell finds on PATH;
    when it is not, the script's path (``.venv/bin/pyharness``) or, for
    ``python -m pyharness``, the interpreter as invoked and ``-m pyharness``
    (``.venv/bin/python -m pyharness``). A path under the working directory
    is relative to it, any other absolute; a bare ``python`` stays bare (the
    shell found it). pytest and library callers get ``pyharness``."""
    invoked = sys.argv[0] if sys.argv else ""
    if _is_our_main(invoked):
        if _on_path_for(sys.executable):
            return ("pyharness",)
        interpreter = sys.orig_argv[0] if sys.orig_argv else sys.executable
        shown = _as_typed(interpreter) if os.sep in interpreter else interpreter
        return (shown, "-m", "pyharness")
    if os.path.basename(invoked) != "pyharness":
        return ("pyharness",)
    script = os.path.abspath(invoked)
    found = shutil.which("pyharness")
    if found is not None and os.path.realpath(found) == os.path.realpath(script):
        return ("pyharness",)
    return (_as_typed(script),)


def _is_our_main(invoked: str) -> bool:
    """Whether the program is this package's ``__main__`` (``python -m pyharness``)."""
    main = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        "__main__.py")
    return bool(invoked) and os.path.abspath(invoked) == main


def _on_path_for(interpreter: str) -> bool:
    """Whether ``pyharness`` on PATH is this interpreter's script (its
    sibling, or a script whose ``#!`` line names it)."""
    found = shutil.which("pyharness")
    if found is None:
        return False
    sibling = os.path.join(os.path.dirname(interpreter), "pyharness")
    if os.path.exists(sibling) and os.path.realpath(found) == os.path.realpath(sibling):
        return True
    try:
        with open(found, "rb") as script:
            first = script.readline(4096)
    except OSError:
        return False
    return first.rstrip(b"\r\n") == b"#!" + os.fsencode(os.path.abspath(interpreter))


def _as_typed(path: str) -> str:
    """A path to paste: relative under the working directory, else absolute."""
    try:
        absolute = os.path.abspath(path)
        relative = os.path.relpath(absolute)
    except OSError:                     # the working directory is gone
        return path
    if relative.startswith(os.pardir + os.sep):
        return absolute
    return relative if os.sep in relative else os.path.join(os.curdir, relative)


def row_name(config_name: str, unwinder: str = LAB) -> str:
    """A configuration with an unwinder: ``pkvm`` (the lab's), ``linux-6.12/pkvm``."""
    return config_name if unwinder == LAB else f"{unwinder}/{config_name}"


def run_id(config_name: str, mode: str, scenario: str, cpu: int, unwinder: str = LAB) -> str:
    """The one spelling of a run's id: ``pkvm_16k-protected-stack_overflow-cpu1``,
    ``linux-6.12/pkvm_16k-protected-stack_overflow-cpu1`` with a tree's unwinder."""
    return f"{row_name(config_name, unwinder)}-{mode}-{scenario}-cpu{cpu}"


@dataclass(frozen=True)
class Unwinder:
    """One value of the unwinder axis: the lab's own, or a kernel tree's."""

    label: str = LAB                 # "lab", "linux-6.12" (+ "-DIR", see matrix.expand), NAME
    kernel_src: str | None = None    # the tree or tarball (absolute); None: the lab's
    generation: str | None = None    # "6.1", "6.12"; None: the lab's


LAB_UNWINDER = Unwinder()


@dataclass(frozen=True)
class RunSpec:
    """One run, everything needed to reproduce it."""

    config: str
    config_name: str
    mode: str
    scenario: str
    cpu: int
    kaslr_seed: int
    kernel_src: str | None = None    # --kernel-src: a tree or tarball; None: the lab's unwinder
    generation: str | None = None    # the tree's generation ("6.12"); None: the lab's
    unwinder: str = LAB              # the axis label: "lab", "linux-6.12", ...
    # The budgets change a verdict (a run cut short fails), so they are part
    # of what reproduces it.
    max_instructions: int = DEFAULT_MAX_INSTRUCTIONS
    timeout_s: float = DEFAULT_TIMEOUT_S
    platform: str = UNICORN          # "unicorn" (the lab) or "qemu" (a real kernel)
    # A real run of a scenario the lab shares, compared with the lab's run
    # (judge/differential.py): a difference not explained fails it.
    differential: bool = False

    @classmethod
    def with_unwinder(cls, unwinder: Unwinder, **fields: object) -> RunSpec:
        return cls(kernel_src=unwinder.kernel_src, generation=unwinder.generation,
                   unwinder=unwinder.label, **fields)  # type: ignore[arg-type]

    @property
    def row(self) -> str:
        """The configuration with its unwinder, as the grid's rows name it."""
        return row_name(self.config_name, self.unwinder)

    @functools.cached_property
    def id(self) -> str:
        return run_id(self.config_name, self.mode, self.scenario, self.cpu, self.unwinder)

    @property
    def kernel_src_argument(self) -> str | None:
        """What ``--kernel-src`` takes to run this again under its label:
        the tree, or ``LABEL=tree`` when the label is not the generation's
        own (a named tree, or one the matrix told apart from another)."""
        label = self.unwinder.removeprefix(QEMU_LABEL_PREFIX) if self.platform == QEMU \
            else self.unwinder
        if self.kernel_src is None or label in (LAB, f"linux-{self.generation}") \
                or self.kernel_src.startswith("debian:"):
            return self.kernel_src
        return f"{label}={self.kernel_src}"

    def command(self) -> str:
        """The one-line command that reproduces this run exactly: every option
        that can change its verdict, each quoted for a POSIX shell."""
        if self.platform == QEMU:
            return self._qemu_command()
        kernel = ["--kernel-src", self.kernel_src_argument] if self.kernel_src else []
        argv = [*program_argv(), "run", "--config", self.config, *kernel,
                "--scenario", self.scenario, "--mode", self.mode, "--cpu", str(self.cpu),
                "--kaslr-seed", str(self.kaslr_seed)]
        if self.max_instructions != DEFAULT_MAX_INSTRUCTIONS:
            argv += ["--max-instructions", str(self.max_instructions)]
        if self.timeout_s != DEFAULT_TIMEOUT_S:
            argv += ["--timeout", repr(self.timeout_s)]
        return shlex.join(argv)

    def _qemu_command(self) -> str:
        argv = [*program_argv(), "qemu", "--config", self.config,
                "--kernel-src", self.kernel_src_argument or "", "--scenario", self.scenario,
                "--mode", self.mode, "--cpu", str(self.cpu),
                "--kaslr-seed", str(self.kaslr_seed)]
        if self.timeout_s != DEFAULT_QEMU_TIMEOUT_S:
            argv += ["--timeout", repr(self.timeout_s)]
        if self.differential:
            argv.append("--differential")
        return shlex.join(argv)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)
