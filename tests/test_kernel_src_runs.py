"""Debian's kernel trees through the harness: `--kernel-src` builds (the
build key follows the tree), the compile database, the default matrix
(every shipped configuration's runs through `run_one`) with each
generation's tree, the tree's own numbers (an edited OVERFLOW_STACK_SIZE
or NVHE_STACK_SHIFT is what is built and what is expected), the matrix's
unwinder axis end to end, and a mutated tree failing with a precise reason.

Skipped when /usr/src/linux-source-6.1.tar.xz / -6.12.tar.xz / -7.2.tar.xz
are not installed (`sh scripts/setup.sh --tests` installs them). Each
tarball is extracted once, into the shared build directory's cache.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from test_kernelsrc import DEBIAN

from pyharness.builder import cache as builder
from pyharness.builder import kernelsrc
from pyharness.builder.toolchain import find_toolchain
from pyharness.cli.main import main
from pyharness.elf.image import load_image
from pyharness.platform.geometry import OVERFLOW_STACK, stack_geometry
from pyharness.kconfig import resolve as kconfig
from pyharness.matrix.expand import expand, unwinder_axis
from pyharness.paths import build_base
from pyharness.reports.footprint import read_footprint
from pyharness.run.runner import RunRequest, run_one
from pyharness.run.scenarios import list_scenarios

# Each generation, skipped when its Debian tarball is not installed.
GENERATIONS = DEBIAN
SHIPPED = [path.name.removesuffix("_defconfig") for path in kconfig.named_configs()]


@pytest.fixture(scope="module")
def debian():
    """generation -> the Debian tarball's KernelSource, extracted once."""
    made: dict[str, kernelsrc.KernelSource] = {}

    def get(generation: str) -> kernelsrc.KernelSource:
        if generation not in made:
            source = kernelsrc.open_source(kernelsrc.debian_tarball(generation),
                                           build_base(None))
            assert source is not None
            made[generation] = source
        return made[generation]
    return get


def copy_tree(source: kernelsrc.KernelSource, dest: Path) -> Path:
    """A tree of one's own: the files the build reads, copied."""
    root = source.tree.root
    for path in (root / kernelsrc.MAKEFILE, *source.tree.build_files):
        name = path.relative_to(root)
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, dest / name)
    return dest


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert text.count(old) == 1, f"{old!r} is not once in {path}"
    path.write_text(text.replace(old, new))


# -- builds ----------------------------------------------------------------------

@pytest.mark.parametrize("generation", GENERATIONS)
def test_editing_the_tree_changes_the_build_key_and_rebuilds(debian, tmp_path, generation):
    tree = copy_tree(debian(generation), tmp_path / "linux")
    out = tmp_path / "out"
    first = builder.build("pkvm", out_dir=out, kernel_src=tree)
    assert not first.cached and first.unwinder == f"linux-{generation}"
    assert first.build_dir.name.startswith(f"pkvm-linux-{generation}-")
    assert load_image(first.elf).unwinder == f"linux-{generation}"
    assert builder.build("pkvm", out_dir=out, kernel_src=tree).cached

    edit(tree / kernelsrc.HYP_STACKTRACE_C, "#include <asm/stacktrace/nvhe.h>",
         "#include <asm/stacktrace/nvhe.h>\n/* an edit */")
    edited = builder.build("pkvm", out_dir=out, kernel_src=tree)
    assert edited.digest != first.digest and not edited.cached
    assert edited.build_dir != first.build_dir

    # The lab's build is keyed as it always was, tree or no tree elsewhere.
    config = kconfig.resolve(kconfig.find_config("pkvm"))
    lab = builder.build("pkvm", out_dir=out)
    assert lab.recipe == builder.recipe_key(config, find_toolchain())
    assert lab.build_dir.name == f"pkvm-{lab.digest[:12]}" and lab.unwinder == "lab"
    assert not any(label.startswith("tree:") for label in
                   json.loads((lab.build_dir / builder.STAMP).read_text())["inputs"])
    assert load_image(lab.elf).unwinder == "lab"
    assert load_image(lab.elf).stack_sizes.source == "the lab's Kconfig formula"


def test_build_prints_the_compile_database_with_the_trees_files(debian, tmp_path, capsys):
    tree = copy_tree(debian("6.12"), tmp_path / "linux")
    argv = ["build", "--config", "pkvm", "--kernel-src", str(tree), "--out", str(tmp_path)]
    assert main(argv) == 0
    captured = capsys.readouterr()
    elf = Path(captured.out.strip())
    database = elf.parent / "compile_commands.json"
    assert elf.parent.name.startswith("pkvm-linux-6.12-")
    assert f"compile_commands.json: {database}" in captured.err
    assert f"with the linux-6.12 unwinder of {tree} (6.12." in captured.err
    compiled = {Path(entry["file"]) for entry in json.loads(database.read_text())}
    assert {tree / kernelsrc.HYP_STACKTRACE_C, tree / kernelsrc.HOST_STACKTRACE_C} <= compiled


# -- runs ------------------------------------------------------------------------

def default_runs(config: str, kernel_src: str | None, out_dir: Path | None = None):
    """The matrix's runs of one shipped configuration with one unwinder."""
    axis = unwinder_axis([kernel_src] if kernel_src else [], out_dir)
    elf = builder.build(config, out_dir=out_dir, kernel_src=axis[0].kernel_src).elf
    return expand([kconfig.find_config(config)], [s.name for s in list_scenarios(elf)],
                  unwinders=axis)


def run_all(specs) -> list[str]:
    """Each run's id and first reasons, for the runs that did not pass."""
    failed = []
    for spec in specs:
        record = run_one(RunRequest.from_spec(spec))
        assert record.spec == spec
        if not record.passed:
            failed.append(f"{record.id}: {'; '.join(record.reasons[:3])}")
    return failed


@pytest.mark.parametrize("config", SHIPPED)
@pytest.mark.parametrize("generation", GENERATIONS)
def test_the_default_matrix_passes_with_each_tree(debian, generation, config):
    """`pyharness matrix --kernel-src TARBALL`, one shipped configuration at a time."""
    specs = default_runs(config, debian(generation).given)
    assert {s.mode for s in specs} == {"nvhe", "protected"} and len(specs) > 40
    failed = run_all(specs)
    assert not failed, "\n".join(failed)


# -- the tree's numbers ------------------------------------------------------------

@pytest.mark.parametrize("generation", GENERATIONS)
def test_the_trees_overflow_stack_size_is_what_is_built_and_expected(debian, tmp_path,
                                                                     generation):
    """OVERFLOW_STACK_SIZE SZ_2K in the tree's asm/memory.h: a 2 KiB overflow
    stack in the image, the vector's switch, the oracle's walk and the
    footprint check; a buffer sized from it; the pkvm runs that reach the
    overflow stack or fill the buffer pass (7.x: every pkvm run). An
    unwinder whose overflow stack is not the tree's size fails the footprint."""
    tree = copy_tree(debian(generation), tmp_path / "linux")
    edit(tree / kernelsrc.MEMORY_H, "#define OVERFLOW_STACK_SIZE\tSZ_4K",
         "#define OVERFLOW_STACK_SIZE\tSZ_2K")
    out = tmp_path / "out"
    specs = default_runs("pkvm", str(tree), out)
    image = load_image(builder.build("pkvm", out_dir=out, kernel_src=tree).elf)
    sizes = image.stack_sizes
    assert (sizes.overflow_stack, sizes.trace_buffer) == (2048, (2048 + 4096) // 2 + 8)
    assert sizes.source == "the kernel tree's"
    assert image.symbol(OVERFLOW_STACK).size == 2048
    assert stack_geometry(image).overflow_stack_va(1).size == 2048
    reach = {"stack_overflow", "fault_on_overflow_stack", "fault_overflow_stack_past_top",
             "fault_overflow_hyp_overflow", "fault_longest_chain", "fault_packed_stacks"}
    assert not run_all(specs if generation == "7.x" else
                       [s for s in specs if s.scenario in reach])

    edit(tree / kernelsrc.HYP_STACKTRACE_C,
         "DEFINE_PER_CPU(unsigned long [OVERFLOW_STACK_SIZE/sizeof(long)], overflow_stack)",
         "DEFINE_PER_CPU(unsigned long [2 * OVERFLOW_STACK_SIZE/sizeof(long)], overflow_stack)")
    spec = next(s for s in specs if (s.scenario, s.mode) == ("hyp_panic", "nvhe"))
    record = run_one(RunRequest.from_spec(spec, out_dir=out))
    assert record.verdict == "fail"
    assert (f"footprint: {OVERFLOW_STACK} is 4096 bytes per CPU, not 2048 (the tree's "
            "OVERFLOW_STACK_SIZE)") in record.reasons


def test_a_7x_trees_two_page_hyp_stacks_are_laid_out_and_expected(debian, tmp_path):
    """NVHE_STACK_SHIFT PAGE_SHIFT + 1: 8 KiB hyp stacks above 8 KiB guards,
    the vector testing bit 13, the buffer sized for them; the pkvm runs that
    reach a hyp stack's bounds, its guard or the buffer's end pass."""
    if not kernelsrc.debian_tarball("7.x").is_file():
        pytest.skip("needs /usr/src/linux-source-7.2.tar.xz (sh scripts/setup.sh --tests)")
    tree = copy_tree(debian("7.x"), tmp_path / "linux")
    edit(tree / kernelsrc.MEMORY_H, "#define NVHE_STACK_SHIFT       PAGE_SHIFT",
         "#define NVHE_STACK_SHIFT       (PAGE_SHIFT + 1)")
    out = tmp_path / "out"
    specs = default_runs("pkvm", str(tree), out)
    image = load_image(builder.build("pkvm", out_dir=out, kernel_src=tree).elf)
    assert (image.stack_sizes.hyp_stack, image.stack_sizes.hyp_stack_shift) == (8192, 13)
    assert image.stack_sizes.trace_buffer == (4096 + 8192) // 2 + 8
    geometry = stack_geometry(image)
    assert geometry.hyp_stack_va(1).lo == image.layout.hyp_stack_va_base + 3 * 8192
    reach = {"hyp_panic", "stack_overflow", "fault_at_stack_top", "fault_on_overflow_stack",
             "fault_hyp_stack_past_top", "fault_fp_guard_page", "fault_longest_chain",
             "fault_packed_stacks", "isolation_probe"}
    assert not run_all([s for s in specs if s.scenario in reach])


@pytest.mark.parametrize("generation", GENERATIONS)
def test_a_trees_record_says_which_unwinder_ran(debian, generation):
    source = debian(generation)
    spec = next(s for s in default_runs("pkvm", source.given)
                if (s.scenario, s.mode, s.cpu) == ("hyp_panic", "protected", 1))
    record = run_one(RunRequest.from_spec(spec))
    assert (record.spec.kernel_src, record.spec.generation, record.spec.unwinder) == (
        str(kernelsrc.debian_tarball(generation)), generation, f"linux-{generation}")
    assert record.id == f"linux-{generation}/pkvm-protected-hyp_panic-cpu1"
    assert f"--kernel-src {kernelsrc.debian_tarball(generation)}" in record.command
    assert re.search(r"\] kvm \[1\]: nVHE call trace:$", "\n".join(record.console), re.M)
    assert Path(record.elf).parent.name.startswith(f"pkvm-linux-{generation}-")
    # The tree's pkvm_stacktrace is per-CPU: the footprint counts one copy per CPU.
    tree_print = read_footprint(record.spec.row, record.elf)
    lab_print = read_footprint("pkvm", str(builder.build("pkvm").elf))
    assert tree_print.config_name == f"linux-{generation}/pkvm"
    assert tree_print.buffer_per_cpu == lab_print.buffer_per_cpu == tree_print.claimed_buffer


def test_the_matrix_runs_the_unwinder_axis(tmp_path, capsys):
    tarballs = [str(kernelsrc.debian_tarball(g)) for g in kernelsrc.GENERATIONS]
    if not all(Path(t).is_file() for t in tarballs):
        pytest.skip("needs the three Debian kernel source tarballs")
    report = tmp_path / "m.json"
    argv = ["matrix", "-q", "-j", "2", "--configs", "pkvm", "--scenarios", "hyp_panic",
            "--kernel-src", "lab", *(arg for t in tarballs for arg in ("--kernel-src", t)),
            "--json", str(report), "--junit", str(tmp_path / "m.xml")]
    main(argv)
    out = capsys.readouterr().out
    assert "1 configuration x unwinders lab, linux-6.1, linux-6.12, linux-7.x, 16 runs" in out
    rows = [line.split()[0] for line in out.splitlines()
            if re.match(r"^(pkvm|linux-(6\.1|6\.12|7\.x)/pkvm)\s", line)]
    assert rows == ["pkvm", "linux-6.1/pkvm", "linux-6.12/pkvm", "linux-7.x/pkvm"]
    runs = json.loads(report.read_text())["runs"]
    assert [(r["unwinder"], r["generation"], r["kernel_src"]) for r in runs[::4]] == [
        ("lab", None, None), ("linux-6.1", "6.1", tarballs[0]),
        ("linux-6.12", "6.12", tarballs[1]), ("linux-7.x", "7.x", tarballs[2])]
    assert [r["command"].count("--kernel-src") for r in runs[::4]] == [0, 1, 1, 1]
    assert len({r["elf"] for r in runs}) == 4
    # The lab's runs are what they were; a tree's are its label's.
    assert runs[0]["verdict"] == "pass" and runs[0]["kaslr_seed"] == runs[4]["kaslr_seed"]
    junit = (tmp_path / "m.xml").read_text()
    assert 'classname="matrix.linux-6_12.pkvm" name="linux-6.12/pkvm-nvhe-hyp_panic-cpu0"' \
        in junit


# -- a mutated tree fails, precisely -------------------------------------------------

def test_a_changed_word_in_the_trees_dump_fails_on_the_header(debian, tmp_path):
    tree = copy_tree(debian("6.12"), tmp_path / "linux")
    out = tmp_path / "out"
    spec = next(s for s in default_runs("pkvm", str(tree), out)
                if (s.scenario, s.mode) == ("hyp_panic", "nvhe"))
    assert run_one(RunRequest.from_spec(spec, out_dir=out)).passed     # the tree as it is

    edit(tree / kernelsrc.HOST_STACKTRACE_C, 'kvm_err("nVHE call trace:\\n");',
         'kvm_err("nVHE call stack:\\n");')
    record = run_one(RunRequest.from_spec(spec, out_dir=out))
    assert record.verdict == "fail"
    # The header is what is wrong (today: "non-protected trace header missing"),
    # not the frames, which are still the right ones.
    assert any("header" in r for r in record.reasons), record.reasons
    assert not any(r.startswith("frame") for r in record.reasons), record.reasons


def test_a_weaker_alignment_rule_in_the_trees_unwinder_fails_the_matrix(debian, tmp_path,
                                                                          capsys):
    tree = copy_tree(debian("6.12"), tmp_path / "linux")
    edit(tree / kernelsrc.COMMON_H, "if (fp & 0x7)", "if (fp & 0x3)")
    report = tmp_path / "m.json"
    argv = ["matrix", "-q", "-j", "1", "--configs", "pkvm", "--scenarios",
            "fault_fp_misaligned", "hyp_panic", "--modes", "nvhe", "--kernel-src", str(tree),
            "--out", str(tmp_path / "out"), "--json", str(report)]
    assert main(argv) == 1
    out = capsys.readouterr().out
    runs = {r["scenario"]: r for r in json.loads(report.read_text())["runs"]
            if r["cpu"] == 0}
    assert runs["hyp_panic"]["verdict"] == "pass"       # aligned records: no difference
    misaligned = runs["fault_fp_misaligned"]
    assert misaligned["verdict"] == "fail"
    # The 4-byte-aligned record is accepted: frames the oracle stops before.
    assert any(re.match(r"frame \d+: unexpected ", r) for r in misaligned["reasons"]), \
        misaligned["reasons"]
    # The terminal groups failures by cause and names the runs it covers.
    cause = next(line for line in out.splitlines() if line.startswith("FAIL x"))
    assert "linux-6.12/pkvm" in cause and "fault_fp_misaligned" in cause, out
    assert f"--kernel-src {tree}" in out
