"""A real kernel's expected hyp call trace, from the kernel's own code.

A real-kernel scenario (:mod:`pyharness.run.kernel_scenarios`) states its
frames as :class:`FrameSpec` records (which function
calls which, from the panic down to the host's entry). This module finds
each call in the kernel's code (the Image's bytes at System.map's
addresses) and turns the spec into addresses and ``%pB`` renderings by the
kernel's kallsyms rule. Nothing here reads the dump under test.

- ``return``: the one ``bl`` in the caller to the callee; if there is none,
  the callee may be reached through ``maybe_between`` (a function kbuild
  may or may not inline: then two frames), else the caller's one indirect
  call (``blr``: the host's HVC handlers are called through a table).
- ``entry``: the one direct call to ``handle_trap`` in all of hyp text.
- ``recursion``: the injected call's return, as many times as the hyp
  stack holds the recursing frames: ``(stack size - the frames below it) /
  frame size``, the frames below measured from their prologues. In
  protected mode the boot CPU's stack also keeps what
  ``__pkvm_init_finalise`` left on it (the hyp returns to the host from
  there without unwinding), so there the count may be up to
  :data:`PROTECTED_STACK_RESIDUE` bytes' worth lower.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyharness.elf import a64_code as a64
from pyharness.elf.system_map import HYP_PREFIX, SystemMap
from pyharness.errors import HarnessError

# How much of the hyp stack protected mode may hold before the first HVC
# (measured: 128 bytes on 6.12; docs/real-kernel.md).
PROTECTED_STACK_RESIDUE = 512
# The most frames a "chain" spec takes.
MAX_CHAIN = 64
# How far into a function its prologue may move SP.
_PROLOGUE_WORDS = 12


@dataclass(frozen=True)
class FrameSpec:
    """One expected frame of the hyp call trace, newest first.

    kinds:
    - ``in``: an address anywhere in ``function`` (the panic frame: the pc
      hyp_panic hands its unwinder);
    - ``return``: the return address of the one call in ``caller`` to
      ``function`` (a direct ``bl``; else the caller's only indirect call);
      ``caller`` empty: the one direct call to ``function`` in all hyp code;
    - ``recursion``: the injected recursive call's return address, as many
      times as the hyp stack holds its frames (the judge counts them from
      the stack size and the frames below);
    - ``entry``: the host's entry: the return of the one call to
      ``handle_trap`` (``__host_exit`` in 6.1, ``__skip_pauth_save`` since).
    - ``chain``: the calls inlining decides (a page-table walk's visitors
      and levels): one or more frames, each the return of a call that can
      have entered the newer frame's function (a ``bl`` to it, or an
      indirect call), the last one in ``function``.
    """

    kind: str
    function: str = ""
    caller: str = ""
    # A function kbuild may or may not inline between caller and function
    # (handle_host_hcall between handle_trap and the handler).
    maybe_between: str = ""


class PathError(HarnessError):
    """The kernel's code does not have the calls a scenario relies on (exit 2)."""


@dataclass(frozen=True)
class ExpectedFrame:
    """One frame the trace must print: ``address`` None means any address
    inside ``function`` (the panic frame)."""

    function: str                 # the kallsyms name, hyp prefix included
    address: int | None
    text: str                     # ``sym+0xoff/0xsize`` (``%pB``), or the function's name
    why: str
    repeat: tuple[int, int] = (1, 1)   # how many times in a row: (least, most)
    # "exact" (address and text), "in" (any address in the function) or
    # "chain": frames each returning into the caller of the newer one,
    # the last of them in ``function``.
    kind: str = "exact"
    source: str = ""              # the call's file:line, where the kernel's DWARF says

    @property
    def reason(self) -> str:
        """Why the frame is expected, and where its call is."""
        return f"{self.why}, {self.source}" if self.source else self.why

    def line(self) -> str:
        if self.kind == "chain":
            return f" [<...>] (calls down to) {self.function}+..."
        if self.address is None:
            return f" [<...>] {self.function}+..."
        return f" [<{self.address:016x}>] {self.text}"


class KernelCode:
    """The code of one kernel, for finding calls: the Image's bytes at
    System.map's addresses."""

    def __init__(self, smap: SystemMap, image: bytes) -> None:
        self.smap = smap
        self.image = image

    def word(self, address: int) -> int | None:
        offset = self.smap.image_offset(address)
        if not 0 <= offset <= len(self.image) - 4:
            return None
        return int.from_bytes(self.image[offset:offset + 4], "little")

    def function(self, name: str) -> tuple[int, int]:
        """(start, end) of a hyp function, by its name in the hyp object."""
        start = self.smap.hyp(name)
        sym = self.smap.kallsyms.containing(start) if start is not None else None
        if start is None or sym is None:
            raise PathError(f"this kernel has no hyp function {name} ({HYP_PREFIX}{name} "
                            f"in {self.smap.path})")
        return start, sym.address + sym.span

    def calls_in(self, name: str) -> list[tuple[int, int | None]]:
        """Every call in a function: (address, direct target or None)."""
        start, end = self.function(name)
        found = []
        for pc in range(start, end, 4):
            word = self.word(pc)
            if word is None:
                break
            if a64.is_indirect_call(word):
                found.append((pc, None))
            else:
                target = a64.direct_call_target(word, pc)
                if target is not None:
                    found.append((pc, target))
        return found

    def calls_into(self, return_address: int, callee_address: int | None) -> bool:
        """Whether the call before ``return_address`` can have entered the
        function holding ``callee_address``: a ``bl`` to that function's
        start, or any indirect call."""
        word = self.word(return_address - 4)
        if word is None:
            return False
        if a64.is_indirect_call(word):
            return True
        target = a64.direct_call_target(word, return_address - 4)
        if target is None or callee_address is None:
            return False
        callee = self.smap.kallsyms.containing(callee_address)
        return callee is not None and callee.address == target

    def hyp_text(self) -> tuple[int, int]:
        start = self.smap.address("__hyp_text_start")
        end = self.smap.address("__hyp_text_end")
        if start is None or end is None:
            raise PathError(f"{self.smap.path} has no __hyp_text_start/__hyp_text_end")
        return start, end

    def frame_bytes(self, name: str) -> int:
        """How far the prologue of a function moves SP down."""
        start, end = self.function(name)
        total = 0
        for pc in range(start, min(end, start + 4 * _PROLOGUE_WORDS), 4):
            word = self.word(pc)
            if word is None or a64.is_call(word) or word == a64.RET:
                break
            total += a64.stack_decrement(word)
        return total


def _render(code: KernelCode, address: int) -> str:
    return code.smap.kallsyms.render_backtrace(address)


def _returning(code: KernelCode, call_at: int, why: str) -> ExpectedFrame:
    ret = call_at + 4
    sym = code.smap.kallsyms.containing(ret - 1)
    return ExpectedFrame(sym.name if sym else "", ret, _render(code, ret), why)


def _call_site(code: KernelCode, caller: str, callee: str) -> tuple[list[int], list[int]]:
    """(direct calls from caller to callee, indirect calls in caller)."""
    target = code.smap.hyp(callee)
    calls = code.calls_in(caller)
    direct = [pc for pc, to in calls if to is not None and to == target]
    indirect = [pc for pc, to in calls if to is None]
    return direct, indirect


def _return_frames(code: KernelCode, spec: FrameSpec) -> list[ExpectedFrame]:
    direct, indirect = _call_site(code, spec.caller, spec.function)
    why = f"{spec.caller}'s call to {spec.function}"
    if len(direct) == 1:
        return [_returning(code, direct[0], why)]
    if spec.maybe_between and code.smap.hyp(spec.maybe_between) is not None:
        via, _ = _call_site(code, spec.caller, spec.maybe_between)
        if len(via) == 1:
            inner = FrameSpec("return", spec.function, spec.maybe_between)
            outer_why = f"{spec.caller}'s call to {spec.maybe_between}"
            return _return_frames(code, inner) + [_returning(code, via[0], outer_why)]
    if not direct and len(indirect) == 1:
        return [_returning(code, indirect[0], why + " (indirect)")]
    raise PathError(f"cannot find the one call from {spec.caller} to {spec.function} in this "
                    f"kernel ({len(direct)} direct, {len(indirect)} indirect calls)")


def _entry_frame(code: KernelCode) -> ExpectedFrame:
    target = code.smap.hyp("handle_trap")
    if target is None:
        raise PathError("this kernel has no hyp function handle_trap")
    start, end = code.hyp_text()
    sites = [pc for pc in range(start, end, 4)
             if (w := code.word(pc)) is not None and a64.direct_call_target(w, pc) == target]
    if len(sites) != 1:
        raise PathError(f"hyp text has {len(sites)} direct calls to handle_trap, not one: "
                        "cannot tell the host's entry")
    return _returning(code, sites[0], "the host's entry (its call to handle_trap)")


def recursion_depth(code: KernelCode, stack_bytes: int, frame_bytes: int,
                    below: list[str], protected: bool) -> tuple[int, int]:
    """(least, most) recursing frames the trace shows: each of the frames
    on the hyp stack, plus the one hyp_panic_bad_stack saved the last call's
    return in (docs/real-kernel.md, "stack_overflow")."""
    used = sum(code.frame_bytes(name) for name in below)
    most = (stack_bytes - used) // frame_bytes
    least = most - (PROTECTED_STACK_RESIDUE // frame_bytes if protected else 0)
    return max(least, 1), most


def expected_frames(code: KernelCode, specs: tuple[FrameSpec, ...], *,
                    recursion_return: int | None = None, frame_bytes: int = 32,
                    stack_bytes: int = 4096, protected: bool = False) -> list[ExpectedFrame]:
    """The expected trace, newest frame first."""
    frames: list[ExpectedFrame] = []
    for i, spec in enumerate(specs):
        if spec.kind == "in":
            code.function(spec.function)
            frames.append(ExpectedFrame(HYP_PREFIX + spec.function, None,
                                        HYP_PREFIX + spec.function, "the panic's own frame",
                                        kind="in"))
        elif spec.kind == "return":
            frames += _return_frames(code, spec)
        elif spec.kind == "entry":
            frames.append(_entry_frame(code))
        elif spec.kind == "chain":
            code.function(spec.function)
            frames.append(ExpectedFrame(HYP_PREFIX + spec.function, None,
                                        HYP_PREFIX + spec.function,
                                        f"calls from {spec.function} down to the fault",
                                        (1, MAX_CHAIN), kind="chain"))
        elif spec.kind == "recursion":
            if recursion_return is None:
                raise PathError("a recursion frame without the injected call's address")
            below = _functions_below(specs[i + 1:], code)
            depth = recursion_depth(code, stack_bytes, frame_bytes, below, protected)
            frame = _returning(code, recursion_return - 4, f"{spec.function}'s injected "
                               "recursive call")
            frames.append(ExpectedFrame(frame.function, frame.address, frame.text,
                                        frame.why, depth))
    return frames


def _functions_below(specs: tuple[FrameSpec, ...], code: KernelCode) -> list[str]:
    """The hyp functions whose frames sit below a recursion on the stack."""
    names = []
    for spec in specs:
        if spec.kind == "return":
            names.append(spec.caller)
            if spec.maybe_between and code.smap.hyp(spec.maybe_between) is not None:
                direct, _ = _call_site(code, spec.caller, spec.function)
                if not direct:
                    names.append(spec.maybe_between)
    return names
