"""The checker, tested by mutation: a correct console from a real run,
changed one thing at a time, must fail with the right reason."""

from __future__ import annotations

import dataclasses
import re

import pytest

from pyharness.judge.checker import check, strip_timestamp
from pyharness.run.runner import RunRequest, observe


@pytest.fixture(scope="module")
def overflow():
    """A passing protected stack_overflow run on pkvm (KASLR on)."""
    obs = observe(RunRequest(config="pkvm", scenario="stack_overflow", mode="protected",
                             cpu=1, kaslr_seed=3))
    assert check(obs.result, obs.expect).passed
    return obs


def frame_lines(console: list[str]) -> list[int]:
    return [i for i, line in enumerate(console) if "kvm [1]:  [<" in line]


def verdict_for(obs, console: list[str]):
    return check(dataclasses.replace(obs.result, console=console), obs.expect)


def mutate(obs, change) -> list[str]:
    console = list(obs.result.console)
    change(console)
    return console


def test_unchanged_console_passes(overflow):
    assert verdict_for(overflow, list(overflow.result.console)).verdict == "pass"


def test_dropped_frame(overflow):
    frames = frame_lines(overflow.result.console)
    console = mutate(overflow, lambda c: c.pop(frames[-2]))
    reasons = verdict_for(overflow, console).reasons
    last = len(frames) - 2
    # Aligned: one dropped frame is one reason, not a cascade after it.
    assert len(reasons) == 1, reasons
    assert reasons[0].startswith(f"frame {last}: missing, expected __kvm_nvhe_handle_trap")


def test_swapped_frames(overflow):
    frames = frame_lines(overflow.result.console)
    a, b = frames[0], frames[1]

    def swap(c):
        c[a], c[b] = c[b], c[a]
    reasons = verdict_for(overflow, mutate(overflow, swap)).reasons
    # Aligned: the frame that moved is missing where it belongs and
    # unexpected where it was printed; nothing else is reported.
    assert len(reasons) == 2, reasons
    assert reasons[0].startswith("frame 0: missing, expected __kvm_nvhe_hyp_panic+")
    assert reasons[1].startswith("frame 1: unexpected __kvm_nvhe_hyp_panic+")


def bump_offset(line: str, delta: int) -> str:
    return re.sub(r"\+0x([0-9a-f]+)/", lambda m: f"+{int(m[1], 16) + delta:#x}/", line, count=1)


def test_off_by_one_offset(overflow):
    i = frame_lines(overflow.result.console)[2]
    console = mutate(overflow, lambda c: c.__setitem__(i, bump_offset(c[i], -1)))
    reasons = verdict_for(overflow, console).reasons
    assert len(reasons) == 1 and reasons[0].startswith("frame 2: expected ")
    assert "__kvm_nvhe_recursive_death+0x" in reasons[0]


def test_kaslr_shifted_address(overflow):
    i = frame_lines(overflow.result.console)[3]
    offset = overflow.result.kaslr_offset
    assert offset

    def shift(c):
        c[i] = re.sub(r"\[<([0-9a-f]{16})>\]",
                      lambda m: f"[<{int(m[1], 16) + offset:016x}>]", c[i])
    reasons = verdict_for(overflow, mutate(overflow, shift)).reasons
    assert len(reasons) == 1 and reasons[0].startswith("frame 3: expected ")


def test_wrong_header(overflow):
    def swap_header(c):
        i = next(i for i, line in enumerate(c) if "Protected nVHE HYP call trace:" in line)
        c[i] = c[i].replace("Protected", "Non-protected")
    reasons = verdict_for(overflow, mutate(overflow, swap_header)).reasons
    assert any(r.startswith("header: expected the protected header") for r in reasons)


def test_missing_footer(overflow):
    def drop_footer(c):
        c.remove(next(line for line in c if "---- End of Protected" in line))
    reasons = verdict_for(overflow, mutate(overflow, drop_footer)).reasons
    assert "footer missing" in reasons


def test_wrong_panic_line(overflow):
    def edit(c):
        i = next(i for i, line in enumerate(c) if "nVHE hyp panic at:" in line)
        c[i] = bump_offset(c[i], 4)
    reasons = verdict_for(overflow, mutate(overflow, edit)).reasons
    assert len(reasons) == 1 and reasons[0].startswith("panic line: expected ")


def test_missing_host_panic(overflow):
    console = [line for line in overflow.result.console if "Kernel panic" not in line]
    reasons = verdict_for(overflow, console).reasons
    assert any("host panic" in r for r in reasons)


def test_truncated_console(overflow):
    frames = frame_lines(overflow.result.console)
    console = overflow.result.console[:frames[10]]
    reasons = verdict_for(overflow, console).reasons
    assert "footer missing" in reasons
    assert any(r.startswith("frame 10: missing") for r in reasons)


def test_did_not_finish_is_a_failure_with_its_reason():
    obs = observe(RunRequest(config="pkvm", scenario="stack_overflow", mode="nvhe",
                             max_instructions=20_000))
    verdict = check(obs.result, obs.expect)
    assert verdict.verdict == "fail"
    assert any(r.startswith("did not finish after 20000 instructions at") for r in verdict.reasons)


def test_smoke_lines():
    obs = observe(RunRequest(config="tiny", scenario="smoke"))
    assert check(obs.result, obs.expect).passed
    wrong = [line.replace("124", "125") for line in obs.result.console]
    reasons = verdict_for(obs, wrong).reasons
    assert reasons == ("line missing (or out of order): "
                       "'kvm [1]: smoke: hypervisor returned 124'",)


def test_strip_timestamp():
    assert strip_timestamp("[    0.000001] kvm [1]: x") == "kvm [1]: x"
    assert strip_timestamp("kvm [1]: x") == "kvm [1]: x"


def test_stray_line_inside_the_trace(overflow):
    i = frame_lines(overflow.result.console)[5]
    console = mutate(overflow, lambda c: c.insert(i, "[    0.000042] something else"))
    reasons = verdict_for(overflow, console).reasons
    assert reasons == ("unexpected line inside the trace: '[    0.000042] something else'",)


def _replace_line(obs, find: str, old: str, new: str) -> list[str]:
    def change(console):
        i = next(k for k, line in enumerate(console) if find in line)
        assert old in console[i], console[i]
        console[i] = console[i].replace(old, new, 1)
    return mutate(obs, change)


def test_footer_of_the_other_kind(overflow):
    console = _replace_line(overflow, "---- End of Protected", "Protected", "Non-protected")
    reasons = verdict_for(overflow, console).reasons
    assert reasons == ("footer: '---- End of Non-protected nVHE HYP call trace ----' does "
                       "not close the protected header",)


@pytest.mark.parametrize("name", ["PS", "PC", "ESR", "FAR", "HPFAR", "PAR", "VCPU"])
def test_a_panic_register_the_hypervisor_did_not_have(overflow, name):
    line = next(l for l in overflow.result.console if f"{name}:" in l and "Kernel" not in l)
    value = re.search(rf"\b{name}:([0-9a-f]+)", line)[1]
    wrong = f"{int(value, 16) ^ 0x10:0{len(value)}x}"
    console = _replace_line(overflow, f"{name}:{value}", f"{name}:{value}", f"{name}:{wrong}")
    reasons = verdict_for(overflow, console).reasons
    assert len(reasons) == 1 and reasons[0].startswith(f"panic registers: {name} is 0x"), reasons


def test_wrong_hyp_offset(overflow):
    console = _replace_line(overflow, "Hyp Offset: 0x", "Hyp Offset: 0x", "Hyp Offset: 0x1")
    reasons = verdict_for(overflow, console).reasons
    assert len(reasons) == 1 and reasons[0].startswith("Hyp Offset: expected 0x"), reasons


def test_a_wrong_host_frame(overflow):
    console = _replace_line(overflow, " panic+0x", "panic+0x", "panic+0x1")
    reasons = verdict_for(overflow, console).reasons
    assert len(reasons) == 1 and reasons[0].startswith("host frame 1: expected panic+0x"), reasons


def test_a_dropped_host_frame(overflow):
    def drop(console):
        console.pop(next(i for i, line in enumerate(console) if " panic+0x" in line))
    reasons = verdict_for(overflow, mutate(overflow, drop)).reasons
    assert reasons == (reasons[0],) and reasons[0].startswith("host frame 1: missing"), reasons


def test_footprint_problems_fail_the_run(overflow):
    expect = dataclasses.replace(overflow.expect, footprint=("footprint: too big",))
    judgement = check(overflow.result, expect)
    assert judgement.verdict == "fail" and "footprint: too big" in judgement.reasons


@pytest.fixture(scope="module")
def cannot_dump():
    """A passing protected hyp_panic run on nvhe: no protected stacktrace option."""
    obs = observe(RunRequest(config="nvhe", scenario="hyp_panic", mode="protected",
                             cpu=0, kaslr_seed=3))
    assert obs.expect.dump == "cannot-dump" and check(obs.result, obs.expect).passed
    return obs


def test_the_cannot_dump_line_names_the_generations_option(cannot_dump):
    """7.x names the option CONFIG_PKVM_STACKTRACE; the lab, 6.1 and 6.12
    CONFIG_PROTECTED_NVHE_STACKTRACE. Either, where the other is due, fails."""
    renamed = mutate(cannot_dump, lambda c: c.__setitem__(
        next(i for i, line in enumerate(c) if "Cannot dump" in line),
        next(line for line in c if "Cannot dump" in line).replace(
            "PROTECTED_NVHE_STACKTRACE", "PKVM_STACKTRACE")))
    assert verdict_for(cannot_dump, renamed).reasons == (
        "Cannot dump line: expected '!CONFIG_PROTECTED_NVHE_STACKTRACE', got "
        "'!CONFIG_PKVM_STACKTRACE'",)
    seven = dataclasses.replace(cannot_dump.expect, cannot_dump_reason="!CONFIG_PKVM_STACKTRACE")
    assert check(dataclasses.replace(cannot_dump.result, console=renamed), seven).passed
    assert check(cannot_dump.result, seven).reasons == (
        "Cannot dump line: expected '!CONFIG_PKVM_STACKTRACE', got "
        "'!CONFIG_PROTECTED_NVHE_STACKTRACE'",)
