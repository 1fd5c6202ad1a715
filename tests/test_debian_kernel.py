"""Debian's own arm64 kernels (pyharness.builder.debian_kernel and its
helpers debian_apt, debian_images and deb_members).

The unit tests use real tools on small inputs: .debs built here with
dpkg-deb, a local apt repository (a Packages file and a Release file
written here, ``Trusted: yes``) read by the real apt-get and apt-cache,
and a machine's apt sources and os-release written into a temporary
directory. The contents of those packages are made up here (a 4 KiB
"Image" with arm64's header magic, a two-line System.map): nothing is
taken from Debian's packages.

The last test boots Debian's real 6.1 cloud-arm64 image, downloaded from
the machine's Debian mirror into the kernel cache once (about 280 MB),
with the hyp_panic fault in each mode; it is skipped only when the mirror
cannot be reached.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from pyharness.builder.deb_members import DebArchiveError, extract_members
from pyharness.builder.debian_apt import (DebianPackageError, Machine, MirrorEntry,
                                          MirrorUnreachable, entries_for, machine_codename,
                                          machine_entries, sources_text)
from pyharness.builder.debian_images import STAMP, generation_of, upstream_version
from pyharness.builder.debian_kernel import (DebianSpec, is_debian_kernel, obtain_debian_kernel,
                                             parse_spec)
from pyharness.errors import EXIT_BAD_INPUT
from pyharness.kconfig import resolve as kconfig
from pyharness.matrix.qemu_axis import expand_qemu
from pyharness.run.qemu_runner import QemuRequest, run_qemu
from pyharness.run.spec import Unwinder

FLAVOUR = "cloud-arm64"
PLACEHOLDER_MAP = b"ffffffffffffffff B The real System.map is in the -dbg package\n"


def fake_image(tag: str) -> bytes:
    """4 KiB with arm64's Image magic at byte 56, and a tag to tell it apart."""
    head = bytearray(4096)
    head[0x38:0x3C] = b"ARM\x64"
    head[0x100:0x100 + len(tag)] = tag.encode()
    return bytes(head)


def fake_system_map(tag: str) -> bytes:
    return (f"ffff800008000000 T _text\nffff800008001000 T {tag}\n"
            "ffff800008002000 T _etext\n").encode()


def make_deb(out: Path, package: str, version: str, files: dict[str, bytes],
             links: dict[str, str] | None = None) -> Path:
    """A real .deb (dpkg-deb --build) holding ``files`` and symlinks ``links``."""
    root = out / f"{package}-root"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(
        f"Package: {package}\nVersion: {version}\nArchitecture: arm64\n"
        "Maintainer: pyharness tests <tests@example.invalid>\nDescription: a test package\n")
    for path, data in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(data)
    for path, target in (links or {}).items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).symlink_to(target)
    deb = out / f"{package}_{version.replace(':', '%3a')}_arm64.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "--build", str(root), str(deb)],
                   check=True, capture_output=True)
    shutil.rmtree(root)
    return deb


def six_x_packages(pool: Path, abi: str, version: str, image: bytes | None = None) -> list[Path]:
    """Debian 6.x packaging: -unsigned (vmlinuz, config, the placeholder
    System.map) and -dbg (vmlinux and the real System.map, modules' files)."""
    full = f"{abi}-{FLAVOUR}"
    return [
        make_deb(pool, f"linux-image-{full}-unsigned", version, {
            f"boot/vmlinuz-{full}": image if image is not None else fake_image(abi),
            f"boot/config-{full}": f"CONFIG_KVM=y\nCONFIG_NR_CPUS=4\n# {abi}\n".encode(),
            f"boot/System.map-{full}": PLACEHOLDER_MAP,
            f"usr/lib/linux-image-{full}/arm/some.dtb": b"dtb"}),
        make_deb(pool, f"linux-image-{full}-dbg", version, {
            f"usr/lib/debug/boot/System.map-{full}": fake_system_map(f"abi_{abi}"),
            f"usr/lib/debug/boot/vmlinux-{full}": b"\x7fELF vmlinux " + abi.encode(),
            f"usr/lib/debug/lib/modules/{full}/kernel/a.ko": b"module"},
            links={f"usr/lib/debug/lib/modules/{full}/vmlinux": f"../../../boot/vmlinux-{full}"}),
    ]


def seven_x_packages(pool: Path, abi: str, version: str) -> list[Path]:
    """Debian 7.x packaging: the image, the base files (config) and -dbg,
    whose vmlinux comes after the modules' debug files."""
    full = f"{abi}-{FLAVOUR}"
    modules = f"usr/lib/modules/{full}"
    return [
        make_deb(pool, f"linux-binary-unsigned-{full}", version,
                 {f"{modules}/vmlinuz.unsigned": fake_image(abi)}),
        make_deb(pool, f"linux-base-{full}", version, {
            f"{modules}/config": b"CONFIG_KVM=y\n", f"{modules}/System.map": PLACEHOLDER_MAP}),
        make_deb(pool, f"linux-image-{full}-dbg", version, {
            f"usr/lib/debug/lib/modules/{full}/System.map": fake_system_map(f"abi_{abi}"),
            f"usr/lib/debug/lib/modules/{full}/kernel/zz/b.ko": b"module",
            f"usr/lib/debug/lib/modules/{full}/vmlinux": b"\x7fELF vmlinux " + abi.encode()},
            links={f"usr/lib/debug/boot/vmlinux-{full}": f"../lib/modules/{full}/vmlinux"}),
    ]


def write_repository(repo: Path, suite: str, debs: list[Path]) -> None:
    """An apt repository: dists/SUITE/{Release, main/binary-arm64/Packages}."""
    stanzas = []
    for deb in debs:
        control = subprocess.run(["dpkg-deb", "-f", str(deb)], check=True, capture_output=True,
                                 text=True).stdout.strip()
        data = deb.read_bytes()
        stanzas.append(f"{control}\nFilename: pool/{deb.name}\nSize: {len(data)}\n"
                       f"SHA256: {hashlib.sha256(data).hexdigest()}\n")
    packages = "\n".join(stanzas).encode()
    binary = repo / "dists" / suite / "main" / "binary-arm64"
    binary.mkdir(parents=True)
    (binary / "Packages").write_bytes(packages)
    (repo / "dists" / suite / "Release").write_text(
        f"Suite: {suite}\nCodename: {suite}\nDate: Sat, 05 Dec 2026 00:00:00 UTC\n"
        f"Architectures: arm64\nComponents: main\nSHA256:\n"
        f" {hashlib.sha256(packages).hexdigest()} {len(packages)} main/binary-arm64/Packages\n")


def write_machine(root: Path, uri: str, codename: str = "bookworm") -> Machine:
    """A machine whose apt sources name ``uri`` for its release."""
    (root / "apt" / "sources.list.d").mkdir(parents=True)
    (root / "apt" / "sources.list.d" / "local.sources").write_text(
        f"Types: deb\nURIs: {uri}\nSuites: {codename}\nComponents: main\nTrusted: yes\n")
    (root / "os-release").write_text(f'NAME="Debian"\nVERSION_CODENAME={codename}\n')
    return Machine(root / "apt", root / "os-release")


@pytest.fixture(scope="module")
def repository(tmp_path_factory) -> Path:
    """6.1.0-5 and 6.1.0-7 (6.x packaging), 7.2.1+deb14 (7.x packaging) and
    6.12.5+deb12, whose vmlinuz is no Image."""
    repo = tmp_path_factory.mktemp("debian-repo")
    pool = repo / "pool"
    pool.mkdir()
    debs = (six_x_packages(pool, "6.1.0-5", "6.1.90-1")
            + six_x_packages(pool, "6.1.0-7", "6.1.99-2")
            + six_x_packages(pool, "6.12.5+deb12", "6.12.5-1~deb12u1", image=b"\x1f\x8b" * 64)
            + seven_x_packages(pool, "7.2.1+deb14", "7.2.1-1"))
    write_repository(repo, "bookworm", debs)
    return repo


@pytest.fixture
def local(tmp_path, repository) -> tuple[Machine, Path]:
    """This test's own machine (sources naming the local repository) and
    kernel cache."""
    return write_machine(tmp_path / "etc", f"file:{repository}"), tmp_path / "cache"


# -- names -----------------------------------------------------------------------

@pytest.mark.parametrize("value, kind, selector, suite", [
    ("debian:6.1", "series", "6.1", "bookworm"),
    ("debian:6.12@trixie", "series", "6.12", "trixie"),
    ("debian:6.1.0-57", "abi", "6.1.0-57", "bookworm"),
    ("debian:6.1.0-57-cloud-arm64", "abi", "6.1.0-57", "bookworm"),
    ("debian:6.12.118+deb13@trixie", "abi", "6.12.118+deb13", "trixie"),
    ("debian:trixie", "suite", "", "trixie"),
    ("debian:sid", "suite", "", "sid"),
    ("debian:", "suite", "", "bookworm"),
    ("debian:@sid", "suite", "", "sid")])
def test_names(value, kind, selector, suite):
    assert parse_spec(value, "bookworm") == DebianSpec(value, kind, selector, suite)
    assert is_debian_kernel(value)


@pytest.mark.parametrize("value, message", [
    ("debian:trixie@sid", "not a Debian kernel name"),
    ("debian:6", "not a Debian kernel name"),
    ("debian:6.1@Trixie", "is not a Debian suite name"),
    ("/usr/src/linux-source-6.1.tar.xz", "does not name a Debian kernel")])
def test_bad_names(value, message):
    with pytest.raises(DebianPackageError, match=message) as caught:
        parse_spec(value, "bookworm")
    assert caught.value.exit_code == EXIT_BAD_INPUT


def test_versions_and_generations():
    assert upstream_version("6.12.118-1~deb12u1") == "6.12.118"
    assert upstream_version("1:7.3~rc4-1~exp1") == "7.3~rc4"
    assert [generation_of(v) for v in ("6.1.192", "6.12.118", "7.2.13", "8.0")] == \
        ["6.1", "6.12", "7.x", "7.x"]
    with pytest.raises(DebianPackageError, match="6.6.9 is of no generation"):
        generation_of("6.6.9")


# -- the machine's sources ---------------------------------------------------------

def test_the_machines_sources_moved_to_another_suite(tmp_path):
    apt = tmp_path / "apt"
    (apt / "sources.list.d").mkdir(parents=True)
    (apt / "sources.list").write_text(
        "# a comment\ndeb-src http://src.example/debian bookworm main\n"
        "deb [arch=amd64 signed-by=/k/security.gpg] http://sec.example/debian-security "
        "bookworm-security main contrib\n")
    (apt / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://m.example/debian\nSuites: bookworm bookworm-updates\n"
        "Components: main\nSigned-By: /k/archive.gpg\n\n"
        "Types: deb\nURIs: http://off.example/debian\nSuites: bookworm-backports\n"
        "Components: main\nEnabled: no\n")
    (apt / "sources.list.d" / "vendor.sources").write_text(
        "Types: deb\nURIs: http://vendor.example/apt\nSuites: stable\nComponents: main\n")
    (apt / "sources.list.d" / "ignored.list.disabled").write_text(
        "deb http://x.example/debian bookworm main\n")
    entries = machine_entries(apt)
    (tmp_path / "os-release").write_text("VERSION_CODENAME=bookworm\n")
    codename = machine_codename(entries, tmp_path / "os-release")
    assert codename == "bookworm"
    trixie = entries_for("trixie", entries, codename)
    assert {(e.uris, e.suite, e.signed_by) for e in trixie} == {
        (("http://sec.example/debian-security",), "trixie-security", "/k/security.gpg"),
        (("http://m.example/debian",), "trixie", "/k/archive.gpg"),
        (("http://m.example/debian",), "trixie-updates", "/k/archive.gpg")}
    sid = entries_for("sid", entries, codename)
    assert [(e.uris, e.suite) for e in sid] == [(("http://m.example/debian",), "sid")]
    text = sources_text(sid)
    assert "Architectures: arm64" in text and "Components: main" in text
    assert "Signed-By: /k/archive.gpg" in text and "Trusted" not in text


def test_a_sid_machine_whose_os_release_names_the_next_release(tmp_path):
    (tmp_path / "os-release").write_text("VERSION_CODENAME=forky\n")
    entries = [MirrorEntry(("http://m.example/debian",), "sid")]
    assert machine_codename(entries, tmp_path / "os-release") == "sid"
    assert machine_codename([], tmp_path / "os-release") == "forky"


def test_a_machine_without_a_mirror_for_its_release(tmp_path):
    entries = [MirrorEntry(("http://vendor.example/apt",), "stable")]
    with pytest.raises(DebianPackageError, match="name no Debian mirror for its release"):
        entries_for("bookworm", entries, "bookworm")


# -- files out of a .deb -------------------------------------------------------------

def test_members_are_streamed_out_of_a_deb(tmp_path):
    deb = six_x_packages(tmp_path, "6.1.0-9", "6.1.100-1")[1]
    full = f"6.1.0-9-{FLAVOUR}"
    out = tmp_path / "out"
    out.mkdir()
    taken = extract_members(deb, {
        # The symlink with this name is passed over for the file it points at.
        "vmlinux": (f"usr/lib/debug/lib/modules/{full}/vmlinux",
                    f"usr/lib/debug/boot/vmlinux-{full}"),
        "System.map": (f"usr/lib/debug/boot/System.map-{full}",)}, out)
    assert taken == {"vmlinux": f"usr/lib/debug/boot/vmlinux-{full}",
                     "System.map": f"usr/lib/debug/boot/System.map-{full}"}
    assert (out / "vmlinux").read_bytes() == b"\x7fELF vmlinux 6.1.0-9"
    assert b" T abi_6.1.0-9\n" in (out / "System.map").read_bytes()
    assert sorted(p.name for p in out.iterdir()) == ["System.map", "vmlinux"]


def test_a_member_the_deb_lacks(tmp_path):
    deb = six_x_packages(tmp_path, "6.1.0-9", "6.1.100-1")[0]
    with pytest.raises(DebArchiveError, match="vmlinux: usr/lib/debug/boot/vmlinux-x"):
        extract_members(deb, {"vmlinux": ("usr/lib/debug/boot/vmlinux-x",)}, tmp_path)


def test_a_file_that_is_no_deb(tmp_path):
    bogus = tmp_path / "bogus.deb"
    bogus.write_bytes(b"not an ar archive at all\n" * 10)
    with pytest.raises(DebArchiveError, match="cannot read the package"):
        extract_members(bogus, {"x": ("x",)}, tmp_path)


# -- resolving, fetching and caching, against a local repository ----------------------

def test_the_newest_of_a_series_is_fetched_then_found_in_the_cache(local, repository):
    machine, cache = local
    kernel = obtain_debian_kernel("debian:6.1", out_dir=cache, machine=machine)
    assert (kernel.label, kernel.version, kernel.generation, kernel.origin,
            kernel.config_name, kernel.given, kernel.cached) == (
        f"debian-6.1.0-7-{FLAVOUR}", "6.1.99", "6.1", "debian", FLAVOUR,
        "debian:6.1.0-7@bookworm", False)
    assert kernel.image.read_bytes() == fake_image("6.1.0-7")
    assert kernel.system_map.read_bytes() == fake_system_map("abi_6.1.0-7")   # the -dbg's
    assert kernel.vmlinux.read_bytes() == b"\x7fELF vmlinux 6.1.0-7"
    assert kernel.options["NR_CPUS"] == "4"
    stamp = json.loads((kernel.build_dir / STAMP).read_text())
    assert stamp["version"] == "6.1.99-2" and set(stamp["packages"]) == {
        f"linux-image-6.1.0-7-{FLAVOUR}-unsigned", f"linux-image-6.1.0-7-{FLAVOUR}-dbg"}
    assert not list(kernel.build_dir.glob("*.deb"))

    # Without the packages on the mirror, the same name and the exact one
    # are found in the cache; the exact one needs no package index at all.
    hidden = repository.parent / (repository.name + "-pool")
    (repository / "pool").rename(hidden)
    try:
        again = obtain_debian_kernel("debian:6.1", out_dir=cache, machine=machine)
        shutil.rmtree(cache / "debian" / "apt")
        exact = obtain_debian_kernel("debian:6.1.0-7", out_dir=cache, machine=machine)
    finally:
        hidden.rename(repository / "pool")
    assert again.cached and exact.cached and again.build_dir == exact.build_dir
    assert not (cache / "debian" / "apt").exists()


def test_an_exact_abi_and_seven_x_packaging(local):
    machine, cache = local
    older = obtain_debian_kernel("debian:6.1.0-5-cloud-arm64", out_dir=cache, machine=machine)
    assert older.version == "6.1.90" and older.image.read_bytes() == fake_image("6.1.0-5")
    seven = obtain_debian_kernel("debian:bookworm", out_dir=cache, machine=machine)
    assert (seven.label, seven.generation, seven.given) == (
        f"debian-7.2.1+deb14-{FLAVOUR}", "7.x", "debian:7.2.1+deb14@bookworm")
    assert seven.image.read_bytes() == fake_image("7.2.1+deb14")
    assert seven.vmlinux.read_bytes() == b"\x7fELF vmlinux 7.2.1+deb14"
    assert seven.dotconfig.read_text() == "CONFIG_KVM=y\n"


def test_a_vmlinuz_that_is_no_image(local):
    machine, cache = local
    with pytest.raises(DebianPackageError, match="is not an uncompressed arm64 Image"):
        obtain_debian_kernel("debian:6.12", out_dir=cache, machine=machine)
    assert not [p for p in (cache / "debian" / "images").iterdir() if p.is_dir() and "6.12" in p.name]


def test_a_series_debian_does_not_have(local):
    machine, cache = local
    with pytest.raises(DebianPackageError) as caught:
        obtain_debian_kernel("debian:6.6", out_dir=cache, machine=machine)
    message = str(caught.value)
    assert "Debian bookworm has no cloud-arm64 image of the 6.6 series" in message
    assert "6.1: 6.1.0-5, 6.1.0-7; 6.12: 6.12.5+deb12; 7.2: 7.2.1+deb14" in message


def test_an_unreachable_mirror(tmp_path):
    # Nothing listens on port 1: apt's connection is refused at once.
    machine = write_machine(tmp_path / "etc", "http://127.0.0.1:1/debian")
    with pytest.raises(MirrorUnreachable) as caught:
        obtain_debian_kernel("debian:6.1", out_dir=tmp_path / "cache", machine=machine)
    assert caught.value.exit_code == EXIT_BAD_INPUT
    assert "cannot fetch Debian's arm64 package lists for bookworm" in str(caught.value)
    assert "check the network" in str(caught.value)


def test_the_real_matrix_runs_a_debian_image_once_under_its_own_configuration():
    configs = [kconfig.find_config("pkvm"), kconfig.find_config("pkvm_16k")]
    tree = Unwinder("qemu-debian-6.1.0-57", "debian:6.1.0-57@bookworm", "6.1")
    runs = expand_qemu(configs, [tree], scenario_patterns=("hyp_panic",), differential=True)
    assert [r.id for r in runs] == ["qemu-debian-6.1.0-57/cloud-arm64-nvhe-hyp_panic-cpu0",
                                    "qemu-debian-6.1.0-57/cloud-arm64-protected-hyp_panic-cpu0"]
    assert not any(r.differential for r in runs)
    assert all(r.command().startswith("pyharness qemu --config ") and
               "--kernel-src debian:6.1.0-57@bookworm" in r.command() for r in runs)


# -- Debian's real image, booted ------------------------------------------------------

@pytest.fixture(scope="module")
def debian_6_1():
    """Debian's newest 6.1 cloud-arm64 image, from the mirror once, then
    from the kernel cache."""
    try:
        return obtain_debian_kernel("debian:6.1")
    except MirrorUnreachable as err:
        pytest.skip(f"Debian's mirror cannot be reached, so its kernel cannot be "
                    f"downloaded: {err}")


@pytest.mark.parametrize("mode", ("nvhe", "protected"))
def test_debians_real_kernel_panics_and_is_judged(debian_6_1, mode):
    record = run_qemu(QemuRequest(config="pkvm", kernel_src=debian_6_1.given,
                                  scenario="hyp_panic", mode=mode, kernel=debian_6_1))
    assert record.passed, "\n".join([*record.reasons, *record.console[-25:]])
    assert record.run_status == "exited" and record.spec.config_name == FLAVOUR
    if mode == "nvhe":
        frames = [f.symbol for f in record.actual]
        assert frames[0].startswith("__kvm_nvhe_hyp_panic+")
        assert frames[-1] == "__kvm_nvhe___host_exit+0x64/0x64"
    else:   # Debian builds without NVHE_EL2_DEBUG, so without the protected stacktrace
        assert any(line.endswith("Cannot dump pKVM nVHE stacktrace: "
                                 "!CONFIG_PROTECTED_NVHE_STACKTRACE") for line in record.console)
    again = obtain_debian_kernel("debian:6.1")
    assert again.cached and again.build_dir == debian_6_1.build_dir
