"""What a run's console must show: the records the oracle makes and the
checker reads, and the fixed lines of the scenarios that do not panic."""

from __future__ import annotations

from dataclasses import dataclass, field

from pyharness.judge.verdict import FrameLine

KVM_PREFIX = "kvm [1]: "

# What each non-panicking scenario prints (the spec, not a recording).
SMOKE_LINES = ("kvm [1]: smoke: hypervisor returned 124",)   # 3 * 41 + 1


def _selftest(name: str, pcs: str, end: int) -> str:
    return f"unwind_selftest: {name} pcs={pcs} end={end}"


def _selftest_common(name: str, pcs: str, asked: int) -> str:
    """A case walked by unwind_common(): the consumer's calls, not the error."""
    return f"unwind_selftest: {name} pcs={pcs} asked={asked}"


ENOENT, EINVAL = -2, -22
# csrc/host/unwind_selftest.c builds these records; the outcome of each is
# what the unwinder's rules (docs/oracle.md) say, worked out by hand.
ISOLATION_PROBE_LINES = ("kvm [1]: isolation_probe: host read the hyp stack page (0)",)
BUFFER_OVERRUN_LINES = {
    False: ("kvm [1]: buffer_overrun_probe: no trace buffer",),
    True: ("kvm [1]: buffer_overrun_probe: hyp wrote past its trace buffer",),
}
UNWIND_SELFTEST_LINES = (
    _selftest("chain", "a,b,c,d", ENOENT),             # three records, then fp 0
    _selftest("consumer_stop", "a,b", 0),              # the consumer says stop after 2
    _selftest_common("common_chain", "a,b,c,d", 4),    # one call per pc, then fp 0
    _selftest_common("common_stop", "a,b", 3),         # asked for c, says stop: no 4th call
    _selftest("misaligned", "a,b,c", EINVAL),          # fp not 8-byte aligned (+4)
    _selftest("misaligned_by_1", "a,b,c", EINVAL),     # fp + 1: bit 0 counts too
    _selftest("outside", "a,b,c", EINVAL),             # fp on no stack
    _selftest("absent_stack", "a,b,c", EINVAL),        # in [0, size) of a stack based at 0
    _selftest("straddles_end", "a,b,c", EINVAL),       # record's 2nd word past the end
    _selftest("self_loop", "a,b,c", EINVAL),           # fp == previous fp
    _selftest("downward", "a,b,c", EINVAL),            # fp below previous fp
    _selftest("cross_stack", "a,b,c,d", ENOENT),       # irq -> task, once
    _selftest("return_to_done", "a,b,c,d", EINVAL),    # task -> irq again
    _selftest("translated", "a,b,c,d", ENOENT),        # foreign stack, translated
    _selftest("translate_refused", "a,b", EINVAL),     # translation fails
)


@dataclass(frozen=True)
class ExpectedFrame:
    """One frame line: the link-time address and its ``%pB`` rendering."""

    address: int
    symbol: str

    def line(self) -> FrameLine:
        return FrameLine(address=f"{self.address:016x}", symbol=self.symbol)


@dataclass(frozen=True)
class WalkRecord:
    """A frame record the oracle's walk read (hyp VAs): where it is, the
    return address it holds, and the stack it lies on with that stack's
    bounds ``[lo, hi)``."""

    fp: int
    lr: int
    stack: str
    lo: int
    hi: int
    link: int = 0     # the lr's link-time address (what the frame prints)


@dataclass(frozen=True)
class WalkEnd:
    """Where and why the oracle's walk stopped: the fp it would have read
    next and the rule that ends the walk there (``termination``: fp 0;
    ``alignment``, ``bounds``, ``stack transition``: the record breaks it)."""

    fp: int
    rule: str
    why: str


@dataclass(frozen=True)
class ExpectedPanic:
    """The line naming why the hypervisor panicked (tracelog's kinds)."""

    kind: str                    # "panic" | "bug-file" | "bug-addr" | "invalid"
    address: int | None = None   # link-time, for "panic" and "bug-addr"
    symbol: str | None = None    # %pS, for "panic" and "bug-addr"
    file: str | None = None      # for "bug-file"
    line: int | None = None

    def describe(self) -> str:
        if self.kind == "invalid":
            return "Invalid host exception to nVHE hyp!"
        if self.kind == "bug-file":
            return f"nVHE hyp BUG at: {self.file}:{self.line}!"
        what = "panic" if self.kind == "panic" else "BUG"
        return f"nVHE hyp {what} at: [<{self.address:016x}>] {self.symbol}!"


@dataclass(frozen=True)
class ExpectedHostFrame:
    """A line of the host's call trace: ``name+0xoff/0xsize``, or for the
    first line only the function and size (``offset`` None: any offset)."""

    name: str
    offset: int | None
    size: int
    raw: str | None = None        # the raw pointer printed for an unknown address

    def key(self) -> tuple[str, int | None, int] | str:
        """What a printed line must equal (see :meth:`key_of`)."""
        return self.raw if self.raw is not None else (self.name, self.offset, self.size)

    @staticmethod
    def key_of(printed: str, any_offset: set[str]) -> tuple[str, int | None, int] | str:
        """A printed ``name+0xoff/0xsize`` as a key; the offset left out for a
        function in ``any_offset``; anything else is its own text."""
        name, _, rest = printed.partition("+")
        offset, _, size = rest.partition("/")
        try:
            return (name, None if name in any_offset else int(offset, 16), int(size, 16))
        except ValueError:
            return printed

    def describe(self) -> str:
        if self.raw is not None:
            return self.raw
        offset = "0x?" if self.offset is None else f"{self.offset:#x}"
        return f"{self.name}+{offset}/{self.size:#x}"


@dataclass(frozen=True)
class Expectation:
    """Everything the console of a run should show."""

    kind: str                        # "hyp-panic" | "lines" | "breach" | "violation"
    exit_status: int
    lines: tuple[str, ...] = ()                 # "lines": exact text, in order
    panic: ExpectedPanic | None = None
    dump: str | None = None                     # "protected" | "non-protected" | "cannot-dump"
    cannot_dump_reason: str = "!CONFIG_PROTECTED_NVHE_STACKTRACE"   # as the generation words it
    frames: tuple[ExpectedFrame, ...] = ()
    truncated: bool = False                     # protected: the buffer was full
    notes: tuple[str, ...] = ()
    violation: str | None = None                # "violation": what the watch must report
    registers: dict[str, int] = field(default_factory=dict)  # the host's panic message
    hyp_offset: int | None = None
    host_frames: tuple[ExpectedHostFrame, ...] = ()
    cpu: int | None = None                      # the CPU the host's panic names
    footprint: tuple[str, ...] = ()             # how the image differs from the claim
    findings: tuple[str, ...] = ()              # what the firmware already did wrong
    elf: str = ""                               # the image, for file:line in reasons
    protected: bool = False                     # the walk runs at EL2 (protected mode)
    walk: tuple[WalkRecord, ...] = ()           # the records frames 1.. came from
    walk_end: WalkEnd | None = None

    def frame_lines(self) -> tuple[FrameLine, ...]:
        """Each frame as a line; a frame repeated (a long trace repeats a
        few) shares one."""
        lines: dict[ExpectedFrame, FrameLine] = {}
        return tuple(lines[f] if f in lines else lines.setdefault(f, f.line())
                     for f in self.frames)
