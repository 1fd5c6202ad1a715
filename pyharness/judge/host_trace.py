"""What the host's own call trace (after ``Kernel panic``) must show.

When the host enters ``dump_stack`` the harness reads the frame records
on this CPU's host task stack, through the emulator, starting from the
caller's frame pointer (x29 at the entry) and the return address in x30,
and follows them under the shared unwinder's rules (aligned, inside the
task stack, strictly rising). The first printed line is dump_stack itself
(the pc it takes of itself; any offset inside it); each following line is
the ``%pB`` of one return address, KASLR taken out. Nothing here runs the
firmware's unwinder: the walk is this model's own.
"""

from __future__ import annotations

from pyharness.elf.image import Image
from pyharness.elf.layout import strip_pac
from pyharness.judge.expectation import ExpectedHostFrame
from pyharness.judge.unwind_model import GENERATIONS, Stack, follow
from pyharness.platform.geometry import stack_geometry
from pyharness.platform.machine import Machine
from pyharness.platform.results import MachineError

DUMP_STACK = "dump_stack"
# The host's own panic always goes through the lab's shared unwinder.
HOST_RULES = GENERATIONS["lab"]
MAX_HOST_FRAMES = 64


class HostTraceOracle:
    """Hooks dump_stack's entry and models the host's call trace."""

    def __init__(self, image: Image, machine: Machine, cpu: int) -> None:
        self.image = image
        self.machine = machine
        self.cpu = cpu
        self.frames: tuple[ExpectedHostFrame, ...] | None = None
        self.problem: str | None = None
        entry = image.find_symbol(DUMP_STACK)
        if entry is not None:
            machine.add_code_hook(entry.address, self._on_dump_stack, space="kernel")

    def _on_dump_stack(self, machine: Machine, _link_address: int) -> None:
        if self.frames is not None:
            return
        kallsyms = self.image.kallsyms
        kaslr = machine.kaslr_offset
        own = kallsyms.containing(self.image.address_of(DUMP_STACK))
        assert own is not None
        frames = [ExpectedHostFrame(own.name, None, own.span)]
        stack = stack_geometry(self.image).host_task_stack_link(self.cpu)
        task = Stack("task", stack.lo + kaslr, stack.hi + kaslr)
        records = _RecordReader(machine)
        chain, self.problem = follow(records, machine.register("fp"), [task], HOST_RULES)
        pcs = [machine.register("lr")] + [lr for _, lr in chain[:MAX_HOST_FRAMES]]
        va_bits = self.image.layout.va_bits
        for pc in map(lambda lr: strip_pac(lr, va_bits), pcs):
            frames.append(_render(kallsyms, (pc - kaslr) & (1 << 64) - 1, kaslr))
        self.frames = tuple(frames)


def _render(kallsyms, link: int, kaslr: int) -> ExpectedHostFrame:
    """``%pB`` of a link-time return address, as a structured line."""
    sym = kallsyms.containing(link - 1)
    if sym is None:
        return ExpectedHostFrame("", None, 0, raw=kallsyms.render_backtrace(link, kaslr))
    return ExpectedHostFrame(sym.name, link - sym.address, sym.span)


class _RecordReader:
    """The records on the host stack, read through the emulator on demand."""

    def __init__(self, machine: Machine) -> None:
        self._machine = machine

    def get(self, fp: int) -> tuple[int, int] | None:
        try:
            data = self._machine.read_va(fp, 16, 1)
        except MachineError:
            return None
        return int.from_bytes(data[:8], "little"), int.from_bytes(data[8:], "little")
