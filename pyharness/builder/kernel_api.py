"""Which generation of the nVHE unwinder a kernel tree's sources are.

Each supported generation has its own compatibility headers
(csrc/kcompat/<generation>) and its own row of the oracle's rules
(pyharness/judge/unwind_model.py). A tree's generation is decided by the
API its four unwinder files have, not by its version: a tree between two
reference trees works where its API is one of theirs, and one whose API is
none of them is refused with what it lacks and what it has that the
nearest generation does not.

- 6.1 (6.1.192): the stack_info / unwind_consume_stack() walk (each stack
  consumed upwards, a stack once left dropped), unwind_init_common() taking
  a task, one-page hyp stacks found through kvm_init_params.stack_hyp_va
  and the host's kvm_arm_hyp_stack_page, CONFIG_PROTECTED_NVHE_STACKTRACE,
  hyp pcs masked with vabits_actual.
- 6.12 (6.12.117): the same, unwind_init_common() taking only the state.
- 7.x (7.2.13): unwind_find_stack() and a struct frame_record
  (asm/stacktrace/frame.h), NVHE_STACK_SIZE hyp stacks and the host's
  kvm_arm_hyp_stack_base, CONFIG_PKVM_STACKTRACE, pcs masked with
  __hyp_va_bits.

Older trees (stack types and a stacks_done bitmap, 5.19/6.0) are refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping

COMMON_H = "arch/arm64/include/asm/stacktrace/common.h"
NVHE_H = "arch/arm64/include/asm/stacktrace/nvhe.h"
HYP_STACKTRACE_C = "arch/arm64/kvm/hyp/nvhe/stacktrace.c"
HOST_STACKTRACE_C = "arch/arm64/kvm/stacktrace.c"
FRAME_H = "arch/arm64/include/asm/stacktrace/frame.h"

GENERATIONS = ("6.1", "6.12", "7.x")
# The tree each generation was written from, and its Debian package.
REFERENCE_TREES = {"6.1": "6.1.192", "6.12": "6.12.117", "7.x": "7.2.13"}
DEBIAN_PACKAGES = {"6.1": "linux-source-6.1", "6.12": "linux-source-6.12",
                   "7.x": "linux-source-7.2"}


class UnknownApi(ValueError):
    """The sources are no generation's; the message says how they differ."""


@dataclass(frozen=True)
class Feature:
    """One piece of API a generation has or has not, found by name."""

    name: str           # as a message names it
    where: str          # the file it is looked for in
    pattern: str

    def found(self, texts: Mapping[str, str]) -> bool:
        return re.search(self.pattern, texts[self.where]) is not None


FEATURES = {
    "init_task": Feature("unwind_init_common() taking a task", COMMON_H,
                         r"\bunwind_init_common\s*\([^)]*\bstruct\s+task_struct\b"),
    "find_stack": Feature("unwind_find_stack()", COMMON_H, r"\bunwind_find_stack\s*\("),
    "frame_record": Feature("struct frame_record", COMMON_H, r"\bstruct\s+frame_record\b"),
    "stack_page": Feature("kvm_arm_hyp_stack_page", NVHE_H, r"\bkvm_arm_hyp_stack_page\b"),
    "stack_base": Feature("kvm_arm_hyp_stack_base", NVHE_H, r"\bkvm_arm_hyp_stack_base\b"),
    "nvhe_stack_size": Feature("NVHE_STACK_SIZE", HYP_STACKTRACE_C, r"\bNVHE_STACK_SIZE\b"),
    "protected_option": Feature("CONFIG_PROTECTED_NVHE_STACKTRACE", HYP_STACKTRACE_C,
                                r"\bCONFIG_PROTECTED_NVHE_STACKTRACE\b"),
    "pkvm_option": Feature("CONFIG_PKVM_STACKTRACE", HYP_STACKTRACE_C,
                           r"\bCONFIG_PKVM_STACKTRACE\b"),
    "vabits_actual": Feature("vabits_actual", HOST_STACKTRACE_C, r"\bvabits_actual\b"),
    "hyp_va_bits": Feature("__hyp_va_bits", HOST_STACKTRACE_C, r"\b__hyp_va_bits\b"),
}

# The features each generation has; it has none of the others.
SIGNATURES = {
    "6.1": frozenset({"init_task", "stack_page", "protected_option", "vabits_actual"}),
    "6.12": frozenset({"stack_page", "protected_option", "vabits_actual"}),
    "7.x": frozenset({"find_stack", "frame_record", "stack_base", "nvhe_stack_size",
                      "pkvm_option", "hyp_va_bits"}),
}

# Every generation's nVHE unwinder uses these.
_COMMON = ((r"\bstack_hyp_va\b", HYP_STACKTRACE_C),
           (r"\bkvm_nvhe_prepare_backtrace\s*\(", HYP_STACKTRACE_C),
           (r"\bkvm_nvhe_dump_backtrace\s*\(", HOST_STACKTRACE_C))


def _has(pattern: str, text: str) -> bool:
    return re.search(pattern, text) is not None


def _check_common(texts: Mapping[str, str]) -> None:
    common_h = texts[COMMON_H]
    if not _has(r"\bunwind_consume_stack\s*\(", common_h):
        if _has(r"\bstacks_done\b", common_h) or _has(r"\benum\s+stack_type\b", common_h):
            raise UnknownApi(f"{COMMON_H} has the older unwinder (stack types and a "
                             "stacks_done bitmap, before 6.1)")
        raise UnknownApi(f"{COMMON_H} has no unwind_consume_stack(): not an arm64 "
                         "unwinder this build knows")
    for needed, where in _COMMON:
        if not _has(needed, texts[where]):
            name = needed.replace(r"\b", "").replace(r"\s*\(", "()")
            raise UnknownApi(f"{where} does not use {name}: not an nVHE unwinder this "
                             "build knows")
    init = re.search(r"\bunwind_init_common\s*\(([^)]*)\)\s*\{", common_h)
    if init is None:
        raise UnknownApi(f"{COMMON_H} defines no unwind_init_common()")
    params = init.group(1)
    if "," in params and not _has(r"\bstruct\s+task_struct\b", params):
        raise UnknownApi(f"{COMMON_H}: unwind_init_common({' '.join(params.split())}) is "
                         "neither the (state, task) form of 6.1 nor the (state) form of "
                         "6.12 and 7.x")


def _differences(generation: str, present: frozenset[str]) -> list[str]:
    signature = SIGNATURES[generation]
    lacks = [f"it lacks {FEATURES[f].name} ({FEATURES[f].where})"
             for f in FEATURES if f in signature - present]
    has = [f"it has {FEATURES[f].name} ({FEATURES[f].where}), which {generation} has not"
           for f in FEATURES if f in present - signature]
    return lacks + has


def detect_generation(texts: Mapping[str, str]) -> str:
    """The generation whose API the tree's four unwinder files (``texts``,
    by path in the tree) have, or :class:`UnknownApi` naming how they differ
    from the nearest one."""
    _check_common(texts)
    present = frozenset(name for name, feature in FEATURES.items() if feature.found(texts))
    for generation in GENERATIONS:
        if SIGNATURES[generation] == present:
            return generation
    nearest = min(reversed(GENERATIONS), key=lambda g: len(SIGNATURES[g] ^ present))
    raise UnknownApi(f"its nVHE unwinder API is no supported generation's; the nearest is "
                     f"{nearest} (as in {REFERENCE_TREES[nearest]}), but "
                     + "; ".join(_differences(nearest, present)))
