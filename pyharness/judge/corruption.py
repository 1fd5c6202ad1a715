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
    hyp_stack: tuple[int, int]            # [low, high) in hyp VAs
    overflow_stack: tuple[int, int]
    va_bits: int

    def write_record(self, address: int, saved_fp: int, lr: int) -> None: ...


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


def _outside(editor: RecordEditor) -> None:
    _relink(editor, 2, 0x1000)


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
    """Top-byte tag on one lr, pointer-authentication bits on the next."""
    tag = 0xB4 << 56
    pac = 0x2D << editor.va_bits & ((1 << 56) - 1)
    for index, bits in ((1, tag), (2, pac), (3, tag | pac)):
        address, lr = editor.chain[index]
        editor.write_record(address, editor.chain[index + 1][0], lr | bits)


def _longest_chain(editor: RecordEditor) -> None:
    """The deepest valid trace there can be from here: a record in every
    16-byte slot above the start on the hyp stack, then every slot of the
    overflow stack. The buffer is sized for this; it must hold it all."""
    start = editor.chain[0][0]
    lrs = [lr for _, lr in editor.chain]
    hyp_low, hyp_high = editor.hyp_stack
    overflow_low, overflow_high = editor.overflow_stack
    slots = list(range(start, hyp_high, 16)) + list(range(overflow_low, overflow_high, 16))
    for i, address in enumerate(slots):
        following = slots[i + 1] if i + 1 < len(slots) else 0
        editor.write_record(address, following, lrs[i % len(lrs)])


FAULTS: tuple[Fault, ...] = (
    Fault("fault_fp_misaligned", "hyp_panic",
          "a record's fp is not 8-byte aligned: the trace stops there", _misaligned),
    Fault("fault_fp_outside", "hyp_panic",
          "a record's fp points outside every stack", _outside),
    Fault("fault_fp_guard_page", "hyp_panic",
          "a record's fp points into the guard page below the hyp stack", _guard_page),
    Fault("fault_fp_self_loop", "hyp_panic",
          "a record points to itself", _self_loop),
    Fault("fault_fp_backwards", "hyp_panic",
          "a record points to a lower record on the same stack (a loop)", _backwards),
    Fault("fault_overflow_hyp_overflow", "stack_overflow",
          "overflow -> hyp -> back to the finished overflow stack", _overflow_hyp_overflow),
    Fault("fault_lr_tagged", "hyp_panic",
          "lrs with a top-byte tag and pointer-authentication bits: printed masked",
          _tagged_lr),
    Fault("fault_longest_chain", "hyp_panic",
          "a record in every 16-byte slot above the start and all over the overflow "
          "stack: the deepest valid trace, which the buffer must hold",
          _longest_chain),
)


def find_fault(name: str) -> Fault | None:
    return next((fault for fault in FAULTS if fault.name == name), None)
