"""Reusing one Unicorn instance per image (PYHARNESS_REUSE=1) changes nothing.

A sequence of different runs of one image (modes, CPUs, KASLR seeds, a
budget stop that ends with Unicorn's own count, a fault injected into
memory, a write past the trace buffer, an isolation breach, extra code
hooks and memory watches from a test) gives, run by run, the records a
fresh instance gives. An instance a budget stop ended is not reused:
Unicorn 2.1.4 removes its instruction-count hook at the next emu_start,
and with the Python hooks the next run then resumed at the old pc.
"""

from __future__ import annotations

import dataclasses

import pytest

from pyharness.elf.image import Image
from pyharness.platform import a64, native
from pyharness.platform.machine import Machine
from pyharness.platform.mmio import MMIO_EXIT
from pyharness.platform.results import RunStatus
from pyharness.run.runner import RunRequest, judge, observe

SEQUENCE = [
    dict(scenario="hyp_panic", mode="protected", cpu=1, kaslr_seed=1),
    dict(scenario="stack_overflow", mode="nvhe", cpu=0, kaslr_seed=2, max_instructions=30_001),
    dict(scenario="bug", mode="nvhe", cpu=0, kaslr_seed=3),
    dict(scenario="fault_fp_self_loop", mode="protected", cpu=0, kaslr_seed=4),
    dict(scenario="buffer_overrun_probe", mode="protected", cpu=1, kaslr_seed=5),
    dict(scenario="isolation_probe", mode="protected", cpu=0, kaslr_seed=6),
    dict(scenario="hyp_panic", mode="nvhe", cpu=0, kaslr_seed=7, extra_hooks=True),
    dict(scenario="stack_overflow", mode="protected", cpu=1, kaslr_seed=8),
    dict(scenario="hyp_panic", mode="protected", cpu=1, kaslr_seed=1),
]


def run_sequence(monkeypatch, reuse: bool) -> tuple[list, list]:
    monkeypatch.setenv("PYHARNESS_REUSE", "1" if reuse else "0")
    records, platforms = [], []
    for step in SEQUENCE:
        step = dict(step)
        extra = step.pop("extra_hooks", False)
        seen: list[tuple[str, int]] = []

        def setup(machine: Machine, image: Image) -> None:
            platforms.append(machine._platform)
            if extra:   # a test's own hooks, on this run only
                machine.add_code_hook(image.address_of("__kvm_nvhe_hyp_panic"),
                                      lambda m, link: seen.append(("code", link)))
                pa = image.phys_address(image.address_of("__kvm_nvhe_recursion_stop"))
                machine.add_memory_watch(pa, 8, lambda m, a, n, w: seen.append(("read", a)),
                                         reads=True, writes=False)

        obs = observe(RunRequest(config="pkvm", **step), setup=setup)
        record = judge(obs).to_json()
        for key in ("elapsed_ms", "build_ms"):
            record.pop(key)
        records.append((record, dataclasses.replace(obs.result, elapsed_ms=0.0), obs.expect,
                        obs.violations, obs.foreign_changes, seen))
    return records, platforms


@pytest.mark.parametrize("switch", ["1", "0"])
def test_a_reused_instance_gives_the_records_of_fresh_ones(monkeypatch, switch):
    monkeypatch.setenv(native.ENV_SWITCH, switch)
    fresh, fresh_platforms = run_sequence(monkeypatch, reuse=False)
    reused, reused_platforms = run_sequence(monkeypatch, reuse=True)
    assert len(set(map(id, fresh_platforms))) == len(SEQUENCE)
    # One instance throughout, except that the one a budget stop ended
    # (Unicorn's own instruction count) is not reused.
    first, after_budget = reused_platforms[0], reused_platforms[2]
    assert reused_platforms[:2] == [first, first] and after_budget is not first
    assert all(platform is after_budget for platform in reused_platforms[2:])
    for step, a, b in zip(SEQUENCE, fresh, reused):
        assert a == b, step
    verdicts = [record["verdict"] for record, *_ in fresh]
    assert verdicts == ["pass", "fail", *["pass"] * (len(SEQUENCE) - 2)], \
        [record["reasons"] for record, *_ in fresh]
    assert fresh[6][-1], "the extra hooks should have fired"


def test_forked_workers_and_their_parent_do_not_share_pooled_ram(monkeypatch):
    """Matrix workers are forked: an instance pooled in the parent is a copy
    in each worker, its RAM private (an anonymous mmap is shared by default)."""
    from pyharness.matrix import Selection, plan, run_matrix

    monkeypatch.setenv("PYHARNESS_REUSE", "1")
    request = RunRequest(config="pkvm", scenario="hyp_panic", mode="protected", cpu=1)
    before = judge(observe(request))
    specs = plan(Selection(configs=("pkvm",), scenarios=("hyp_panic", "bug", "smoke"))).specs
    result = run_matrix(specs, jobs=2)
    assert result.exit_code == 0, [r.reasons for r in result.failures]
    after = judge(observe(request))
    assert (after.verdict, after.console) == (before.verdict, before.console) == \
        ("pass", before.console)


@pytest.mark.parametrize("reuse", ["0", "1"])
def test_an_exited_run_stops_at_its_exit_store(monkeypatch, reuse):
    """The pc an exit leaves is the exit register's store, fresh or warm:
    Unicorn keeps pc exact only at block starts, and platform_exit's store
    begins a block (docs/platform.md). Decoded here from the image's bytes
    and the final registers, independently of the firmware's claim."""
    monkeypatch.setenv("PYHARNESS_REUSE", reuse)
    for step in SEQUENCE[:3] + SEQUENCE[-1:]:
        step = {key: value for key, value in step.items() if key != "extra_hooks"}
        machines: list[Machine] = []
        obs = observe(RunRequest(config="pkvm", **step),
                      setup=lambda machine, _image: machines.append(machine))
        result, machine = obs.result, machines[0]
        if result.status is not RunStatus.EXITED:
            continue
        regs = result.registers
        image = machine.image
        link = regs["pc"] - result.kaslr_offset
        hit = image.lookup(link)
        assert hit is not None and hit.symbol.name == "platform_exit", hex(regs["pc"])
        insn = int.from_bytes(image.memory_image(0)[image.phys_address(link)
                                                   - machine.layout.image_phys_base:][:4],
                              "little")
        target = a64.data_access(insn, lambda n: regs["sp"] if n == 31 else regs[f"x{n}"],
                                 regs["pc"])
        assert target == (machine.layout.mmio_va_el1 + MMIO_EXIT, 8), (step, hex(insn))


def test_a_runs_block_hook_does_not_outlive_it(monkeypatch):
    """Machine.add_block_hook is the run's own: the next run of the image,
    on the same instance, neither calls it nor slows down with it (the
    mutation baseline's coverage probe once stacked one per run)."""
    monkeypatch.setenv("PYHARNESS_REUSE", "1")
    entered: list[int] = []
    platforms = []

    def probe(machine: Machine, _image: Image) -> None:
        platforms.append(machine._platform)
        machine.add_block_hook(lambda va, size: entered.append(va))

    request = RunRequest(config="pkvm", scenario="hyp_panic", mode="protected", cpu=0)
    first = judge(observe(request, setup=probe))
    blocks = len(entered)
    assert first.verdict == "pass" and blocks > 1000
    second = judge(observe(request, setup=lambda machine, _image: platforms.append(
        machine._platform)))
    assert second.verdict == "pass" and len(entered) == blocks
    assert platforms[0] is platforms[1]
