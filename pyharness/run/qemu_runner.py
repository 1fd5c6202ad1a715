"""One real-kernel run: build the tree's kernel (cached), write the
scenario's fault into a copy of its Image, boot it under QEMU, judge the
console, record.

:func:`run_qemu` is what ``pyharness qemu``, the matrix's ``--qemu`` runs
and the pytest plugin call; like :func:`pyharness.run.runner.run_one` it
raises :class:`~pyharness.errors.HarnessError` only for bad input (an
unknown scenario, a mode the scenario has no fault for, a CPU beyond
NR_CPUS, a fault site the kernel lacks) and returns a record otherwise.
"""

from __future__ import annotations

import functools
import os
import re
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

from pyharness.builder.kernelsrc import provenance_of
from pyharness.builder.real_kernel import obtain_kernel
from pyharness.builder.kernel_image import KernelImage
from pyharness.builder.tree_numbers import real_kernel_numbers
from pyharness.elf.kernel_lines import call_sites
from pyharness.elf.stack_sizes import FRAME_RECORD_SIZE, StackSizes
from pyharness.elf.system_map import SystemMap
from pyharness.errors import HarnessError
from pyharness.judge.kernel_checker import KVM_INIT_MARKER, KernelExpectation, judge_kernel_run
from pyharness.judge.kernel_path import ExpectedFrame, KernelCode, expected_frames
from pyharness.judge.differential import Difference, compare
from pyharness.judge.verdict import FrameLine, Verdict
from pyharness.paths import kernel_cache
from pyharness.platform.kernel_places import RunawayMonitor, kernel_names
from pyharness.platform.qemu import BootOptions, boot
from pyharness.platform.results import check_budgets
from pyharness.platform.runaway import with_margin
from pyharness.run import kernel_faults
from pyharness.run.caps import cap_record
from pyharness.run.kernel_scenarios import KernelScenario, kernel_scenario, resolve
from pyharness.run.record import RunRecord
from pyharness.run.runner import RunRequest, run_one
from pyharness.run.spec import DEFAULT_QEMU_TIMEOUT_S, MODES, QEMU, QEMU_LABEL_PREFIX, RunSpec

DTB_DIR = "dtb"
PROTECTED_STACKTRACE_OPTIONS = ("PKVM_STACKTRACE", "PROTECTED_NVHE_STACKTRACE")
_KERNEL_OFFSET = re.compile(r"Kernel Offset: 0x([0-9a-f]+) from")


@dataclass(frozen=True)
class QemuRequest:
    """What to run on a real kernel."""

    config: str
    kernel_src: str
    scenario: str
    mode: str = "nvhe"
    cpu: int = 0
    kaslr_seed: int = 0
    timeout_s: float = DEFAULT_QEMU_TIMEOUT_S
    out_dir: Path | str | None = None
    # The kernel built for this run already (the matrix's parent): used as is.
    kernel: KernelImage | None = None
    label: str | None = None          # the row's label; None: "qemu-<tree label>"
    differential: bool = False        # also run the lab's fast path and compare

    @classmethod
    def from_spec(cls, spec: RunSpec, kernel: KernelImage | None = None) -> QemuRequest:
        return cls(config=spec.config, kernel_src=spec.kernel_src or "",
                   scenario=spec.scenario, mode=spec.mode, cpu=spec.cpu,
                   kaslr_seed=spec.kaslr_seed, timeout_s=spec.timeout_s, kernel=kernel,
                   label=spec.unwinder, differential=spec.differential)

    def __post_init__(self) -> None:
        check_budgets(timeout_s=self.timeout_s)


@functools.lru_cache(maxsize=8)
def _kernel_files(system_map: str, image: str, stamp: tuple[int, ...]) -> tuple[SystemMap,
                                                                                 bytes]:
    """System.map parsed and the Image read once per process and build."""
    return SystemMap(Path(system_map)), Path(image).read_bytes()


def kernel_files(kernel: KernelImage) -> tuple[SystemMap, bytes]:
    st_map, st_image = kernel.system_map.stat(), kernel.image.stat()
    return _kernel_files(str(kernel.system_map), str(kernel.image),
                         (st_map.st_mtime_ns, st_map.st_size, st_image.st_mtime_ns,
                          st_image.st_size))


def stack_sizes(kernel: KernelImage) -> StackSizes:
    """The sizes the kernel was built with: its tree's numbers, evaluated by
    the probe the lab's build runs, with the kernel's own configuration
    (builder/tree_numbers.py); a Debian image's from its own symbols. A
    number the run cannot work with is exit 2 naming it."""
    numbers = real_kernel_numbers(kernel)
    source = ("the kernel's symbols" if kernel.source_root is None
              else f"the kernel tree's ({kernel.source_root})")
    return StackSizes(numbers.overflow_stack_size, numbers.hyp_stack_size,
                      numbers.stacktrace_size, numbers.va_bits, source)


def frame_line_bound(kernel: KernelImage, cpus: int,
                     sizes: StackSizes | None = None) -> tuple[int, str]:
    """The most frame lines a valid boot prints, and why: each panicking
    CPU's deepest valid chain, a frame record in every 16-byte slot of its
    overflow stack and its hyp stack and the first pc (the protected
    buffer, half of that, holds fewer), with the lab's margin
    (platform/runaway.py). ``sizes``: the kernel's own by default."""
    sizes = sizes or stack_sizes(kernel)
    records = (sizes.overflow_stack + sizes.hyp_stack) // FRAME_RECORD_SIZE
    per_cpu = with_margin(records + 1)
    why = (f"the deepest valid chain is {records + 1} frames: {records} frame records in a "
           f"{sizes.overflow_stack} B overflow stack and a {sizes.hyp_stack} B hyp stack, "
           f"and the first pc; and a sixteenth more"
           + (f"; for each of {cpus} CPUs" if cpus > 1 else ""))
    return per_cpu * cpus, why


def _stacktrace_option(kernel: KernelImage) -> str:
    """The protected stacktrace option's name in this kernel. A .config whose
    NVHE_EL2_DEBUG is off (Debian's) names neither: then the generation
    decides (7.x calls it PKVM_STACKTRACE)."""
    named = next((name for name in PROTECTED_STACKTRACE_OPTIONS if name in kernel.options), None)
    if named is not None:
        return named
    return PROTECTED_STACKTRACE_OPTIONS[0 if kernel.generation == "7.x" else -1]


def expectation(kernel: KernelImage, scenario: KernelScenario, mode: str,
                injection: kernel_faults.Injection, code: KernelCode,
                sizes: StackSizes | None = None) -> KernelExpectation:
    """What the scenario must make this kernel print (by construction and
    from the kernel's code; never from a dump), with its stacks and buffer
    of ``sizes`` (the kernel's own by default)."""
    sizes = sizes or stack_sizes(kernel)
    protected = mode == "protected"
    option = _stacktrace_option(kernel)
    hang = None
    if scenario.panic == "none":
        hang = ("a recursion through a pre-indexed store is never detected: the hyp "
                "livelocks on its own exception path")
    elif protected and scenario.after_deprivilege and not host_stage2_off_on_panic(kernel):
        hang = ("the host, deprivileged, cannot run its panic handler: this kernel does not "
                "turn the host's stage 2 off on a hyp panic (NVHE_EL2_DEBUG, 7.x: "
                "PKVM_DISABLE_STAGE2_ON_PANIC)")
    cannot_dump = None
    capacity = None
    if protected and not kernel.enabled(option):
        cannot_dump = f"Cannot dump pKVM nVHE stacktrace: !CONFIG_{option}"
    elif protected:
        capacity = sizes.trace_capacity
    frames = expected_frames(
        code, scenario.frames, recursion_return=injection.marks.get("recursion_return"),
        frame_bytes=injection.marks.get("recursion_frame_bytes", 32),
        stack_bytes=sizes.hyp_stack, protected=protected)
    if capacity is not None:
        frames = _cut(frames, capacity)
    smap = code.smap
    return KernelExpectation(
        scenario=scenario.name, mode=mode, panic_kind=scenario.panic,
        fault_address=injection.fault_address,
        panic_text=smap.kallsyms.render_backtrace(injection.fault_address),
        frames=tuple(frames), cannot_dump=cannot_dump, capacity=capacity,
        esr_class=scenario.esr_class, panicking_cpus=injection.cpus if scenario.all_cpus else 1,
        code=code, hang=hang)


def host_stage2_off_on_panic(kernel: KernelImage) -> bool:
    """Whether the hyp turns the host's stage 2 off when it panics, so the
    deprivileged host can still run its panic handler (host.S's
    __hyp_do_panic, under PKVM_DISABLE_STAGE2_ON_PANIC where the tree has
    that option, NVHE_EL2_DEBUG before)."""
    if "PKVM_DISABLE_STAGE2_ON_PANIC" in kernel.options or kernel.generation.startswith("7"):
        return kernel.enabled("PKVM_DISABLE_STAGE2_ON_PANIC")
    return kernel.enabled("NVHE_EL2_DEBUG")


def _cut(frames: list[ExpectedFrame], capacity: int) -> list[ExpectedFrame]:
    """The frames a buffer of ``capacity`` entries keeps: the newest."""
    out, left = [], capacity
    for frame in frames:
        if left <= 0:
            break
        least, most = frame.repeat
        if most > left:
            frame = replace(frame, repeat=(min(least, left), left))
        out.append(frame)
        left -= frame.repeat[1]
    return out


def _validate(request: QemuRequest, kernel: KernelImage, scenario: KernelScenario) -> None:
    if request.mode not in MODES:
        raise HarnessError(f"unknown mode {request.mode!r}; use one of: {', '.join(MODES)}")
    if request.mode not in scenario.modes:
        raise HarnessError(f"scenario {scenario.name} has no fault in {request.mode} mode "
                           f"(it runs in: {', '.join(scenario.modes)})")
    nr_cpus = int(kernel.options.get("NR_CPUS", "1"))
    if not 0 <= request.cpu < nr_cpus:
        raise HarnessError(f"--cpu {request.cpu} is out of range: the kernel has "
                           f"NR_CPUS={nr_cpus}, so use 0..{nr_cpus - 1}")


def _frame_lines(expect: KernelExpectation) -> list[FrameLine]:
    lines = []
    for frame in expect.frames:
        address = f"{frame.address:016x}" if frame.address is not None else ""
        lines += [FrameLine(address, frame.text)] * frame.repeat[1]
    return lines


def with_sources(expect: KernelExpectation, kernel: KernelImage) -> KernelExpectation:
    """The expected frames with their calls' file:line, so a reason that
    names one points into the tree."""
    sites = _call_sites(kernel, [f.address for f in expect.frames if f.address is not None])
    frames = tuple(replace(f, source=sites[f.address]) if f.address in sites else f
                   for f in expect.frames)
    return replace(expect, frames=frames)


def _call_sites(kernel: KernelImage, addresses: list[int]) -> dict[int, str]:
    return call_sites(kernel.vmlinux, addresses, kernel.source_root,
                      keep_tree_path=Path(kernel.given).is_dir())


def with_call_sites(kernel: KernelImage, expect: KernelExpectation,
                    *frame_lists: list[FrameLine]) -> list[list[FrameLine]]:
    """Each frame with the file:line of its call: the expected frames' are
    known already (:func:`with_sources`); addr2line is asked only for the
    addresses a run printed that were not expected (none, when it passes)."""
    by_text = {f"{f.address:016x}": f.source for f in expect.frames
               if f.address is not None and f.source}
    unknown = {int(f.address, 16) for frames in frame_lists for f in frames
               if f.address and f.address not in by_text}
    by_text.update((f"{a:016x}", site) for a, site in _call_sites(kernel, list(unknown)).items())
    return [[replace(f, source=by_text[f.address]) if f.address in by_text else f
             for f in frames] for frames in frame_lists]


def run_qemu(request: QemuRequest) -> RunRecord:
    """Build if needed, boot the scenario's fault, judge the console."""
    started = time.monotonic()
    kernel = request.kernel or obtain_kernel(request.config, request.kernel_src,
                                             out_dir=request.out_dir)
    build_ms = (time.monotonic() - started) * 1000
    scenario = kernel_scenario(request.scenario)
    _validate(request, kernel, scenario)
    sizes = stack_sizes(kernel)
    smap, image = kernel_files(kernel)
    scenario = resolve(scenario, request.mode, lambda name: smap.hyp(name) is not None)
    injection = kernel_faults.inject(scenario, smap, image, request.cpu)
    patched = kernel_faults.apply(image, smap, injection)
    code = KernelCode(smap, patched)
    expect = with_sources(expectation(kernel, scenario, request.mode, injection, code,
                                      sizes), kernel)
    seed = request.kaslr_seed if kernel.enabled("RANDOMIZE_BASE") else 0
    cache = kernel_cache(request.out_dir)
    with tempfile.TemporaryDirectory(prefix="pyharness-qemu-") as scratch:
        image_copy = Path(scratch) / "Image"
        image_copy.write_bytes(patched)
        most, why = frame_line_bound(kernel, expect.panicking_cpus, sizes)
        result = boot(BootOptions(image=image_copy, mode=request.mode, cpus=injection.cpus,
                                  kaslr_seed=seed, dtb_dir=_dtb_dir(cache),
                                  wall_budget_s=request.timeout_s,
                                  silent_after=KVM_INIT_MARKER if expect.hangs else None,
                                  max_frame_lines=most, frame_bound_why=why,
                                  monitor=RunawayMonitor(Path(scratch),
                                                         kernel_names(kernel, smap))))
    judgement = judge_kernel_run(result, expect)
    reasons = list(judgement.reasons)
    differences: list[Difference] = []
    if request.differential and scenario.shared:
        differences = compare(lab_console(request, kernel), result.console)
        reasons += [f"differential: {d.describe()}" for d in differences
                    if d.explanation is None]
    verdict = judgement.verdict
    if verdict is Verdict.PASS and reasons:
        verdict = Verdict.FAIL
    expected_lines, actual_lines = with_call_sites(kernel, expect, _frame_lines(expect),
                                                   list(judgement.actual_frames))
    # The panic's "Kernel Offset" line; a runaway never prints it, its
    # stopped CPUs tell instead.
    offset = next((int(m.group(1), 16) for line in result.console
                   if (m := _KERNEL_OFFSET.search(line))), result.kaslr_offset or 0)
    spec = RunSpec(config=request.config, config_name=kernel.config_name, mode=request.mode,
                   scenario=scenario.name, cpu=request.cpu, kaslr_seed=request.kaslr_seed,
                   kernel_src=kernel.given, generation=kernel.generation,
                   unwinder=request.label or default_label(kernel),
                   timeout_s=request.timeout_s, platform=QEMU,
                   differential=request.differential)
    return cap_record(RunRecord(spec=spec, verdict=verdict, reasons=reasons,
                     console=result.console, instructions=0,
                     elapsed_ms=round(result.elapsed_ms, 3), kaslr_offset=offset,
                     run_status=result.status, exit_status=result.exit_code,
                     expected=expected_lines, actual=actual_lines,
                     expected_panic=f"{scenario.panic} at {expect.panic_text}",
                     build_ms=round(build_ms, 3), elf=str(kernel.vmlinux),
                     differences=[d.describe() for d in differences],
                     tree=provenance_of(kernel.given)))


def default_label(kernel: KernelImage) -> str:
    """A real run's row when nothing names it: ``qemu-linux-6.12`` (as the
    matrix labels a tree of that generation), ``qemu-debian-<ABI>``."""
    tree = kernel.label if kernel.origin == "debian" else f"linux-{kernel.generation}"
    return f"{QEMU_LABEL_PREFIX}{tree}"


def lab_console(request: QemuRequest, kernel: KernelImage) -> list[str]:
    """The console of the same scenario on the lab's fast path, built with
    the tree's own unwinder (the same configuration, mode, CPU and seed)."""
    lab = run_one(RunRequest(config=request.config, scenario=request.scenario,
                             mode=request.mode, cpu=request.cpu,
                             kaslr_seed=request.kaslr_seed, kernel_src=kernel.given))
    return lab.console


def _dtb_dir(cache: Path) -> Path:
    path = cache / DTB_DIR
    os.makedirs(path, exist_ok=True)
    return path
