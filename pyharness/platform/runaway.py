"""A runaway console stops the run early: the bounds, and what the run says.

A host whose dump loop never ends (an unwinder that does not stop at the
end of the chain) prints the same frame until the instruction budget or the
wall clock runs out: minutes of a matrix, tens of thousands of lines to
judge and keep. No correct run prints more frames than the deepest valid
chain of frame records its configuration allows, so the console is bounded
by that (:func:`console_bounds`) and the run ends as soon as it passes a
bound (the console's MMIO model counts, natively or in Python, see
platform/mmio.py), with a reason that says which bound and where the CPU
was (:func:`runaway_reason`).

The deepest valid chain, per CPU, from the sizes the stacks are meant to
have (elf/stack_sizes.py: the lab's Kconfig formula or a tree's numbers):
a 16-byte frame record in every slot of the overflow stack and of the hyp
stack, one pc each, and the pc the dump starts from; in protected mode the
host prints the shared buffer, at most its capacity. ``fault_packed_stacks``
on a 64K configuration is that chain exactly (4352 frames).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

from pyharness.elf.dwarf import source_line
from pyharness.elf.image import Image, ImageError
from pyharness.elf.layout import strip_pac
from pyharness.elf.stack_sizes import FRAME_RECORD_SIZE
from pyharness.errors import HarnessError
from pyharness.platform.geometry import StackGeometry

# The margin over the deepest valid chain: a sixteenth of it, and a few
# lines (the panic line names a pc the same way). Slack: the deepest chain
# is the most a valid dump prints; fault_packed_stacks prints it exactly.
MARGIN_FRACTION = 16
MARGIN_FRAMES = 16
# Lines beside the frames: the panic, the headers and footers, the host's
# registers and its messages (a passing run prints fewer than 30).
OTHER_LINES = 256
# Bytes a line may take on average (the longest a passing run prints is
# about 120; the host's line buffer holds 1024).
BYTES_PER_LINE = 256
# Callers named after the pc where the run stopped.
CALLERS_SHOWN = 8

FRAME_MARK = " [<"   # as is_frame_line in native/nvhe_mmio.c


@dataclass(frozen=True)
class ConsoleBounds:
    """What one run's console may hold; passing any one stops the run."""

    frames: int          # lines holding a pc (FRAME_MARK)
    lines: int
    bytes: int
    deepest_chain: int   # the deepest valid hyp chain the bounds come from
    host_frames: int     # the deepest chain on the host's task stack
    derivation: str      # how deepest_chain follows from the sizes


@dataclass(frozen=True)
class ChainMemory:
    """Where a tighter bound is read from as the run goes: the running CPU's
    stacks ((PA, size) each) and, in protected mode, its trace buffer."""

    stacks: tuple[tuple[int, int], ...]
    buffer_pa: int = 0
    buffer_entries: int = 0          # 0: no buffer


def chain_memory(geometry: StackGeometry, cpu: int, protected: bool) -> ChainMemory | None:
    """The running CPU's overflow and hyp stacks and, in protected mode,
    buffer; None for an image without them (the tests' fixture)."""
    try:
        stacks = tuple((span.lo, span.size) for span in (geometry.overflow_stack_pa(cpu),
                                                         geometry.hyp_stack_pa(cpu)))
    except ImageError:
        return None
    if not (protected and geometry.has_trace_buffer):
        return ChainMemory(stacks)
    buffer = geometry.trace_buffer_pa(cpu)
    return ChainMemory(stacks, buffer.lo, buffer.size // 8)


def chain_bound(memory: ChainMemory, read: Callable[[int, int], bytes]) -> int:
    """The most frame lines a valid dump prints from ``memory`` as it is now
    (``read(pa, size)`` reads RAM), as native/nvhe_mmio.c works it out: the
    chain reads each record once, and every record but the last holds the
    next one's address, nonzero and 8-aligned, so at most the stacks'
    nonzero 8-aligned words, the first pc and the last record's pc; or the
    buffer's entries before its first zero; then a sixteenth more and 16."""
    links = 0
    for pa, size in memory.stacks:
        words = struct.unpack(f"<{size // 8}Q", read(pa, size // 8 * 8))
        links += sum(1 for word in words if word and not word & 7)
    entries = 0
    if memory.buffer_entries:
        data = read(memory.buffer_pa, memory.buffer_entries * 8)
        words = struct.unpack(f"<{memory.buffer_entries}Q", data)
        entries = next((k for k, word in enumerate(words) if not word), len(words))
    most = max(links + 2, entries)
    return with_margin(most)


def with_margin(deepest: int) -> int:
    """The frame lines allowed for a deepest valid chain of ``deepest``
    frames: a sixteenth more and 16 (the lab's and a real kernel's runs)."""
    return deepest + deepest // MARGIN_FRACTION + MARGIN_FRAMES


def is_frame_line(text: str | bytes) -> bool:
    """A console line printing a pc, as the native console counts them."""
    return (FRAME_MARK.encode() if isinstance(text, bytes) else FRAME_MARK) in text


def console_bounds(geometry: StackGeometry) -> ConsoleBounds:
    """The bounds of a run on ``geometry``'s image (any of its CPUs)."""
    sizes = geometry.sizes
    records = (sizes.overflow_stack + sizes.hyp_stack) // FRAME_RECORD_SIZE
    deepest = records + 1
    derivation = (f"{records} frame records in a {sizes.overflow_stack} B overflow stack and "
                  f"a {sizes.hyp_stack} B hyp stack, and the first pc; sizes: {sizes.source}")
    if geometry.has_trace_buffer and sizes.trace_capacity > deepest:
        deepest = sizes.trace_capacity
        derivation = f"the protected trace buffer's {deepest} entries; sizes: {sizes.source}"
    try:
        host_stack = geometry.host_task_stack_link(0).size
    except ImageError:          # an image without the lab host's task stacks
        host_stack = sizes.hyp_stack
    host_frames = host_stack // FRAME_RECORD_SIZE + 1
    frames = with_margin(deepest)
    lines = frames + host_frames + OTHER_LINES
    return ConsoleBounds(frames=frames, lines=lines, bytes=lines * BYTES_PER_LINE,
                         deepest_chain=deepest, host_frames=host_frames, derivation=derivation)


class StoppedCpu(Protocol):
    """What the reason needs of the machine that stopped."""

    image: Image

    def register(self, name: str) -> int: ...

    def current_el(self) -> int: ...

    def link_address(self, va: int, el: int) -> int | None: ...

    def describe_va(self, va: int, el: int) -> str: ...

    def read_u64(self, va: int, el: int) -> int: ...


def runaway_reason(cpu: StoppedCpu, bounds: ConsoleBounds, console: list[str],
                   from_memory: int = 0) -> str:
    """Why the run stopped: the bound passed (``from_memory``: the bound
    :func:`chain_bound` last worked out, 0 for none), what it comes from,
    and where the CPU was (symbol and file:line, then its callers by frame
    record)."""
    frames = sum(1 for line in console if is_frame_line(line))
    size = sum(len(line) for line in console)      # as the native console: no newlines
    if 0 < from_memory < bounds.frames and frames > from_memory:
        passed = (f"the console holds {frames} frame lines, more than the {from_memory} a "
                  "valid dump can print from this run's memory (a chain's records hold the "
                  "next one's address: the stacks' nonzero 8-aligned words bound them, or "
                  "the trace buffer's entries; and a sixteenth more)")
    elif frames > bounds.frames:
        passed = (f"the console holds {frames} frame lines, more than the {bounds.frames} "
                  f"a valid dump can print (the deepest valid chain is {bounds.deepest_chain} "
                  f"frames: {bounds.derivation}; and a sixteenth more)")
    elif len(console) > bounds.lines:
        passed = (f"the console holds {len(console)} lines, more than the {bounds.lines} a "
                  f"valid run prints ({bounds.frames} frame lines, {bounds.host_frames} of "
                  f"the host's own trace, {OTHER_LINES} others)")
    else:
        passed = (f"the console holds {size} bytes, more than the {bounds.bytes} a valid run "
                  f"prints ({bounds.lines} lines of {BYTES_PER_LINE} bytes)")
    return (f"stopped early, a runaway: {passed}; the CPU was at {where(cpu)}")


def where(cpu: StoppedCpu) -> str:
    """The pc and the callers its frame records name, each ``symbol
    (file:line)``: e.g. ``... in kvm_nvhe_dump_backtrace_entry+0x48/0x70
    (csrc/host/handle_exit.c:65), called from unwind_common+0x5c/0x98 ...``."""
    el = cpu.current_el()
    places = [_place(cpu, cpu.register("pc"), el, call=False)]
    fp, seen = cpu.register("x29"), set()
    while fp and fp not in seen and len(places) <= CALLERS_SHOWN:
        seen.add(fp)
        try:
            fp, lr = cpu.read_u64(fp, el), cpu.read_u64(fp + 8, el)
        except HarnessError:
            break
        if not lr:
            break
        # A pac-ret caller signed its return address: the code's is below the PAC.
        lr = strip_pac(lr, cpu.image.layout.va_bits, upper=el == 1)
        places.append(_place(cpu, lr, el, call=True))
    head, callers = places[0], places[1:]
    return head + "".join(f", called from {place}" for place in callers)


def _place(cpu: StoppedCpu, va: int, el: int, *, call: bool) -> str:
    """``va`` as ``address (symbol+off/size) at file:line``; for a return
    address (``call``), the call just before it."""
    site = va - 4 if call else va
    text = f"{site:#x} ({cpu.describe_va(site, el)})"
    line = _source(cpu, site, el)
    return text if line is None else f"{text} at {line}"


def stopped_at(cpu: StoppedCpu) -> str:
    """Where a run that did not finish stopped: ``address (symbol+off)
    (file:line)``, the file:line in parentheses as after every pc in a
    reason (reports/causes.py sets it aside)."""
    el, pc = cpu.current_el(), cpu.register("pc")
    text = f"{pc:#x} ({cpu.describe_va(pc, el)})"
    line = _source(cpu, pc, el)
    return text if line is None else f"{text} ({line})"


def _source(cpu: StoppedCpu, va: int, el: int) -> str | None:
    """``file:line`` of the code at ``va`` (DWARF), or None."""
    link = cpu.link_address(va, el)
    if link is None:
        return None
    try:
        line = source_line(Path(cpu.image.path), link)
    except (HarnessError, ValueError, OSError):
        return None
    return None if line is None else f"{line[0]}:{line[1]}"
