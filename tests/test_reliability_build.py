"""Issue 11, the build side: a build the harness reports is the build it ran,
and building never touches files outside the build directory.

Odd build directories (relative, empty), the caller's environment, shared
scratch files, a damaged cached image, hostile config paths and names, a
read-only cache and absurd option values.
"""

from __future__ import annotations

import builtins
import hashlib
import io
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from conftest import one_line_error
from conftest import pyharness_cli as pyharness

from pyharness.builder import cache as builder
from pyharness.errors import ConfigError, HarnessError
from pyharness.kconfig import outputs as kconfig_outputs
from pyharness.kconfig import resolve as kconfig
from pyharness.matrix.expand import random_configs
from pyharness import paths
from pyharness.paths import configs_dir

TINY = configs_dir() / "tiny_defconfig"


# --- 1. a relative build directory --------------------------------------------


@pytest.mark.parametrize("out", ["relbuild", "./x", "sub/../rel"])
def test_relative_out_builds_under_the_current_directory(tmp_path, out):
    proc = pyharness("build", "--config", str(TINY), "--out", out, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    elf = Path(proc.stdout.strip())
    assert elf.is_absolute() and elf.is_file()
    assert elf.parent.parent == (tmp_path / out).resolve()


def test_relative_build_dir_from_the_environment(tmp_path):
    env = dict(os.environ, PYHARNESS_BUILD_DIR="rel")
    proc = pyharness("build", "--config", str(TINY), cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    assert Path(proc.stdout.strip()).parent.parent == tmp_path / "rel"


def test_empty_out_is_refused_and_leaves_nothing(tmp_path):
    line = one_line_error(pyharness("build", "--config", str(TINY), "--out", "", cwd=tmp_path))
    assert "--out" in line and "empty" in line
    assert list(tmp_path.iterdir()) == []


def test_build_base_is_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert paths.build_base("rel") == tmp_path / "rel"
    assert paths.build_base(Path("a/../b")) == tmp_path / "b"
    with pytest.raises(HarnessError, match="empty"):
        paths.build_base("")


# --- 2. the caller's environment does not reach the build ---------------------


@pytest.fixture(scope="module")
def clean_build(tmp_path_factory: pytest.TempPathFactory) -> builder.BuildResult:
    """tiny, built with the environment the tests run in."""
    return builder.build(TINY, out_dir=tmp_path_factory.mktemp("clean"))


@pytest.mark.parametrize("name,value", [
    ("CFLAGS", "-include /nonexistent/pwned.h"),
    ("ASMFLAGS", "-include /nonexistent/pwned.h"),
    ("CMAKE_TOOLCHAIN_FILE", "/nonexistent/toolchain.cmake"),
    ("CPATH", "{tmp}/evil"),
    ("CONFIG_", "EVIL_"),
])
def test_compiler_environment_does_not_change_the_build(tmp_path, clean_build, name, value):
    """The image is a function of (.config, sources, toolchain): CFLAGS, CPATH,
    CMAKE_* and kconfiglib's CONFIG_ prefix change neither it nor its key."""
    evil = tmp_path / "evil"
    evil.mkdir()
    # A header that shadows the firmware's own one if CPATH reached the compiler.
    (evil / "stddef.h").write_text("#error pwned by CPATH\n")
    env = dict(os.environ, **{name: value.format(tmp=tmp_path)})
    dirty = pyharness("build", "--config", str(TINY), "--out", str(tmp_path / "dirty"), env=env)
    assert dirty.returncode == 0, dirty.stderr
    clean_elf, dirty_elf = clean_build.elf, Path(dirty.stdout.strip())
    assert clean_elf.parent.name == dirty_elf.parent.name          # same key
    assert clean_elf.read_bytes() == dirty_elf.read_bytes()         # same image
    work = Path(json.loads((dirty_elf.parent / builder.STAMP).read_text())["work_tree"])
    cache = (work / "CMakeCache.txt").read_text()
    assert "nonexistent" not in cache and "EVIL" not in cache


# --- 3. no shared scratch file in the build directory -------------------------


def _randconfigs(directory: str, seed: int, rounds: int) -> list[list[str]]:
    out = []
    for _ in range(rounds):
        kconfig._resolve_cached.cache_clear()
        out.append([p.name for p in random_configs(12, seed, Path(directory))])
    return out


def test_two_randconfig_processes_on_one_directory_agree(tmp_path):
    expected = [p.name for p in random_configs(12, 5, tmp_path / "alone")]
    shared = tmp_path / "shared"
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(2) as pool:
        results = pool.starmap(_randconfigs, [(str(shared), 5, 4), (str(shared), 5, 4)])
    for rounds in results:
        assert all(names == expected for names in rounds)
    # Nothing but the published fragments is left, and each is what its name says.
    assert sorted(p.name for p in shared.iterdir()) == sorted(expected)
    assert (shared / expected[0]).read_text() == (tmp_path / "alone" / expected[0]).read_text()


# --- 5. a damaged cached image is rebuilt -------------------------------------


def _damage_truncate(elf: Path) -> None:
    elf.write_bytes(elf.read_bytes()[:4096])


def _damage_patch(elf: Path) -> None:
    data = bytearray(elf.read_bytes())
    data[len(data) // 2] ^= 0xFF
    mtime = elf.stat().st_mtime_ns
    elf.write_bytes(bytes(data))
    os.utime(elf, ns=(mtime, mtime))


@pytest.mark.parametrize("damage", [_damage_truncate, _damage_patch])
def test_a_damaged_cached_image_is_rebuilt_and_said_so(tmp_path, damage):
    first = builder.build(TINY, out_dir=tmp_path)
    good = first.elf.read_bytes()
    stamp = json.loads((first.build_dir / builder.STAMP).read_text())
    assert stamp["sha256"] == hashlib.sha256(good).hexdigest()
    damage(first.elf)
    again = builder.build(TINY, out_dir=tmp_path)
    assert not again.cached
    assert again.rebuilt_because is not None and "sha256" in again.rebuilt_because
    assert again.elf.read_bytes() == good
    third = builder.build(TINY, out_dir=tmp_path)
    assert third.cached and third.rebuilt_because is None


def test_cli_says_why_it_rebuilt(tmp_path):
    first = pyharness("build", "--config", str(TINY), "--out", str(tmp_path))
    _damage_truncate(Path(first.stdout.strip()))
    proc = pyharness("build", "--config", str(TINY), "--out", str(tmp_path))
    assert proc.returncode == 0
    assert "rebuilt" in proc.stderr and "sha256" in proc.stderr


# --- 6/7. hostile config paths and names --------------------------------------


def _copy_config(directory: Path, name: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / name
    shutil.copyfile(TINY, target)
    return target


def test_a_config_path_cannot_inject_cmake_or_c(tmp_path):
    hostile = tmp_path / "a\nexecute_process(COMMAND touch PWNED)\n#*/\n#error injected\n/*"
    config = _copy_config(hostile, "tiny_defconfig")
    out = tmp_path / "out"
    result = builder.build(config, out_dir=out)
    assert result.elf.is_file()
    assert not list(tmp_path.rglob("PWNED"))
    for generated in ("config.cmake", "generated/autoconf.h"):
        text = (result.build_dir / "config" / generated).read_text()
        assert "execute_process" not in text and "#error" not in text


def test_generated_files_never_carry_the_raw_path(tmp_path):
    config = _copy_config(tmp_path / "x*/y", "tiny_defconfig")
    resolved = kconfig.resolve(config)
    assert str(config) not in kconfig_outputs.cmake_config(resolved)
    assert str(config) not in kconfig_outputs.autoconf_header(resolved)


@pytest.mark.parametrize("name", ["..;x_defconfig", 'a>b"c_defconfig', "t\x1bab\tx_defconfig",
                                  "$(touch PWNED)_defconfig", "...config", "-x_defconfig"])
def test_a_config_name_cannot_escape_the_build_directory(tmp_path, name):
    config = _copy_config(tmp_path / "in", name)
    out = tmp_path / "out"
    result = builder.build(config, out_dir=out)
    assert result.elf.is_file()
    assert result.build_dir.parent == out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "out"]
    assert not list(tmp_path.rglob("PWNED"))
    assert all(c.isalnum() or c in "._+-" for c in result.build_dir.name)


@pytest.mark.parametrize("bad", ["a;b", 'a"b', "a#b", "a\\b", "a>b", "a<b", "a|b", "a?b",
                                 "a\nb", "a\x1bb"])
def test_a_build_directory_cmake_cannot_carry_is_refused(tmp_path, bad):
    line = one_line_error(pyharness("build", "--config", str(TINY),
                                    "--out", str(tmp_path / bad)))
    assert "--out" in line
    assert "\x1b" not in line and "\n" not in line
    assert list(tmp_path.iterdir()) == []


# --- 9. a read-only build directory -------------------------------------------


def read_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every attempt to create, write or replace a file fails as on a
    read-only directory; reading still works."""
    real_open, real_os_open = builtins.open, os.open

    def refuse(*_args: object, **_kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    def open_(file, mode="r", *args, **kwargs):
        if any(c in mode for c in "wax+"):
            refuse()
        return real_open(file, mode, *args, **kwargs)

    def os_open(path, flags, *args, **kwargs):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            refuse()
        return real_os_open(path, flags, *args, **kwargs)

    for module in (builtins, io):
        monkeypatch.setattr(module, "open", open_)
    monkeypatch.setattr(os, "open", os_open)
    for name in ("mkdir", "replace", "rename", "unlink"):
        monkeypatch.setattr(os, name, refuse)


def test_a_cached_build_needs_no_write_access(tmp_path, monkeypatch):
    """Reading a shared, read-only cache: no lock file, no mkdir, no stamp write."""
    built = builder.build(TINY, out_dir=tmp_path)
    read_only(monkeypatch)
    again = builder.build(TINY, out_dir=tmp_path)
    assert again.cached and again.elf == built.elf


def test_an_uncached_build_in_a_read_only_directory_says_so(tmp_path, monkeypatch):
    (tmp_path / "build").mkdir()
    read_only(monkeypatch)
    with pytest.raises(HarnessError, match="not writable") as err:
        builder.build(TINY, out_dir=tmp_path / "build")
    assert "--out" in str(err.value)


def _as_nobody(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                           sys.executable, "-m", "pyharness", *args],
                          capture_output=True, text=True, timeout=300,
                          stdin=subprocess.DEVNULL, cwd="/")


@pytest.fixture
def shared_dir():
    """A directory other users can read (pytest's tmp_path is root-only)."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to run as another user")
    path = Path(tempfile.mkdtemp(prefix="pyharness-ro-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


def test_read_only_cache_end_to_end_as_another_user(shared_dir):
    config = _copy_config(shared_dir / "cfg", "tiny_defconfig")
    for p in (config.parent, config):
        p.chmod(0o755 if p.is_dir() else 0o644)
    out = shared_dir / "build"
    root = pyharness("build", "--config", str(config), "--out", str(out))
    assert root.returncode == 0, root.stderr
    cached = _as_nobody("build", "--config", str(config), "--out", str(out))
    assert cached.returncode == 0, cached.stderr
    assert "cached" in cached.stderr and cached.stdout == root.stdout
    line = one_line_error(_as_nobody("matrix", "--randconfig", "2", "--out", str(out)))
    assert "not writable" in line and "--out" in line
    # A --randconfig matrix whose fragments and builds are all there runs.
    rand = ("matrix", "--randconfig", "1", "--seed", "3", "--scenarios", "smoke",
            "--modes", "nvhe", "-q", "--out", str(out))
    assert pyharness(*rand).returncode == 0
    again = _as_nobody(*rand)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "1 runs: 1 passed" in again.stdout


# --- 10. absurd integer values --------------------------------------------------


@pytest.mark.parametrize("value,says", [("016", "leading zero"), ("1" * 100_000, "digits"),
                                        ("0x10", "decimal")])
def test_odd_integers_are_one_clear_error(tmp_path, value, says):
    fragment = tmp_path / "odd_defconfig"
    fragment.write_text(TINY.read_text() + f"CONFIG_NR_CPUS={value}\n")
    with pytest.raises(ConfigError, match=says):
        kconfig.resolve(fragment)
    line = one_line_error(pyharness("build", "--config", str(fragment), "--out", str(tmp_path)))
    assert "CONFIG_NR_CPUS" in line and len(line) < 400


# --- found on the way ------------------------------------------------------------


def test_a_relative_nvhe_lab_root_still_builds(tmp_path):
    root = configs_dir().parent
    env = dict(os.environ, NVHE_LAB_ROOT=os.path.relpath(root, root.parent))
    proc = pyharness("build", "--config", "tiny", "--out", str(tmp_path), env=env,
                     cwd=root.parent)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("jobs", ["0", "-3"])
def test_build_jobs_below_one_is_bad_input(tmp_path, jobs):
    line = one_line_error(pyharness("build", "--config", str(TINY), "--out", str(tmp_path),
                                    "-j", jobs))
    assert "-j" in line


def test_a_huge_config_file_is_refused_without_reading_it_all(tmp_path):
    huge = tmp_path / "huge_defconfig"
    with open(huge, "w") as f:
        f.write(TINY.read_text())
        f.write("# padding\n" * 300_000)
    line = one_line_error(pyharness("build", "--config", str(huge), "--out", str(tmp_path)))
    assert "too large" in line


def test_resolve_sees_a_rewrite_with_the_same_size_and_mtime(tmp_path):
    fragment = tmp_path / "x_defconfig"
    fragment.write_text(TINY.read_text() + "CONFIG_NR_CPUS=2\n")
    stamp = fragment.stat().st_mtime_ns
    assert kconfig.resolve(fragment).summary.nr_cpus == 2
    fragment.write_text(TINY.read_text() + "CONFIG_NR_CPUS=3\n")
    os.utime(fragment, ns=(stamp, stamp))
    assert kconfig.resolve(fragment).summary.nr_cpus == 3


def test_an_out_symlink_loop_is_one_line(tmp_path):
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    line = one_line_error(pyharness("build", "--config", str(TINY),
                                    "--out", str(tmp_path / "loop" / "x")))
    assert "loop" in line


def test_hostile_timings_and_stamps_are_ignored(tmp_path):
    from pyharness.matrix.timings import read_timings

    (tmp_path / "t.json").write_text('{"a": 1' + "0" * 400 + "}")
    assert read_timings(tmp_path / "t.json") == {}
    (tmp_path / "t.json").write_text("[" * 100_000)
    assert read_timings(tmp_path / "t.json") == {}
    first = builder.build(TINY, out_dir=tmp_path)
    (first.build_dir / builder.STAMP).write_text("[" * 100_000 + "]" * 100_000)
    again = builder.build(TINY, out_dir=tmp_path)
    assert not again.cached and again.elf.is_file()


_FULL_DISK = """
import resource, signal, sys
from pathlib import Path
from pyharness.kconfig import resolve
what, target, source = sys.argv[1:]
if what == "menuconfig":   # what menuconfig saved, worked out before the disk fills
    text = resolve.savedefconfig(Path(source)) + "# a comment\\n" * 20
    resolve.savedefconfig = lambda _path: text
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (64, 64))   # a disk that fills after 64 bytes
try:
    if what == "menuconfig":
        from pyharness.kconfig.menuconfig import save
        save(Path(source), Path(target))
    else:
        from pyharness.reports import load_records, write_json
        write_json(load_records(Path(source)) * 50, Path(target))
except OSError as err:
    print("failed:", err.strerror)
"""


@pytest.mark.parametrize("what", ["menuconfig", "report"])
def test_a_full_disk_never_leaves_half_a_file(tmp_path, what):
    """menuconfig's save and every report replace their file in one step: a
    write that fails part way leaves the old file whole (and no temp file)."""
    target = tmp_path / ("mine_defconfig" if what == "menuconfig" else "old.json")
    if what == "menuconfig":
        shutil.copyfile(TINY, target)
        source = tmp_path / ".config"
        source.write_text(kconfig.resolve(configs_dir() / "pkvm_defconfig").dotconfig)
    else:
        from pyharness.reports import write_json
        from pyharness.run.record import error_record
        from pyharness.run.spec import RunSpec

        spec = RunSpec(config=str(TINY), config_name="tiny", mode="nvhe", scenario="smoke",
                       cpu=0, kaslr_seed=0)
        write_json([error_record(spec, "made up")], target)
        source = tmp_path / "source.json"
        shutil.copyfile(target, source)
    before = target.read_bytes()
    proc = subprocess.run([sys.executable, "-c", _FULL_DISK, what, str(target), str(source)],
                          capture_output=True, text=True, timeout=120)
    assert "failed" in proc.stdout, proc.stdout + proc.stderr
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [target.name, source.name])
