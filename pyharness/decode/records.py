"""What the decoder makes of a log: each trace and frame, with what the ELF says."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pyharness.judge.logrecords import Frame, HypTrace


@dataclass(frozen=True)
class ElfLocation:
    """What the ELF says about an address, in the kernel's ``%pB`` form."""

    function: str
    symbol_address: int
    offset: int
    size: int
    file: str | None = None
    line: int | None = None

    @property
    def printed(self) -> str:
        return f"{self.function}+{self.offset:#x}/{self.size:#x}"

    @property
    def source(self) -> str | None:
        return f"{self.file}:{self.line}" if self.file is not None else None


@dataclass(frozen=True)
class DecodedFrame:
    """A printed frame and, with an ELF, what the ELF says about it."""

    frame: Frame
    index: int | None                   # position in the trace; None: the panic line
    lookup_address: int | None = None   # the address looked up in the ELF
    elf: ElfLocation | None = None
    mismatch: str | None = None         # why the printed form disagrees with the ELF
    # Which addresses were looked up and why, when it is not the plain
    # rule (a panic line's %pB naming the function before the fault).
    lookup_note: str | None = None


# How a trace's printed addresses were looked up in the ELF: "as printed" (no
# ELF given), "link-time" (used as printed), "relocated" (shifted by a slide
# inferred from the printed symbols), "unmatched" (the ELF does not fit).
AddressMode = Literal["as printed", "link-time", "relocated", "unmatched"]


@dataclass(frozen=True)
class DecodedTrace:
    """One hyp call trace of the log, decoded."""

    number: int                          # 1-based, in log order
    trace: HypTrace
    frames: tuple[DecodedFrame, ...]
    panic_location: DecodedFrame | None = None   # the panic/BUG line's address
    address_mode: AddressMode = "as printed"
    slide: int = 0                       # printed address - ELF address
    duplicate_of: int | None = None      # number of an earlier trace with the same frames
    notes: tuple[str, ...] = ()
    # Forms of the log around the trace: how the file was read (mbox, .eml,
    # quoted-printable), another CPU's trace interleaved with it.
    log_forms: tuple[str, ...] = ()

    @property
    def forms(self) -> tuple[str, ...]:
        """Every form the trace was found in: its lines' and the log's."""
        return tuple(dict.fromkeys((*self.log_forms, *self.trace.forms)))

    @property
    def mismatches(self) -> tuple[DecodedFrame, ...]:
        located = [self.panic_location] if self.panic_location else []
        return tuple(f for f in [*located, *self.frames] if f.mismatch is not None)
