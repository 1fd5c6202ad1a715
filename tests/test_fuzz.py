"""Property-based fuzzing of the unwinder with random frame-record graphs.

Hypothesis draws a graph of records over the free part of the hyp stack
and the overflow stack: random slots, links to other records, to zero, to
misaligned, unmapped or mapped-but-forbidden addresses, and random return
addresses. The harness writes it at the unwind start (as the fault
scenarios do) and the emulator checks, not the firmware:

- the run finishes and the host does not fault (exit through panic());
- the walk ends within (stack bytes / 16) steps;
- the unwinder never reads a forbidden target (a physical-range read
  watch on each one), nor another CPU's stacks, nor writes outside the
  shared buffer (the bounds watch);
- in protected mode there is no isolation breach;
- and the dump is exactly the valid prefix the oracle derives.

Each example also draws the shipped configuration, the CPU and the KASLR
seed. `pytest --fuzz-examples N` scales it (default 25 per mode, a fixed,
derandomized sequence for CI); a run with more examples than that, or with
`--fuzz-seed S`, explores a sequence of its own (the seed is printed, and
`--fuzz-seed` replays it).
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

import pytest

from pyharness.kconfig import resolve as kconfig
from pyharness.platform.geometry import stack_geometry

from pyharness.judge.corruption import Fault, RecordEditor
from pyharness.elf.image import Image, load_image
from pyharness.platform.machine import Machine
from pyharness.judge.checker import check
from pyharness.run.runner import RunRequest, observe
from pyharness.judge.tracelog import parse_log

SHIPPED = [kconfig.config_name(p) for p in kconfig.named_configs()]
NR_CPUS = {name: kconfig.resolve(kconfig.find_config(name)).summary.nr_cpus
           for name in SHIPPED}
DEFAULT_EXAMPLES = 25

link_kinds = st.sampled_from(["record", "record", "record", "zero", "misaligned",
                              "unmapped", "forbidden", "guard"])
record = st.tuples(st.sampled_from(["hyp", "overflow"]), st.integers(0, 255),
                   link_kinds, st.integers(0, 63), st.integers(0, 2**64 - 1),
                   st.booleans())
graphs = st.lists(record, min_size=1, max_size=40)
# Where a graph runs: a shipped configuration, one of its CPUs, a KASLR seed.
places = st.sampled_from(SHIPPED).flatmap(
    lambda name: st.tuples(st.just(name), st.integers(0, NR_CPUS[name] - 1),
                           st.integers(0, 2**32 - 1)))


class GraphFault:
    """Writes one drawn graph; remembers which targets must never be read."""

    def __init__(self, graph: list[tuple]) -> None:
        self.graph = graph
        self.forbidden: list[int] = []     # hyp VAs of mapped, off-stack targets
        self.forbidden_va = 0              # set by the run's setup hook

    def inject(self, editor: RecordEditor) -> None:
        start = editor.chain[0][0]
        hyp_lo, hyp_hi = editor.hyp_stack
        ovf_lo, ovf_hi = editor.overflow_stack
        slots = {"hyp": [a for a in range(hyp_lo, hyp_hi, 16) if a > start],
                 "overflow": list(range(ovf_lo, ovf_hi, 16))}
        lrs = [lr for _, lr in editor.chain]
        placed: list[int] = []
        for stack, index, *_ in self.graph:
            if slots[stack]:
                address = slots[stack][index % len(slots[stack])]
                if address not in placed:
                    placed.append(address)
        forbidden_target = self.forbidden_va
        for n, address in enumerate(placed):
            _, _, kind, target, lr, real_lr = self.graph[n]
            link = {"record": placed[target % len(placed)], "zero": 0,
                    "misaligned": placed[target % len(placed)] + 4,
                    "unmapped": 0x10000 + target * 16,
                    "forbidden": forbidden_target,
                    "guard": hyp_lo - 16 * (target + 1)}[kind]
            if kind == "forbidden":
                self.forbidden.append(link)
            editor.write_record(address, link, lrs[lr % len(lrs)] if real_lr else lr)
        # The panic's own record leads into the graph.
        editor.write_record(start, placed[0], editor.chain[0][1])

    def fault(self) -> Fault:
        return Fault("fuzz", "hyp_panic", "random frame-record graph", self.inject)


def run_graph(graph: list[tuple], mode: str, place: tuple[str, int, int] = ("pkvm", 1, 3)):
    graph_fault = GraphFault(graph)
    reads: list[int] = []

    def setup(machine: Machine, image: Image) -> None:
        # A mapped, hyp-private word that is on no stack.
        target = image.address_of("__kvm_nvhe_recursion_stop")
        pa = image.phys_address(target)

        def on_read(_m: Machine, addr: int, _size: int, _w: bool) -> None:
            if graph_fault.forbidden:
                reads.append(addr)
        machine.add_memory_watch(pa, 8, on_read, reads=True, writes=False)
        graph_fault.forbidden_va = pa + image.layout.hyp_va_offset

    config, cpu, kaslr_seed = place
    obs = observe(RunRequest(config=config, scenario="hyp_panic", mode=mode, cpu=cpu,
                             kaslr_seed=kaslr_seed, fault=graph_fault.fault()), setup=setup)
    return obs, reads


def _seed(request: pytest.FixtureRequest, examples: int) -> int | None:
    """None (the fixed CI sequence), or the seed of a sequence of its own."""
    chosen = request.config.getoption("--fuzz-seed")
    if chosen is None and examples > DEFAULT_EXAMPLES:
        chosen = int.from_bytes(os.urandom(4), "little")
    if chosen is not None:
        print(f"fuzzing with --fuzz-seed {chosen}")
    return chosen


@pytest.mark.parametrize("mode", ["nvhe", "protected"])
def test_random_record_graphs(mode, fuzz_examples, request):
    fuzz_seed = _seed(request, fuzz_examples)

    @settings(max_examples=fuzz_examples, deadline=None, derandomize=fuzz_seed is None,
              database=None, suppress_health_check=[HealthCheck.too_slow])
    @given(graphs, places)
    def property_holds(graph, place):
        obs, forbidden_reads = run_graph(graph, mode, place)
        result = obs.result
        assert result.status.value == "exited" and result.exit_code == 1, result.reason
        geometry = stack_geometry(load_image(obs.built.elf))
        panic = parse_log("\n".join(result.console)).sole_panic()
        assert panic is not None
        assert not forbidden_reads, "the unwinder read an off-stack target"
        assert not obs.violations, obs.violations
        verdict = check(result, obs.expect, obs.violations)
        assert verdict.passed, (place, verdict.reasons)
        if panic.trace is None:                   # protected, no buffer: Cannot dump
            assert panic.cannot_dump is not None
            return
        assert panic.trace.footer
        slots = (geometry.hyp_stack_size + geometry.sizes.overflow_stack) // 16
        assert len(panic.trace.frames) <= slots + 1
    if fuzz_seed is not None:
        property_holds = seed(fuzz_seed)(property_holds)
    property_holds()
