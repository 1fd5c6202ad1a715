"""pyharness mutate, without building: the tokenizer, the operators, the
mutant list (order, ids, keys), the equivalents list, the narrowing."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyharness.errors import HarnessError
from pyharness.mutate import equivalents
from pyharness.mutate.asm import asm_operators
from pyharness.mutate.generate import LAB_TARGETS, Target, mutants_of, select_files
from pyharness.mutate.lexer import tokenize
from pyharness.mutate.operators import constant_variants
from pyharness.mutate.plan import compiled_in, order_runs
from pyharness.kconfig import resolve as kconfig
from pyharness.paths import source_root
from pyharness.run.spec import RunSpec

SAMPLE = """\
/* a < b in a comment */
// and c >= d here
#include <types.h>
#ifdef CONFIG_PROTECTED_NVHE_STACKTRACE
#define SIZE\t(4096 / 16 + 1)
#endif
#if 0 < 1
#endif

static int f(int a, int b)
{
\tconst char *s = "x < y";
\tif (!a && b > 2)
\t\treturn a;
\tg(a, b);
\treturn b;
}
"""


def _mutants(text: str, tmp_path: Path, name: str = "t.c") -> list:
    (tmp_path / name).write_text(text)
    return mutants_of("lab", tmp_path, [Target(name)])


def test_lexer_skips_comments_strings_and_directives_but_reads_define_bodies():
    tokens, directives = tokenize(SAMPLE)
    texts = [t.text for t in tokens]
    assert "a" in texts and '"x < y"' in texts
    assert not any(t.text == "<" and t.line in (1, 2, 3, 7) for t in tokens)
    body = [t for t in tokens if t.in_define]
    assert [t.text for t in body] == ["(", "4096", "/", "16", "+", "1", ")"]
    assert body[0].define == "SIZE"
    assert body[0].conditions[0].symbol == "CONFIG_PROTECTED_NVHE_STACKTRACE"
    assert {d.name for d in directives} == {"include", "ifdef", "define", "endif", "if"}
    inside = [t for t in tokens if t.text == "g"]
    assert inside[0].function == "f" and inside[0].depth == 1


def test_operators_on_a_small_function(tmp_path):
    mutants = _mutants(SAMPLE, tmp_path)
    by_op: dict[str, list] = {}
    for m in mutants:
        by_op.setdefault(m.operator, []).append(m)
    assert {m.after for m in by_op["ror"]} >= {"if (!a && b >= 2)", "if (!a && b != 2)"}
    assert "#define SIZE (4096 / 16 + 2)" in {m.after for m in by_op["const"]}
    assert "#define SIZE (2048 / 16 + 1)" in {m.after for m in by_op["const"]}
    assert {m.after for m in by_op["cond-drop"]} == {"if (b > 2)", "if (!a)"}
    assert {m.after for m in by_op["not-drop"]} == {"if (a && b > 2)"}
    assert {m.after for m in by_op["args-swap"]} == {"g(b, a);"}
    assert {m.before for m in by_op["stmt-del"]} == {"g(a, b);",
                                                     "if (!a && b > 2) return a;"}
    # nothing inside the string, the comments or the #include/#if lines
    string_at = SAMPLE.index('"x < y"')
    assert not any(string_at < m.edit.start < string_at + 7 for m in mutants)
    assert all(m.line not in (1, 2, 3, 7) for m in mutants)
    # the #define body is under #ifdef CONFIG_PROTECTED_NVHE_STACKTRACE
    size = by_op["const"][0]
    assert size.define == "SIZE" and size.conditions[0].want


def test_deleting_the_lone_body_of_an_if_leaves_braces(tmp_path):
    text = "void f(int a)\n{\n\tif (a)\n\t\tg();\n\telse\n\t\th();\n}\n"
    bodies = [m for m in _mutants(text, tmp_path) if m.operator == "stmt-del"
              and m.before in ("g();", "h();")]
    assert len(bodies) == 2
    for m in bodies:
        mutated = m.edit.apply(text)
        assert mutated.count("\n") == text.count("\n")   # line numbers kept
        assert "{}" in mutated


def test_constant_variants_keep_format_and_drop_repeats():
    assert constant_variants(1) == [(2, "+1"), (0, "-1")]
    assert constant_variants(0) == [(1, "+1")]
    assert constant_variants(16) == [(17, "+1"), (15, "-1"), (32, "x2"), (8, "/2")]


def test_the_vector_operators():
    text = ("\t.macro v\n\tadd\tsp, sp, x0\t/* c */\n\ttbz\tx0, #PAGE_SHIFT, .Lo\\@\n"
            "\tb\thyp_panic\n.Lo\\@:\n\tb\thyp_panic_bad_stack\n\t.endm\n")
    edits = list(asm_operators(text, range(1, 8)))
    results = {(e.operator, e.apply(text).splitlines()[e.apply(text).count("\n", 0, e.start)])
               for e in edits}
    assert ("tbz-swap", "\ttbnz\tx0, #PAGE_SHIFT, .Lo\\@") in results
    assert ("tbz-bit", "\ttbz\tx0, #(PAGE_SHIFT + 1), .Lo\\@") in results
    assert ("asm-op", "\tsub\tsp, sp, x0\t/* c */") in results
    assert ("asm-branch", "\tb\thyp_panic_bad_stack") in results
    assert not any(e.operator == "asm-del" and ".macro" in e.what for e in edits)


def test_lab_mutants_are_deterministic_with_keys_free_of_line_numbers(tmp_path):
    first = mutants_of("lab", source_root(), LAB_TARGETS)
    again = mutants_of("lab", source_root(), LAB_TARGETS)
    assert [(m.id, m.key) for m in first] == [(m.id, m.key) for m in again]
    assert len({m.key for m in first}) == len(first)
    assert [m.id for m in first] == [f"m{i:03d}" for i in range(1, len(first) + 1)]
    # An unrelated edit (lines added at the top of a file) moves line
    # numbers, not keys.
    common = "csrc/include/stacktrace/common.h"
    target = next(t for t in LAB_TARGETS if t.path == common)
    (tmp_path / common).parent.mkdir(parents=True)
    original = (source_root() / common).read_text()
    (tmp_path / common).write_text("/* one */\n/* two */\n" + original)
    moved = mutants_of("lab", tmp_path, [target])
    before = [m for m in first if m.file == common]
    assert [m.key for m in moved] == [m.key for m in before]
    assert [m.line for m in moved] == [m.line + 2 for m in before]


def test_common_h_gives_at_least_15_mutants_and_the_vector_is_mutated():
    mutants = mutants_of("lab", source_root(), LAB_TARGETS)
    files = [t.path for t in LAB_TARGETS]
    assert len(select_files(mutants, ["*stacktrace/common.h"], files)) >= 15
    vector = select_files(mutants, ["*host.S"], files)
    assert {"tbz-swap", "tbz-bit", "asm-del"} <= {m.operator for m in vector}
    with pytest.raises(HarnessError, match="matches none"):
        select_files(mutants, ["*nothing.c"], files)


def test_equivalents_list_parsing():
    text = ("# comment\n\ncsrc/a.c:ror:0123456789  no run can see it\n")
    entries = equivalents.parse(text, "eq.txt")
    assert entries["csrc/a.c:ror:0123456789"].argument == "no run can see it"
    with pytest.raises(HarnessError, match="no argument"):
        equivalents.parse("csrc/a.c:ror:0123456789\n", "eq.txt")
    with pytest.raises(HarnessError, match="listed twice"):
        equivalents.parse("csrc/a.c:ror:0123456789 x\ncsrc/a.c:ror:0123456789 y\n", "eq.txt")
    with pytest.raises(HarnessError, match="eq.txt:1"):
        equivalents.parse("not a key\n", "eq.txt")


def test_the_shipped_equivalents_list_names_real_mutants():
    listed = equivalents.load(equivalents.default_path(source_root()))
    keys = {m.key for m in mutants_of("lab", source_root(), LAB_TARGETS)}
    assert set(listed) <= keys, "stale entries in mutants/equivalent.txt"


def test_a_mutant_under_an_option_only_runs_where_the_option_is_set():
    tokens, _ = tokenize("#ifdef CONFIG_PROTECTED_NVHE_STACKTRACE\nint x = 1;\n#else\n"
                         "int y = 2;\n#endif\n#ifndef NVHE_KERNEL_UNWINDER\nint z;\n#endif\n")
    pkvm = kconfig.resolve(kconfig.find_config("pkvm"))
    nvhe = kconfig.resolve(kconfig.find_config("nvhe"))
    x, y, z = (next(t for t in tokens if t.text == name) for name in "xyz")
    assert compiled_in(x.conditions, pkvm) and not compiled_in(x.conditions, nvhe)
    assert compiled_in(y.conditions, nvhe) and not compiled_in(y.conditions, pkvm)
    assert compiled_in(z.conditions, nvhe)


def test_runs_are_ordered_mode_first_then_focus():
    mutant = next(m for m in mutants_of("lab", source_root(), LAB_TARGETS)
                  if m.function == "pkvm_dump_backtrace")
    assert mutant.mode == "protected"
    specs = [RunSpec("c", "pkvm", mode, scenario, cpu, 0)
             for mode in ("nvhe", "protected") for scenario in ("smoke", "hyp_panic")
             for cpu in (0, 1)]
    ordered = order_runs(mutant, specs, ["smoke", "hyp_panic"])
    assert [s.id for s in ordered[:2]] == ["pkvm-protected-hyp_panic-cpu0",
                                           "pkvm-protected-hyp_panic-cpu1"]
    assert all(s.mode == "nvhe" for s in ordered[4:])
