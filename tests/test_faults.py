"""Fault injection and the probes, in every shipped config and both modes."""

from __future__ import annotations

import pytest

from pyharness.kconfig import resolve as kconfig
from pyharness.judge.corruption import FAULTS
from pyharness.run.runner import RunRequest, run_one
from pyharness.judge.tracelog import parse_log

SHIPPED = [kconfig.config_name(p) for p in kconfig.named_configs()]
STOPPING = ("fault_fp_misaligned", "fault_fp_odd", "fault_fp_outside", "fault_fp_wraps", "fault_fp_guard_page",
            "fault_fp_self_loop", "fault_fp_backwards", "fault_overflow_hyp_overflow")


def run(config: str, scenario: str, mode: str):
    nr_cpus = kconfig.resolve(kconfig.find_config(config)).summary.nr_cpus
    return run_one(RunRequest(config=config, scenario=scenario, mode=mode,
                              cpu=nr_cpus - 1, kaslr_seed=5))


def trace_of(record):
    panic = parse_log("\n".join(record.console)).sole_panic()
    assert panic is not None and panic.host is not None and panic.host.footer
    return panic.trace


@pytest.mark.parametrize("mode", ["nvhe", "protected"])
@pytest.mark.parametrize("fault", [f.name for f in FAULTS])
@pytest.mark.parametrize("config", SHIPPED)
def test_fault_scenario_passes(config, fault, mode):
    record = run(config, fault, mode)
    assert record.verdict == "pass", "\n".join(record.reasons)
    assert record.run_status == "exited" and record.exit_status == 1   # the host did not fault


@pytest.mark.parametrize("mode", ["nvhe", "protected"])
@pytest.mark.parametrize("fault", STOPPING)
def test_unwind_stops_at_the_bad_record(fault, mode):
    """The dump is a strict prefix of the uncorrupted one, with its footer."""
    base = next(f.base for f in FAULTS if f.name == fault)
    clean, broken = trace_of(run("pkvm", base, mode)), trace_of(run("pkvm", fault, mode))
    assert broken.footer
    assert 1 < len(broken.frames) < len(clean.frames)
    assert [f.raw.split("]", 1)[1] for f in broken.frames] == \
        [f.raw.split("]", 1)[1] for f in clean.frames[:len(broken.frames)]]


@pytest.mark.parametrize("mode", ["nvhe", "protected"])
def test_tagged_return_addresses_print_masked(mode):
    clean, tagged = trace_of(run("pkvm", "hyp_panic", mode)), \
        trace_of(run("pkvm", "fault_lr_tagged", mode))
    # Frame 0 is the start pc; the lrs of records 1-3 (frames 2-4) carry a
    # tag, PAC bits or both: printed as if clean.
    assert [(f.address, f.symbolic) for f in tagged.frames[:5]] == \
        [(f.address, f.symbolic) for f in clean.frames[:5]]
    assert all(f.address >> 48 == 0xFFFF for f in tagged.frames[:5])
    # Record 4's lr is odd: bit 0 is a VA bit, kept.
    assert tagged.frames[5].address == clean.frames[5].address + 1
    # Record 5's lr is the VA range's top (48 bits): plus the hyp offset it
    # wraps past 2^64, and the address is printed with its leading zeros.
    top = tagged.frames[6]
    assert top.address == ((1 << 48) - 4 + 0xFFFF7FF7C7E00000) % (1 << 64) and top.symbol is None
    assert f"[<{top.address:016x}>]" in top.raw


@pytest.mark.parametrize("config", ["pkvm", "pkvm_16k", "pkvm_64k"])
def test_longest_chain_fits_the_buffer(config):
    """The deepest valid chain from the start is saved whole and terminated."""
    record = run(config, "fault_longest_chain", "protected")
    assert record.verdict == "pass", record.reasons
    trace = trace_of(record)
    assert trace.footer and len(trace.frames) > 256      # every overflow-stack slot, and more


@pytest.mark.parametrize("mode", ["nvhe", "protected"])
def test_isolation_probe(mode):
    record = run("pkvm", "isolation_probe", mode)
    assert record.verdict == "pass", record.reasons
    if mode == "protected":
        assert record.run_status == "isolation-breach"
    else:
        assert record.run_status == "exited"


def test_overrun_probe_is_caught_by_the_bounds_watch():
    record = run("pkvm", "buffer_overrun_probe", "protected")
    assert record.verdict == "pass", record.reasons
    # Without the buffer there is nothing to overrun.
    assert run("nvhe", "buffer_overrun_probe", "protected").verdict == "pass"


@pytest.mark.parametrize("config", SHIPPED)
@pytest.mark.parametrize("scenario, stack", [("hyp_panic", "hyp"),
                                             ("stack_overflow", "overflow")])
def test_a_record_sits_in_the_last_16_bytes_of_the_stack(config, scenario, stack):
    """docs/oracle.md relies on it: the top of each stack is always read."""
    from pyharness.run.runner import observe
    from pyharness.judge import oracle as oracle_module

    seen = {}
    original = oracle_module.HypOracle._on_unwind_start

    def spy(self, machine, link_address):
        original(self, machine, link_address)
        seen.update(chain=[fp for fp, _ in self.capture.chain],
                    stacks={s.name: s for s in self.stacks()})
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(oracle_module.HypOracle, "_on_unwind_start", spy)
        observe(RunRequest(config=config, scenario=scenario, mode="nvhe"))
    assert seen["stacks"][stack].hi - 16 in seen["chain"]


class _Records:
    """A RecordEditor over a plain dict, for a fault's own preconditions."""

    def __init__(self, chain: list[tuple[int, int]]) -> None:
        self.chain = chain
        self.start_fp, self.start_pc = chain[0][0], 0x1000
        self.hyp_stack = (0xC00001000, 0xC00002000)
        self.overflow_stack = (0xC00010000, 0xC00011000)
        self.trace_buffer: tuple[int, int] | None = (0xC00020000, 0xC00020040)
        self.va_bits = 48
        self.written: dict[int, tuple[int, int]] = {}
        self.words: dict[int, int] = {}

    def write_record(self, address: int, saved_fp: int, lr: int) -> None:
        self.written[address] = (saved_fp, lr)

    def write_words(self, address: int, words: list[int]) -> None:
        self.words.update({address + 8 * i: word for i, word in enumerate(words)})

    def move_start(self, fp: int) -> None:
        self.start_fp = fp


def test_longest_chain_refuses_an_unwind_that_starts_off_the_hyp_stack():
    # A mutant that broke its stacks once started the unwind 16 GiB below
    # the hyp stack: "a record in every slot above the start" was a list
    # that took the worker to 24 GB.
    longest = next(f for f in FAULTS if f.name == "fault_longest_chain")
    with pytest.raises(ValueError, match="not on the hyp stack"):
        longest.inject(_Records([(0x8402090F0, 0x4000), (0x840209100, 0x4004)]))
    on_stack = _Records([(0xC00001F00, 0x4000), (0xC00001F40, 0x4004)])
    longest.inject(on_stack)
    assert len(on_stack.written) == 0x100 // 16 + 0x1000 // 16


def _fault(name: str):
    return next(f for f in FAULTS if f.name == name)


def test_a_straddler_is_reached_from_the_highest_record_with_room_above_it():
    # The hyp stack's last records: 0x...FC0, 0x...FE0 (room: +16 <= top - 8),
    # 0x...FF0 (the last 16 bytes: none).
    chain = [(0xC00001F00, 0x4000), (0xC00001FC0, 0x4004), (0xC00001FE0, 0x4008),
             (0xC00001FF0, 0x400C)]
    records = _Records(chain)
    _fault("fault_hyp_straddles_top").inject(records)
    assert records.written == {0xC00001FE0: (0xC00001FF8, 0x4008)}
    overflow = _Records([(0xC00010FD0, 0x5000), (0xC00010FF0, 0x5004),
                         (0xC00001FF0, 0x400C)])
    _fault("fault_overflow_straddles_top").inject(overflow)
    # hyp_panic's record links to the straddler, whose fp word ends the walk
    # and whose lr (past the stack) is a plausible pc.
    assert overflow.written == {0xC00010FD0: (0xC00010FF8, 0x5000),
                                0xC00010FF8: (0, 0x5000)}


def test_the_stale_buffer_is_non_zero_in_every_slot_and_absent_without_one():
    records = _Records([(0xC00001F00, 0x4000), (0xC00001FF0, 0x4004)])
    stale = _fault("fault_stale_trace_buffer")
    stale.inject(records)
    assert sorted(records.words) == list(range(0xC00020000, 0xC00020040, 8))
    assert all(records.words.values()) and not records.written
    records = _Records([(0xC00001F00, 0x4000)])
    records.trace_buffer = None
    stale.inject(records)
    assert not records.words
