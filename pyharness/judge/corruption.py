"""Fault injection: corrupt hyp frame records as the unwind starts.

Each fault scenario runs a firmware scenario and, at the moment the
hypervisor starts its self-unwind (the oracle's start hook), rewrites
frame records on the hyp or overflow stack of the running CPU. The same
change goes into the oracle's record model, so the expected trace is the
valid prefix the unwinder's rules allow, derived by the oracle rather than
read back from the firmware.

Both modes see the corruption: in protected mode the hypervisor unwinds
right after the hook; in non-protected mode the host reads the same
(corrupted) records later through the kernel mapping.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol


class RecordEditor(Protocol):
    """What a fault may do at the unwind start (implemented by the oracle)."""

    chain: list[tuple[int, int]]          # (record address, lr), innermost first
    start_fp: int                         # where the unwinder is told to start
    start_pc: int
    hyp_stack: tuple[int, int]            # [low, high) in hyp VAs
    overflow_stack: tuple[int, int]
    # This CPU's protected-mode trace buffer [low, high) in hyp VAs; None
    # without CONFIG_PROTECTED_NVHE_STACKTRACE.
    trace_buffer: tuple[int, int] | None
    va_bits: int

    def write_record(self, address: int, saved_fp: int, lr: int) -> None: ...

    def write_words(self, address: int, words: list[int]) -> None:
        """Write words that are no frame record (the trace buffer's)."""

    def move_start(self, fp: int) -> None: ...


Inject = Callable[[RecordEditor], None]


@dataclass(frozen=True)
class Fault:
    """A fault scenario: which firmware scenario to run and what to break."""

    name: str
    base: str
    description: str
    inject: Inject


def _relink(editor: RecordEditor, index: int, saved_fp: int) -> None:
    address, lr = editor.chain[index]
    editor.write_record(address, saved_fp, lr)


def _misaligned(editor: RecordEditor) -> None:
    _relink(editor, 2, editor.chain[3][0] + 4)


def _odd(editor: RecordEditor) -> None:
    """Misaligned by bit 0 alone: a mask that misses bit 0 takes it."""
    _relink(editor, 2, editor.chain[3][0] + 1)


def _outside(editor: RecordEditor) -> None:
    _relink(editor, 2, 0x1000)


def _wrapping(editor: RecordEditor) -> None:
    """An aligned fp in the last 16 bytes of the address space: fp + 16
    wraps past 2^64, so a bound written as ``fp + size <= high`` without a
    wrap check would take it for a record on a stack."""
    _relink(editor, 2, (1 << 64) - 8)


def _guard_page(editor: RecordEditor) -> None:
    _relink(editor, 2, editor.hyp_stack[0] - 64)


def _self_loop(editor: RecordEditor) -> None:
    _relink(editor, 2, editor.chain[2][0])


def _backwards(editor: RecordEditor) -> None:
    _relink(editor, 3, editor.chain[1][0])


def _overflow_hyp_overflow(editor: RecordEditor) -> None:
    """A record on the hyp stack that links back to the overflow stack."""
    low, high = editor.hyp_stack
    on_hyp = [i for i, (address, _) in enumerate(editor.chain) if low <= address < high]
    on_overflow = [address for address, _ in editor.chain
                   if editor.overflow_stack[0] <= address < editor.overflow_stack[1]]
    _relink(editor, on_hyp[3], on_overflow[0])


def _tagged_lr(editor: RecordEditor) -> None:
    """Top-byte tag on one lr, pointer-authentication bits on the next, both
    on the third; then an odd lr and one at the top of the VA range (whose
    sum with the hyp offset wraps to an address with leading zeros): the
    mask clears the bits above the VA and keeps every bit of it."""
    tag = 0xB4 << 56
    pac = 0x2D << editor.va_bits & ((1 << 56) - 1)
    top = (1 << editor.va_bits) - 4
    for index, bits in ((1, tag), (2, pac), (3, tag | pac)):
        address, lr = editor.chain[index]
        editor.write_record(address, editor.chain[index + 1][0], lr | bits)
    for index, wrong in ((4, lambda lr: lr | 1), (5, lambda lr: top)):
        if index + 1 < len(editor.chain):
            address, lr = editor.chain[index]
            editor.write_record(address, editor.chain[index + 1][0], wrong(lr))


def _longest_chain(editor: RecordEditor) -> None:
    """The deepest valid trace there can be from here: a record in every
    16-byte slot above the start on the hyp stack, then every slot of the
    overflow stack. The buffer is sized for this; it must hold it all."""
    start = editor.chain[0][0]
    if not _on(editor.hyp_stack, start):
        # A firmware that broke its own stacks (a mutant): the slots above
        # the start would be no stack's, and could be billions.
        raise ValueError(f"the unwind starts at {start:#x}, not on the hyp stack "
                         f"[{editor.hyp_stack[0]:#x}, {editor.hyp_stack[1]:#x})")
    lrs = [lr for _, lr in editor.chain]
    hyp_low, hyp_high = editor.hyp_stack
    overflow_low, overflow_high = editor.overflow_stack
    slots = list(range(start, hyp_high, 16)) + list(range(overflow_low, overflow_high, 16))
    for i, address in enumerate(slots):
        following = slots[i + 1] if i + 1 < len(slots) else 0
        editor.write_record(address, following, lrs[i % len(lrs)])


def _next_fp(editor: RecordEditor, index: int) -> int:
    return editor.chain[index + 1][0] if index + 1 < len(editor.chain) else 0


def _fp_8_mod_16(editor: RecordEditor) -> None:
    """A record moved down 8 bytes, to an fp that is 8 but not 16 modulo 16:
    still aligned, still a whole record above the one before, so still valid
    (the first record with room for that below it)."""
    chain = editor.chain
    k = next(k for k in range(2, len(chain)) if chain[k][0] % 16 == 0
             and chain[k][0] - 8 >= chain[k - 1][0] + 16)
    address, lr = chain[k]
    editor.write_record(address - 8, _next_fp(editor, k), lr)
    _relink(editor, k - 1, address - 8)


def _on(stack: tuple[int, int], address: int) -> bool:
    return stack[0] <= address < stack[1]


def _last_on(editor: RecordEditor, stack: tuple[int, int]) -> int:
    return max(i for i, (address, _) in enumerate(editor.chain) if _on(stack, address))


def _hyp_stack_past_top(editor: RecordEditor) -> None:
    """The outermost hyp-stack record links to one straddling the stack's top
    (its second word is past the page): not wholly inside, so the walk ends."""
    _relink(editor, _last_on(editor, editor.hyp_stack), editor.hyp_stack[1] - 8)


def _overflow_stack_past_top(editor: RecordEditor) -> None:
    """The outermost overflow-stack record links to the first 16 bytes past the
    overflow stack (4 KiB whatever the page size), which hold a plausible
    record: not on the stack, so the walk ends there instead of crossing to
    the hyp stack; an unwinder that bounds the stack by PAGE_SIZE prints it.
    (Those bytes are this CPU's per-CPU padding: no data of ours.)"""
    last = _last_on(editor, editor.overflow_stack)
    past = editor.overflow_stack[1]
    editor.write_record(past, 0, editor.chain[last][1])
    _relink(editor, last, past)


def _straddle_reached_from_below(editor: RecordEditor, stack: tuple[int, int]) -> None:
    """The highest record of ``stack`` with room above it links to the record
    straddling the stack's top (fp = top - 8, its lr the word past the top).

    Reached from below, the straddler is higher than the record before by
    more than a record's size, so neither the lab's "higher" rule nor 6.1's
    consumed-stack rule ends the walk: only its size does (``fp + 16 <=
    top``). An on-stack check that ignores the size reads the word past the
    top as a pc."""
    straddler = stack[1] - 8
    below = max(i for i, (address, _) in enumerate(editor.chain)
                if _on(stack, address) and address + 16 <= straddler)
    _relink(editor, below, straddler)


def _hyp_straddles_top(editor: RecordEditor) -> None:
    """On the hyp stack the word past the top is the next CPU's guard page
    (unmapped at EL2); through the kernel's mapping, the page after this
    CPU's stack page in the host's array."""
    _straddle_reached_from_below(editor, editor.hyp_stack)


def _overflow_straddles_top(editor: RecordEditor) -> None:
    """On the overflow stack the word past the top is this CPU's per-CPU
    padding: it gets a plausible return address (and the straddler's fp
    word 0, ending the walk there), so an unwinder that takes the
    straddler prints one frame more, in either mode (a zero pc would end
    the protected trace unseen)."""
    top = editor.overflow_stack[1]
    _straddle_reached_from_below(editor, editor.overflow_stack)
    editor.write_record(top - 8, 0, editor.chain[0][1])


def _stale_trace_buffer(editor: RecordEditor) -> None:
    """This CPU's trace buffer full of non-zero words before the save, as an
    earlier trace (a deeper one, which the host printed and survived) left
    it: the save must end its entries with the zero terminator, or the
    host prints the stale pcs after them. (In non-protected mode, and
    without the buffer, the run is hyp_panic's.)"""
    if editor.trace_buffer is None:
        return
    low, high = editor.trace_buffer
    lrs = [lr for _, lr in editor.chain] or [editor.start_pc]
    editor.write_words(low, [lrs[-1 - i % len(lrs)] for i in range((high - low) // 8)])


def _overlapping_record(editor: RecordEditor) -> None:
    """Record 1 links to its own second word (fp + 8): the lab's rule (only
    "higher") reads that overlapping record, whose saved fp is record 1's lr
    and whose lr is written here; a kernel since 6.1 consumes all 16 bytes of
    each record and stops. The oracle models both (judge.unwind_model)."""
    address, lr = editor.chain[1]
    editor.write_record(address + 8, lr, editor.chain[2][1])
    editor.write_record(address, address + 8, lr)


def _packed_stacks(editor: RecordEditor) -> None:
    """With hyp_panic() on a scratch stack, start the unwind at the bottom of
    the overflow stack and put a record in every 16-byte slot of it and of
    the hyp stack: one pc more than the protected buffer holds, so its last
    slot and its terminator are used, and the host prints it all."""
    lrs = [editor.start_pc + 4 * k for k in range(8)]
    slots = (list(range(*editor.overflow_stack, 16)) + list(range(*editor.hyp_stack, 16)))
    for i, address in enumerate(slots):
        following = slots[i + 1] if i + 1 < len(slots) else 0
        editor.write_record(address, following, lrs[i % len(lrs)])
    editor.move_start(slots[0])


FAULTS: tuple[Fault, ...] = (
    Fault("fault_fp_misaligned", "hyp_panic",
          "a record's fp is 4 bytes off 8-byte alignment: the trace stops there", _misaligned),
    Fault("fault_fp_odd", "hyp_panic",
          "a record's fp is odd (misaligned by bit 0 only): the trace stops there", _odd),
    Fault("fault_fp_outside", "hyp_panic",
          "a record's fp points outside every stack", _outside),
    Fault("fault_fp_wraps", "hyp_panic",
          "a record's fp is 2^64 - 8, where fp + 16 wraps: on no stack", _wrapping),
    Fault("fault_fp_guard_page", "hyp_panic",
          "a record's fp points into the guard page below the hyp stack", _guard_page),
    Fault("fault_fp_self_loop", "hyp_panic",
          "a record points to itself", _self_loop),
    Fault("fault_fp_backwards", "hyp_panic",
          "a record points to a lower record on the same stack (a loop)", _backwards),
    Fault("fault_overflow_hyp_overflow", "stack_overflow",
          "overflow -> hyp -> back to the finished overflow stack", _overflow_hyp_overflow),
    Fault("fault_lr_tagged", "hyp_panic",
          "lrs with a top-byte tag and pointer-authentication bits, an odd lr, an lr at "
          "the VA range's top: printed masked to the VA, every VA bit kept",
          _tagged_lr),
    Fault("fault_longest_chain", "hyp_panic",
          "a record in every 16-byte slot above the start and all over the overflow "
          "stack: the deepest valid trace, which the buffer must hold",
          _longest_chain),
    Fault("fault_fp_8_mod_16", "hyp_panic",
          "a valid record at an fp that is 8 but not 16 modulo 16: read like any other",
          _fp_8_mod_16),
    Fault("fault_hyp_stack_past_top", "hyp_panic",
          "a record straddling the hyp stack's top: the trace stops before it",
          _hyp_stack_past_top),
    Fault("fault_overflow_stack_past_top", "stack_overflow",
          "a record just past the 4 KiB overflow stack: the trace stops before it",
          _overflow_stack_past_top),
    Fault("fault_fp_overlapping", "hyp_panic",
          "a record at the previous one's fp + 8: read by the lab's rule, not by 6.1+",
          _overlapping_record),
    Fault("fault_hyp_straddles_top", "hyp_panic",
          "a record with room above it links to one straddling the hyp stack's top: "
          "the trace stops before it (only the record's size says so)",
          _hyp_straddles_top),
    Fault("fault_overflow_straddles_top", "stack_overflow",
          "a record with room above it links to one straddling the overflow stack's "
          "top: the trace stops before it (only the record's size says so)",
          _overflow_straddles_top),
    Fault("fault_stale_trace_buffer", "hyp_panic",
          "the protected trace buffer holds stale non-zero pcs before the save: the "
          "trace ends at the terminator after the last entry",
          _stale_trace_buffer),
    Fault("fault_packed_stacks", "packed_stacks",
          "a record in every slot of the overflow and hyp stacks, from the bottom of "
          "the overflow stack: one pc more than the protected buffer holds",
          _packed_stacks),
)


def find_fault(name: str) -> Fault | None:
    return next((fault for fault in FAULTS if fault.name == name), None)
