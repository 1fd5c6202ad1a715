"""A real kernel's numbers for the nVHE stacks: the sizes its run under
QEMU is judged by (the protected trace buffer's capacity, the recursion a
stack overflow prints, the frame-line bound a runaway is stopped at).

A kernel kbuild built from a tree: the same probe the lab's build runs
(:func:`pyharness.builder.kernel_numbers.probe`, which compiles
``csrc/kcompat/numbers_probe.c`` against the tree's ``asm/memory.h``),
given the *kernel build's* configuration rather than the lab's: the
kernel's ``.config`` may differ from the lab configuration it was derived
from, and a tree's numbers may depend on any of its options. The probe
reads ``generated/autoconf.h`` through the lab's ``linux/kconfig.h``,
which maps the lab's names to the trees' (``CONFIG_PAGE_SHIFT`` from
``CONFIG_ARM64_PAGE_SHIFT``); so the probe gets a small header that
includes the build's own ``include/generated/autoconf.h`` and states the
page shift under the lab's name (6.12 on name it ``CONFIG_PAGE_SHIFT``
only).

A Debian image has no tree here: its overflow stack and trace buffer are
the sizes of its own ``__kvm_nvhe_overflow_stack`` and
``__kvm_nvhe_pkvm_stacktrace`` (binutils' ``nm`` on its vmlinux; 0 when
it has no buffer: Debian builds without the protected stacktrace), its hyp
stack a page (Debian's sources leave 7.x's ``NVHE_STACK_SHIFT`` at
``PAGE_SHIFT``; no symbol records it).

What a real kernel's run cannot work with is exit 2 naming the number
(:func:`check_bootable`).
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

from pyharness.builder.kernel_image import KernelImage
from pyharness.builder.kernel_numbers import (HYP_STACK_MAX, OVERFLOW_STACK_RANGE,
                                              STACKTRACE_RANGE, KernelNumbers, compiler_argv,
                                              hyp_stack_of, probe, refusal)
from pyharness.builder.kernelsrc import KernelSourceError, KernelTree
from pyharness.builder.toolchain import find_toolchain
from pyharness.elf.stack_sizes import FRAME_RECORD_SIZE

AUTOCONF = Path("include/generated/autoconf.h")
HOST = "a real kernel's run"
OVERFLOW_STACK_SYMBOL = "__kvm_nvhe_overflow_stack"
TRACE_BUFFER_SYMBOL = "__kvm_nvhe_pkvm_stacktrace"


def page_shift(kernel: KernelImage) -> int:
    """The kernel's page shift, from its .config (6.1 names it
    ARM64_PAGE_SHIFT, 6.12 on PAGE_SHIFT)."""
    shift = kernel.options.get("ARM64_PAGE_SHIFT") or kernel.options.get("PAGE_SHIFT") or "12"
    return int(shift)


def check_bootable(tree: KernelTree, overflow: int, page: int, nvhe_stack: int,
                   stacktrace: int, va_bits: int, config_page: int) -> int:
    """The hyp stack size, if a real kernel's run can work with every
    number (the probe's ``hostable``); else the KernelSourceError naming the
    first it cannot. QEMU hosts what the kernel boots with; the limits are
    the scenarios' and the judge's:

    - the overflow stack holds the hyp's whole panic path (hyp_panic_bad_stack,
      hyp_panic and, in protected mode, the unwinder saving the trace), which
      the stack_overflow scenarios' expected trace assumes, and SP is set to
      its top, so it is 16-byte aligned;
    - a valid dump may print a frame line per 16 bytes of the overflow and
      hyp stacks, and the judge stops a runaway only past that many: each
      stack is bounded as the lab bounds it (the same ranges), where the
      bound (about 34,800 lines) prints in about 4 s, well inside a run's
      default 30 s budget (measured: 9,000 frame lines a second under TCG);
    - the protected buffer holds at least one pc and its terminator.
    """
    del va_bits, config_page          # QEMU's -cpu max takes any of the kernel's
    low, high = OVERFLOW_STACK_RANGE
    if overflow % FRAME_RECORD_SIZE or not low <= overflow <= high:
        raise refusal(tree, "OVERFLOW_STACK_SIZE", overflow,
                      f"it must be {low} to {high} bytes in 16-byte steps (below, the hyp's "
                      "panic path may not fit on it, which the stack_overflow scenarios "
                      "rely on; above, the frame-line bound a runaway is stopped at outgrows "
                      "the stacks a run's wall budget is sized for)", host=HOST)
    hyp_stack = hyp_stack_of(tree, page, nvhe_stack)
    if hyp_stack & (hyp_stack - 1) or not page <= hyp_stack <= HYP_STACK_MAX:
        raise refusal(tree, "NVHE_STACK_SIZE", hyp_stack,
                      f"it must be a power of two from the page size ({page}) to "
                      f"{HYP_STACK_MAX} bytes (the recursion a stack overflow prints, and "
                      "the frame-line bound, follow from it)", host=HOST)
    low, high = STACKTRACE_RANGE
    if stacktrace % 8 or not low <= stacktrace <= high:
        raise refusal(tree, "NVHE_STACKTRACE_SIZE", stacktrace,
                      f"it must be {low} to {high} bytes of 8-byte entries (one pc and the "
                      "terminator at least)", host=HOST)
    return hyp_stack


def _probe_config(kernel: KernelImage, scratch: Path) -> Path:
    """A configuration directory for the probe: the kernel build's own
    autoconf.h, with the page shift under the name the probe reads."""
    autoconf = kernel.build_dir / AUTOCONF
    if not autoconf.is_file():
        raise KernelSourceError(f"{kernel.build_dir}: the kernel build has no {AUTOCONF}, "
                                "so its numbers cannot be evaluated; remove that "
                                "directory and the kernel is built afresh")
    header = scratch / "generated" / "autoconf.h"
    header.parent.mkdir(parents=True)
    header.write_text(f'#include "{autoconf}"\n'
                      "#undef CONFIG_PAGE_SHIFT\n#undef CONFIG_ARM64_PAGE_SHIFT\n"
                      f"#define CONFIG_ARM64_PAGE_SHIFT {page_shift(kernel)}\n")
    return scratch


def _probed(kernel: KernelImage) -> KernelNumbers:
    assert kernel.source_root is not None
    tree = KernelTree(root=kernel.source_root, version=kernel.version,
                      generation=kernel.generation)
    toolchain = find_toolchain(clang=kernel.compiler == "clang")
    with tempfile.TemporaryDirectory(prefix="pyharness-kernel-numbers-") as scratch:
        return probe(tree, _probe_config(kernel, Path(scratch)), compiler_argv(toolchain),
                     hostable=check_bootable)


def symbol_sizes(vmlinux: Path, names: tuple[str, ...]) -> dict[str, int]:
    """The sizes ``nm`` gives the named symbols of ``vmlinux`` (those it has)."""
    nm = find_toolchain().tool("nm")
    try:
        proc = subprocess.run([nm, "-S", "--defined-only", str(vmlinux)], capture_output=True,
                              text=True, timeout=120, errors="replace")
    except (OSError, subprocess.SubprocessError) as err:
        raise KernelSourceError(f"cannot read the symbols of {vmlinux}: {err}") from None
    if proc.returncode != 0:
        raise KernelSourceError(f"{nm} cannot read {vmlinux}: {proc.stderr.strip()[-300:]}")
    sizes = {}
    for line in proc.stdout.splitlines():
        fields = line.split()
        if len(fields) == 4 and fields[3] in names:
            sizes[fields[3]] = int(fields[1], 16)
    return sizes


def _from_symbols(kernel: KernelImage) -> KernelNumbers:
    """A kernel without a tree (Debian's): its own symbols' sizes."""
    sizes = symbol_sizes(kernel.vmlinux, (OVERFLOW_STACK_SYMBOL, TRACE_BUFFER_SYMBOL))
    if OVERFLOW_STACK_SYMBOL not in sizes:
        raise KernelSourceError(f"{kernel.vmlinux} has no sized {OVERFLOW_STACK_SYMBOL}, so "
                                "its overflow stack's size is unknown; is KVM built in?")
    overflow, page = sizes[OVERFLOW_STACK_SYMBOL], 1 << page_shift(kernel)
    # Without the protected stacktrace option there is no buffer (0), and
    # the judge expects the "Cannot dump" line instead of a trace.
    buffer = sizes.get(TRACE_BUFFER_SYMBOL, 0)
    return KernelNumbers(overflow_stack_size=overflow, hyp_stack_size=page,
                         stacktrace_size=buffer, va_bits=int(kernel.options.get(
                             "ARM64_VA_BITS", "48")), inputs=())


_KNOWN: dict[tuple[object, ...], KernelNumbers] = {}


def real_kernel_numbers(kernel: KernelImage) -> KernelNumbers:
    """The numbers ``kernel`` was built with (once per process and build:
    its tree, its build and its Image as they are)."""
    st = kernel.image.stat()
    key = (kernel.source_root, kernel.build_dir, kernel.vmlinux, st.st_mtime_ns, st.st_size)
    if key not in _KNOWN:
        _KNOWN[key] = _from_symbols(kernel) if kernel.source_root is None else _probed(kernel)
    return _KNOWN[key]
