"""Kernel trees for the firmware's NVHE_KERNEL_SRC build (pyharness.builder.kernelsrc).

Most tests use small synthetic trees: files that only have the shapes
kernelsrc looks for (written here, not taken from Linux). The last ones use
Debian's linux-source-6.1 / linux-source-6.12 / linux-source-7.2 tarballs
when they are installed: extract, inspect, and build and run the firmware
with each tree's own unwinder.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from pyharness.builder import kernelsrc
from pyharness.builder.kernelsrc import KernelSourceError
from pyharness.builder.toolchain import find_toolchain
from pyharness.elf.image import load_image
from pyharness.kconfig import outputs as kconfig_outputs
from pyharness.kconfig import resolve as kconfig
from pyharness.paths import build_base, source_root
from pyharness.platform.machine import Machine
from pyharness.platform.results import RunOptions
from pyharness.run.scenarios import find_scenario

MAKEFILE = "# synthetic\nVERSION = {v}\nPATCHLEVEL = {p}\nSUBLEVEL = {s}\nEXTRAVERSION =\n"

# unwind_init_common() as each generation declares it (parameters only).
INIT_PARAMS = {
    "6.1": "struct unwind_state *state, struct task_struct *task",
    "6.12": "struct unwind_state *state",
    "7.x": "struct unwind_state *state",
}
# What else each generation's files name (kernel_api.FEATURES), by file.
API = {
    "6.1": {"common": "", "stack": "kvm_arm_hyp_stack_page", "size": "4096",
            "option": "CONFIG_PROTECTED_NVHE_STACKTRACE", "mask": "vabits_actual"},
    "7.x": {"common": "static struct stack_info *unwind_find_stack(void *s) { return 0; }\n"
                      "struct frame_record *record;\n",
            "stack": "kvm_arm_hyp_stack_base", "size": "NVHE_STACK_SIZE",
            "option": "CONFIG_PKVM_STACKTRACE", "mask": "__hyp_va_bits"},
}
API["6.12"] = API["6.1"]


def synthetic_files(generation: str = "6.1", *, version: str | None = None,
                    common_h: str | None = None, hyp_c: str | None = None,
                    nvhe_h: str | None = None, host_c: str | None = None) -> dict[str, str]:
    v, p = (version or generation.replace("x", "2")).split(".")[:2]
    api = API[generation]
    files = {
        kernelsrc.MAKEFILE: MAKEFILE.format(v=v, p=p, s=7),
        kernelsrc.COMMON_H: common_h if common_h is not None else (
            "/* synthetic common.h */\n"
            f"static inline void unwind_init_common({INIT_PARAMS[generation]})\n{{\n}}\n"
            f"{api['common']}"
            "static inline int unwind_consume_stack(void *s, unsigned long sp)\n"
            "{ return 0; }\n"),
        kernelsrc.NVHE_H: nvhe_h if nvhe_h is not None else (
            f"/* synthetic nvhe.h */\nextern unsigned long {api['stack']};\n"),
        kernelsrc.HYP_STACKTRACE_C: hyp_c if hyp_c is not None else (
            "/* synthetic hyp */\nunsigned long base(struct p *params)\n"
            f"{{ return params->stack_hyp_va - {api['size']}; }}\n"
            f"#ifdef {api['option']}\n#endif\n"
            "void kvm_nvhe_prepare_backtrace(unsigned long fp, unsigned long pc) {}\n"),
        kernelsrc.HOST_STACKTRACE_C: host_c if host_c is not None else (
            f"/* synthetic host */\nunsigned long mask = {api['mask']};\n"
            "void kvm_nvhe_dump_backtrace(unsigned long hyp_offset) {}\n"),
    }
    if generation == "7.x":
        files[kernelsrc.FRAME_H] = "/* synthetic frame.h */\nstruct frame_record;\n"
    return files


def synthetic_memory_h(overflow: str = "4096", nvhe_stack: str | None = None) -> str:
    """An asm/memory.h with just the numbers the probe reads, from the
    configuration as a tree's are (CONFIG_PAGE_SHIFT, CONFIG_ARM64_VA_BITS)."""
    stack = "" if nvhe_stack is None else f"#define NVHE_STACK_SIZE {nvhe_stack}\n"
    return ("/* synthetic asm/memory.h */\n"
            "#define PAGE_SIZE (1 << CONFIG_PAGE_SHIFT)\n"
            "#define VA_BITS (CONFIG_ARM64_VA_BITS)\n"
            f"#define OVERFLOW_STACK_SIZE {overflow}\n{stack}"
            "#define NVHE_STACKTRACE_SIZE ((OVERFLOW_STACK_SIZE + PAGE_SIZE) / 2 + 8)\n")


def write_tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def write_tarball(path: Path, files: dict[str, str], top: str = "linux-source-6.1") -> Path:
    with tarfile.open(path, "w:xz") as archive:
        for name, text in {"README": "unrelated\n", **files}.items():
            data = text.encode()
            info = tarfile.TarInfo(f"{top}/{name}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


# -- version and generation ---------------------------------------------------

def test_read_version_reads_the_top_makefile():
    assert kernelsrc.read_version(MAKEFILE.format(v=6, p=12, s=117)) == "6.12.117"
    assert kernelsrc.read_version("VERSION = 6\nPATCHLEVEL = 1\nSUBLEVEL =\n") == "6.1"
    with pytest.raises(KernelSourceError, match="VERSION / PATCHLEVEL"):
        kernelsrc.read_version("# not a kernel Makefile\nall:\n")


@pytest.mark.parametrize("generation", kernelsrc.GENERATIONS)
def test_inspect_finds_the_generation_from_the_unwinder_api(tmp_path, generation):
    tree = kernelsrc.inspect(write_tree(tmp_path, synthetic_files(generation)))
    assert tree.generation == generation
    assert tree.version == f"{generation.replace('x', '2')}.7"
    assert tree.root == tmp_path.resolve()
    assert tree.compiled_files == (tmp_path.resolve() / kernelsrc.HYP_STACKTRACE_C,
                                   tmp_path.resolve() / kernelsrc.HOST_STACKTRACE_C)
    assert len(tree.build_files) == 4 + (generation == "7.x")
    assert all(p.is_file() for p in tree.build_files)
    assert tree.cmake_args() == [f"-DNVHE_KERNEL_SRC={tmp_path.resolve()}",
                                 f"-DNVHE_KERNEL_GEN={generation}"]


def test_the_api_decides_the_generation_not_the_version(tmp_path):
    tree = kernelsrc.inspect(write_tree(tmp_path, synthetic_files("6.12", version="6.9")))
    assert (tree.version, tree.generation) == ("6.9.7", "6.12")
    tree = kernelsrc.inspect(write_tree(tmp_path / "b", synthetic_files("7.x", version="6.19")))
    assert (tree.version, tree.generation) == ("6.19.7", "7.x")


def test_an_older_unwinder_is_refused_naming_the_generations(tmp_path):
    old = "enum stack_type { STACK_TYPE_HYP };\nstruct s { unsigned long stacks_done; };\n"
    write_tree(tmp_path, synthetic_files(common_h=old))
    with pytest.raises(KernelSourceError,
                       match=r"older unwinder.*supported generations: 6\.1, 6\.12, 7\.x"):
        kernelsrc.inspect(tmp_path)


def test_an_api_between_generations_is_refused_naming_what_differs(tmp_path):
    """A 7.x tree that still masks with vabits_actual and lacks
    unwind_find_stack(): no generation's API; the nearest one is named with
    what the tree lacks and what it has instead."""
    files = synthetic_files("7.x")
    files[kernelsrc.COMMON_H] = files[kernelsrc.COMMON_H].replace("unwind_find_stack", "find")
    files[kernelsrc.HOST_STACKTRACE_C] = files[kernelsrc.HOST_STACKTRACE_C].replace(
        "__hyp_va_bits", "vabits_actual")
    write_tree(tmp_path, files)
    with pytest.raises(KernelSourceError) as err:
        kernelsrc.inspect(tmp_path)
    assert "the nearest is 7.x (as in 7.2.13)" in str(err.value)
    assert ("it lacks unwind_find_stack() (arch/arm64/include/asm/stacktrace/common.h)"
            in str(err.value))
    assert "it lacks __hyp_va_bits (arch/arm64/kvm/stacktrace.c)" in str(err.value)
    assert ("it has vabits_actual (arch/arm64/kvm/stacktrace.c), which 7.x has not"
            in str(err.value))
    assert str(err.value).endswith("supported generations: 6.1, 6.12, 7.x")


def test_multi_page_hyp_stacks_in_a_6_1_tree_are_new_to_it(tmp_path):
    hyp = ("unsigned long f(struct p *params) { return params->stack_hyp_va - NVHE_STACK_SIZE; }\n"
           "#ifdef CONFIG_PROTECTED_NVHE_STACKTRACE\n#endif\n"
           "void kvm_nvhe_prepare_backtrace(unsigned long fp, unsigned long pc) {}\n")
    write_tree(tmp_path, synthetic_files(hyp_c=hyp))
    with pytest.raises(KernelSourceError, match=r"nearest is 6\.1 \(as in 6\.1\.192\), but it "
                       r"has NVHE_STACK_SIZE \(arch/arm64/kvm/hyp/nvhe/stacktrace\.c\)"):
        kernelsrc.inspect(tmp_path)


def test_a_7x_tree_needs_its_frame_record_header(tmp_path):
    files = synthetic_files("7.x")
    del files[kernelsrc.FRAME_H]
    write_tree(tmp_path, files)
    with pytest.raises(KernelSourceError, match=r"missing arch/arm64/include/asm/stacktrace/"
                       r"frame\.h, whose struct frame_record"):
        kernelsrc.inspect(tmp_path)


def test_an_unknown_init_form_is_refused(tmp_path):
    common = ("static inline void unwind_init_common(struct unwind_state *s, int x)\n{\n}\n"
              "int unwind_consume_stack(void *s);\n")
    write_tree(tmp_path, synthetic_files(common_h=common))
    with pytest.raises(KernelSourceError, match=r"neither the \(state, task\) form of 6\.1 nor"):
        kernelsrc.inspect(tmp_path)


def test_a_tree_without_the_hyp_stack_variable_is_refused(tmp_path):
    write_tree(tmp_path, synthetic_files(nvhe_h="/* nothing */\n"))
    with pytest.raises(KernelSourceError, match=r"nearest is 6\.1.*it lacks "
                       r"kvm_arm_hyp_stack_page \(arch/arm64/include/asm/stacktrace/nvhe\.h\)"):
        kernelsrc.inspect(tmp_path)


def test_missing_files_are_named(tmp_path):
    files = synthetic_files()
    del files[kernelsrc.HOST_STACKTRACE_C]
    write_tree(tmp_path, files)
    with pytest.raises(KernelSourceError) as err:
        kernelsrc.inspect(tmp_path)
    assert "missing arch/arm64/kvm/stacktrace.c;" in str(err.value)
    assert "supported generations: 6.1, 6.12, 7.x" in str(err.value)
    assert err.value.exit_code == 2


def test_not_a_directory(tmp_path):
    with pytest.raises(KernelSourceError, match="not a directory"):
        kernelsrc.inspect(tmp_path / "nope")


# -- the build key -------------------------------------------------------------

def test_digest_covers_the_built_files_and_the_generation_not_the_location(tmp_path):
    a = kernelsrc.inspect(write_tree(tmp_path / "a", synthetic_files("6.1")))
    b = kernelsrc.inspect(write_tree(tmp_path / "b", synthetic_files("6.1")))
    assert a.digest() == b.digest()
    # The Makefile is not compiled: another SUBLEVEL with the same sources is the same build.
    (b.root / kernelsrc.MAKEFILE).write_text(MAKEFILE.format(v=6, p=1, s=99))
    assert kernelsrc.inspect(b.root).digest() == a.digest()
    host = b.root / kernelsrc.HOST_STACKTRACE_C
    host.write_text(host.read_text() + "/* changed */\n")
    assert kernelsrc.inspect(b.root).digest() != a.digest()
    c = kernelsrc.inspect(write_tree(tmp_path / "c", synthetic_files("6.12")))
    assert c.digest() != a.digest()
    # The headers the tree's numbers come from count too.
    before = c.digest()
    write_tree(c.root, {kernelsrc.MEMORY_H: "#define OVERFLOW_STACK_SIZE SZ_2K\n"})
    assert kernelsrc.inspect(c.root).digest() != before


# -- tarballs ------------------------------------------------------------------

def test_extract_takes_only_the_needed_files(tmp_path):
    tarball = write_tarball(tmp_path / "linux-source-6.1.tar.xz", synthetic_files("6.1"))
    tree = kernelsrc.extract(tarball, tmp_path / "tree")
    assert tree.generation == "6.1"
    written = sorted(str(p.relative_to(tmp_path / "tree"))
                     for p in (tmp_path / "tree").rglob("*") if p.is_file())
    assert written == sorted(kernelsrc.TREE_FILES)


def test_extract_takes_the_generations_own_headers(tmp_path):
    """Once the unwinder files say 7.x, its numbers' headers and frame.h are
    taken, another generation's (6.1's linux/pfn.h) are not."""
    files = {**synthetic_files("7.x"), kernelsrc.MEMORY_H: "/* memory.h */\n",
             "include/linux/pfn.h": "/* 6.1 only */\n", "include/linux/other.h": "\n"}
    tarball = write_tarball(tmp_path / "linux-source-7.2.tar.xz", files, top="linux-source-7.2")
    tree = kernelsrc.extract(tarball, tmp_path / "tree")
    written = sorted(str(p.relative_to(tree.root)) for p in tree.root.rglob("*") if p.is_file())
    assert written == sorted([*kernelsrc.TREE_FILES, kernelsrc.FRAME_H, kernelsrc.MEMORY_H])
    assert tree.build_files[-2:] == (tree.root / kernelsrc.MEMORY_H, tree.root / kernelsrc.FRAME_H)


def test_extract_names_the_missing_members(tmp_path):
    files = synthetic_files("6.12")
    del files[kernelsrc.NVHE_H]
    tarball = write_tarball(tmp_path / "t.tar.xz", files, top="linux-source-6.12")
    with pytest.raises(KernelSourceError, match=r"has no arch/arm64/include/asm/stacktrace/nvhe\.h"):
        kernelsrc.extract(tarball, tmp_path / "tree")
    assert not (tmp_path / "tree").exists()


def test_extract_without_the_tarball_says_which_package(tmp_path):
    with pytest.raises(KernelSourceError, match=r"apt-get install linux-source-6\.12"):
        kernelsrc.extract(tmp_path / "linux-source-6.12.tar.xz", tmp_path / "tree")
    (tmp_path / "junk.tar.xz").write_bytes(b"not xz")
    with pytest.raises(KernelSourceError, match="cannot read the tarball"):
        kernelsrc.extract(tmp_path / "junk.tar.xz", tmp_path / "tree")


def test_debian_tarball_paths():
    assert kernelsrc.debian_tarball("6.12") == Path("/usr/src/linux-source-6.12.tar.xz")
    assert kernelsrc.debian_tarball("7.x") == Path("/usr/src/linux-source-7.2.tar.xz")
    with pytest.raises(KernelSourceError, match="supported generations"):
        kernelsrc.debian_tarball("5.10")


# -- Debian's trees, when installed -------------------------------------------

def _debian(generation: str):
    tarball = kernelsrc.debian_tarball(generation)
    return pytest.param(generation, marks=pytest.mark.skipif(
        not tarball.is_file(), reason=f"{tarball} is not installed "
        f"(apt-get install linux-source-{generation})"))


DEBIAN = [_debian(g) for g in kernelsrc.GENERATIONS]
HEADER, FOOTER = "kvm [1]: nVHE call trace:", "kvm [1]: ---[ end nVHE call trace ]---"
TIMESTAMP = re.compile(r"^\[\s*\d+\.\d+\] ")


@pytest.fixture(scope="module")
def debian_trees():
    """generation -> the Debian tarball's files, extracted (kernelsrc.extract)
    once into the shared build directory, as --kernel-src does."""
    made: dict[str, kernelsrc.KernelTree] = {}

    def get(generation: str) -> kernelsrc.KernelTree:
        if generation not in made:
            made[generation] = kernelsrc.extract_cached(
                kernelsrc.debian_tarball(generation), build_base(None) / kernelsrc.EXTRACTED_DIR)
        return made[generation]
    return get


def build_with_tree(tree: kernelsrc.KernelTree, config: str, build_dir: Path) -> Path:
    """The firmware for a shipped configuration, built by CMake with the
    tree's unwinder (what pyharness.builder does, plus the tree's settings)."""
    resolved = kconfig.resolve(kconfig.find_config(config))
    kconfig_outputs.write_outputs(resolved, build_dir / "config")
    env = dict(os.environ, CROSS_COMPILE=find_toolchain().prefix)
    cmake = shutil.which("cmake")
    assert cmake, "cmake is not on PATH"
    for argv in ([cmake, "-S", str(source_root()), "-B", str(build_dir),
                  f"-DNVHE_CONFIG_DIR={build_dir / 'config'}",
                  f"-DPython_EXECUTABLE={sys.executable}", *tree.cmake_args()],
                 [cmake, "--build", str(build_dir)]):
        proc = subprocess.run(argv, capture_output=True, text=True, env=env)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return build_dir / "vmlinux"


def run(elf: Path, scenario: str, protected: bool, cpu: int = 0) -> list[str]:
    machine = Machine(load_image(elf), RunOptions(
        cpu=cpu, protected=protected, scenario_id=find_scenario(elf, scenario).number,
        kaslr_seed=3))
    result = machine.run()
    assert result.status.value == "exited" and result.exit_code == 1, result.reason
    assert not machine.foreign_percpu_changes()
    return [TIMESTAMP.sub("", line) for line in result.console]


def hyp_frames(console: list[str]) -> list[str]:
    start, end = console.index(HEADER), console.index(FOOTER)
    return [line.rsplit(" ", 1)[1].removeprefix("__kvm_nvhe_")
            for line in console[start + 1:end]]


@pytest.mark.parametrize("generation", DEBIAN)
def test_debian_tarball_is_a_supported_tree(debian_trees, generation):
    tree = debian_trees(generation)
    assert tree.generation == generation
    assert tree.version.startswith(generation.replace("x", "2") + ".")
    # Every file the build reads is there, the numbers' headers included.
    names = {str(p.relative_to(tree.root)) for p in tree.build_files}
    assert names == {*kernelsrc.BUILD_FILES, *kernelsrc.GENERATION_FILES[generation]}


@pytest.mark.parametrize("generation", DEBIAN)
def test_firmware_runs_the_trees_own_unwinder(debian_trees, tmp_path, generation):
    tree = debian_trees(generation)
    elf = build_with_tree(tree, "pkvm", tmp_path)
    assert load_image(elf).unwinder == f"linux-{generation}"

    commands = json.loads((tmp_path / "compile_commands.json").read_text())
    compiled = {Path(entry["file"]) for entry in commands}
    assert set(tree.compiled_files) <= compiled
    assert source_root() / "csrc" / "hyp" / "stacktrace.c" not in compiled

    # Non-protected: the host unwinds the hyp stack from EL1.
    frames = hyp_frames(run(elf, "hyp_panic", protected=False))
    names = [f.split("+")[0] for f in frames]
    assert names == ["hyp_panic", "nested_panic_b", "nested_panic_b", "nested_panic_a",
                     "__kvm_nested_panic", "handle___kvm_nested_panic", "handle_trap",
                     "__host_exit"]

    # Protected: the hyp saved the trace in the shared buffer, across the
    # overflow stack into the hyp stack; the host may read only that buffer.
    frames = hyp_frames(run(elf, "stack_overflow", protected=True, cpu=1))
    names = [f.split("+")[0] for f in frames]
    assert names[:3] == ["hyp_panic", "hyp_panic_bad_stack", "recursive_death"]
    assert names[-4:] == ["__kvm_recursive_death", "handle___kvm_recursive_death",
                          "handle_trap", "__host_exit"]
    assert set(names[2:-4]) == {"recursive_death"}


# The Kconfig name each generation's Cannot dump line gives.
STACKTRACE_OPTION = {"6.1": "PROTECTED_NVHE_STACKTRACE", "6.12": "PROTECTED_NVHE_STACKTRACE",
                     "7.x": "PKVM_STACKTRACE"}


@pytest.mark.parametrize("generation", DEBIAN)
def test_cannot_dump_without_the_protected_stacktrace_option(debian_trees, tmp_path, generation):
    elf = build_with_tree(debian_trees(generation), "nvhe", tmp_path)
    console = run(elf, "hyp_panic", protected=True)
    assert console[1] == ("kvm [1]: Cannot dump pKVM nVHE stacktrace: "
                          f"!CONFIG_{STACKTRACE_OPTION[generation]}")
