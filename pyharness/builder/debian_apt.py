"""Debian's arm64 packages, fetched without touching the machine's apt setup.

A Debian kernel for the QEMU platform is an arm64 package, and the machine
running the harness is usually amd64. Rather than ``dpkg
--add-architecture arm64`` (which changes what every later ``apt-get
upgrade`` on the machine does), the harness keeps an apt state of its own
under the kernel cache, ``<cache>/debian/apt/<suite>/``: a deb822 sources
file, the downloaded package lists and apt's binary cache, and runs
``apt-get`` / ``apt-cache`` with options that point every directory apt
would use there (``Dir::Etc::SourceList``, ``Dir::State::Lists``,
``Dir::Cache``, an empty ``Dir::State::status``, no preferences) and that
make arm64 the only architecture. The machine's own apt configuration
(proxies, ``apt.conf.d``) still applies.

The mirror is the one the machine's own sources name
(``/etc/apt/sources.list`` and ``sources.list.d/*.list|*.sources``): their
``deb`` entries for the machine's release (``bookworm``,
``bookworm-updates``, ``bookworm-security``), with the same URIs and
``Signed-By``. Another suite is reached the same way: ``trixie`` becomes
``trixie``, ``trixie-updates``, ``trixie-security`` on those mirrors; a
rolling suite (``sid``) or a dashed one (``bookworm-backports``) is taken
from the main archive's entries alone.

The lists are fetched again when older than :data:`INDEX_MAX_AGE_S`; when
that fails, lists already there are used. Errors are
:class:`DebianPackageError` (exit 2); the mirror out of reach is its
subclass :class:`MirrorUnreachable`, so a test can tell "no network" from
a bug.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from pyharness.errors import HarnessError
from pyharness.files import write_atomically, write_if_changed

ARCH = "arm64"
APT_DIR = "apt"
INDEX_MAX_AGE_S = 24 * 3600
ETC_APT = Path("/etc/apt")
OS_RELEASE = Path("/etc/os-release")
# Suites with no -updates / -security companions.
_ROLLING = ("sid", "unstable", "experimental", "rc-buggy")
_SOURCES_FILE = "pyharness.sources"
_STAMP = "updated"
_UPDATE_TIMEOUT_S = 900
_DOWNLOAD_TIMEOUT_S = 3600
_NOT_THERE = ("does not have a Release file", "404  Not Found", "404 Not Found")
_ONE_LINE = re.compile(r"^deb\s+(?:\[(?P<opts>[^\]]*)\]\s+)?(?P<uri>\S+)\s+(?P<suite>\S+)"
                       r"(?:\s+(?P<components>.*))?$")


class DebianPackageError(HarnessError):
    """A Debian package that cannot be found, fetched or read (exit 2)."""


class MirrorUnreachable(DebianPackageError):
    """The Debian mirror could not be reached (no network, a dead proxy)."""


@dataclass(frozen=True)
class MirrorEntry:
    """One ``deb`` source of the machine: where a suite's main component is."""

    uris: tuple[str, ...]
    suite: str
    signed_by: str = ""       # a keyring path, or an embedded key (deb822 continuation lines)
    trusted: bool = False     # "Trusted: yes" / [trusted=yes]: a local unsigned repository


@dataclass(frozen=True)
class PackageInfo:
    """One arm64 package as the index describes it."""

    name: str
    version: str
    size: int
    sha256: str


# -- the machine's sources -----------------------------------------------------

@dataclass(frozen=True)
class Machine:
    """Where the machine's apt sources and Debian release are read."""

    etc_apt: Path = ETC_APT
    os_release: Path = OS_RELEASE

    def entries(self) -> list[MirrorEntry]:
        return machine_entries(self.etc_apt)

    def codename(self) -> str:
        return machine_codename(self.entries(), self.os_release)


THIS_MACHINE = Machine()


def _deb822_paragraphs(text: str) -> list[dict[str, str]]:
    paragraphs: list[dict[str, str]] = []
    current: dict[str, str] = {}
    key = ""
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        if not line.strip():
            if current:
                paragraphs.append(current)
            current, key = {}, ""
        elif line[0] in " \t" and key:
            current[key] += "\n" + line
        elif ":" in line:
            key, _, value = line.partition(":")
            key = key.strip().lower()
            current[key] = value.strip()
    if current:
        paragraphs.append(current)
    return paragraphs


def _deb822_entries(text: str) -> list[MirrorEntry]:
    entries = []
    for para in _deb822_paragraphs(text):
        if "deb" not in para.get("types", "").split() or para.get("enabled", "yes") == "no":
            continue
        if "main" not in para.get("components", "").split():
            continue
        uris = tuple(para.get("uris", "").split())
        trusted = para.get("trusted", "no").lower() == "yes"
        for suite in para.get("suites", "").split():
            entries.append(MirrorEntry(uris, suite, para.get("signed-by", ""), trusted))
    return entries


def _one_line_entries(text: str) -> list[MirrorEntry]:
    entries = []
    for line in text.splitlines():
        match = _ONE_LINE.match(line.strip())
        if not match or "main" not in (match["components"] or "").split():
            continue
        options = dict(opt.partition("=")[::2] for opt in (match["opts"] or "").split())
        entries.append(MirrorEntry((match["uri"],), match["suite"], options.get("signed-by", ""),
                                   options.get("trusted") == "yes"))
    return entries


def machine_entries(etc_apt: Path = ETC_APT) -> list[MirrorEntry]:
    """The ``deb`` entries (with ``main``) of the machine's apt sources."""
    files = [etc_apt / "sources.list"]
    parts = etc_apt / "sources.list.d"
    if parts.is_dir():
        files += sorted(parts.iterdir())
    entries: list[MirrorEntry] = []
    for path in files:
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        if path.name.endswith(".sources"):
            entries += _deb822_entries(text)
        elif path.name.endswith(".list"):
            entries += _one_line_entries(text)
    return entries


def machine_codename(entries: list[MirrorEntry], os_release: Path = OS_RELEASE) -> str:
    """The machine's Debian release: ``VERSION_CODENAME`` when its sources
    name it (sid's os-release names the next release), else the suite of
    its first source."""
    named = ""
    try:
        for line in os_release.read_text(encoding="utf-8").splitlines():
            if line.startswith("VERSION_CODENAME="):
                named = line.partition("=")[2].strip().strip('"')
    except OSError:
        pass
    suites = [entry.suite.partition("-")[0] for entry in entries]
    if named and (named in suites or not suites):
        return named
    if suites:
        return suites[0]
    raise DebianPackageError(f"no Debian release on this machine ({os_release} names none "
                             f"and {ETC_APT}/sources.list* have no `deb` entry with main)")


def entries_for(suite: str, entries: list[MirrorEntry], codename: str) -> list[MirrorEntry]:
    """The machine's entries for its own release, moved to ``suite``."""
    own = [e for e in entries if e.suite == codename or e.suite.startswith(codename + "-")]
    if not own:
        raise DebianPackageError(
            f"the machine's apt sources ({ETC_APT}/sources.list*) name no Debian mirror for "
            f"its release {codename}; add one (e.g. `deb http://deb.debian.org/debian "
            f"{codename} main`)")
    base_only = suite in _ROLLING or ("-" in suite and suite != codename)
    moved: dict[tuple[tuple[str, ...], str], MirrorEntry] = {}
    for entry in own:
        rest = entry.suite[len(codename):]
        if rest and base_only:
            continue
        target = MirrorEntry(entry.uris, suite + rest, entry.signed_by, entry.trusted)
        moved.setdefault((target.uris, target.suite), target)
    return list(moved.values())


def sources_text(entries: list[MirrorEntry]) -> str:
    """A deb822 sources file of ``entries``, arm64 only, main only."""
    paragraphs = []
    for entry in entries:
        lines = ["Types: deb", f"URIs: {' '.join(entry.uris)}", f"Suites: {entry.suite}",
                 "Components: main", f"Architectures: {ARCH}"]
        if entry.signed_by:
            lines.append(f"Signed-By: {entry.signed_by}")
        if entry.trusted:
            lines.append("Trusted: yes")
        paragraphs.append("\n".join(lines))
    return "\n\n".join(paragraphs) + "\n"


def describe(entries: list[MirrorEntry]) -> str:
    """``bookworm, bookworm-security at http://deb.debian.org/debian, ...``"""
    by_uri: dict[str, list[str]] = {}
    for entry in entries:
        by_uri.setdefault(" ".join(entry.uris), []).append(entry.suite)
    return "; ".join(f"{', '.join(suites)} at {uri}" for uri, suites in by_uri.items())


# -- the harness's own apt state -----------------------------------------------

def _tail(text: str, lines: int = 3) -> str:
    kept = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return " / ".join(kept[-lines:])


class AptIndex:
    """An arm64 apt state of the harness's own for one suite."""

    def __init__(self, directory: Path, suite: str, entries: list[MirrorEntry]) -> None:
        self.directory = directory
        self.suite = suite
        self.entries = entries
        self.sources = directory / _SOURCES_FILE
        self.lists = directory / "lists"

    @property
    def where(self) -> str:
        return describe(self.entries)

    def options(self) -> list[str]:
        d = self.directory
        opts = {"Dir::Etc::SourceList": str(self.sources), "Dir::Etc::SourceParts": "/dev/null",
                "Dir::Etc::Preferences": "/dev/null", "Dir::Etc::PreferencesParts": "/dev/null",
                "Dir::State::Lists": str(self.lists), "Dir::State::status": str(d / "status"),
                "Dir::Cache": str(d / "cache"),
                "Dir::Cache::pkgcache": str(d / "cache" / "pkgcache.bin"),
                "Dir::Cache::srcpkgcache": str(d / "cache" / "srcpkgcache.bin"),
                "APT::Architecture": ARCH, "APT::Architectures": ARCH,
                "Acquire::Languages": "none"}
        if os.geteuid() == 0:
            # apt would drop to the _apt user, who cannot write the cache.
            opts["APT::Sandbox::User"] = "root"
        return [arg for key, value in opts.items() for arg in ("-o", f"{key}={value}")]

    def _run(self, tool: str, args: list[str], timeout: float,
             cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        path = shutil.which(tool)
        if path is None:
            raise DebianPackageError(f"`{tool}` is not on PATH: Debian kernels are fetched with "
                                     "apt; use a Debian or Ubuntu machine (package apt)")
        env = dict(os.environ, LC_ALL="C", LANG="C", DEBIAN_FRONTEND="noninteractive")
        try:
            return subprocess.run([path, *self.options(), *args], capture_output=True, text=True,
                                  errors="replace", timeout=timeout, cwd=cwd, env=env,
                                  stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise MirrorUnreachable(f"`{tool} {args[0]}` for Debian {self.suite} ({self.where}) "
                                    f"took over {timeout:.0f} s; check the network") from None

    def _fresh(self, max_age_s: float) -> bool:
        stamp = self.directory / _STAMP
        try:
            recorded = stamp.read_text(encoding="utf-8").strip()
            age = time.time() - stamp.stat().st_mtime
        except OSError:
            return False
        return recorded == self._sources_digest() and 0 <= age < max_age_s

    def _sources_digest(self) -> str:
        return hashlib.sha256(sources_text(self.entries).encode()).hexdigest()

    def _has_lists(self) -> bool:
        """The suite's own lists are there (its -updates or -security may be
        empty, and then apt keeps no file)."""
        names = [p.name for p in self.lists.glob("*_Packages*")]
        return any(f"_dists_{self.suite}_" in name for name in names)

    def refresh(self, max_age_s: float = INDEX_MAX_AGE_S) -> None:
        """``apt-get update`` unless the lists are younger than ``max_age_s``
        (the caller holds the index's lock)."""
        for sub in (self.lists / "partial", self.directory / "cache" / "archives" / "partial"):
            sub.mkdir(parents=True, exist_ok=True)
        write_if_changed(self.sources, sources_text(self.entries))
        if not (self.directory / "status").exists():
            write_atomically(self.directory / "status", "")
        if self._fresh(max_age_s) and self._has_lists():
            return
        proc = self._run("apt-get", ["update"], _UPDATE_TIMEOUT_S)
        output = proc.stdout + proc.stderr
        if proc.returncode == 0 and self._has_lists():
            write_atomically(self.directory / _STAMP, self._sources_digest() + "\n")
            return
        if any(marker in output for marker in _NOT_THERE) and not self._has_lists():
            raise DebianPackageError(
                f"Debian has no suite {self.suite!r} on the mirror ({self.where}): "
                f"apt-get update said: {_tail(output)}; name a Debian suite such as "
                "bookworm, trixie or sid")
        if self._has_lists():
            return  # the mirror is out of reach: the lists already fetched still serve
        raise MirrorUnreachable(
            f"cannot fetch Debian's {ARCH} package lists for {self.suite} ({self.where}): "
            f"apt-get update (exit {proc.returncode}) said: {_tail(output)}; check the network "
            "(the machine's apt proxy settings apply), then run again")

    def names(self, prefix: str) -> list[str]:
        """Every package name in the lists that starts with ``prefix``."""
        proc = self._run("apt-cache", ["pkgnames", prefix], 300)
        if proc.returncode != 0:
            raise DebianPackageError(f"apt-cache pkgnames failed (exit {proc.returncode}): "
                                     f"{_tail(proc.stderr)}")
        return sorted(set(proc.stdout.split()))

    def show(self, names: list[str]) -> dict[str, PackageInfo]:
        """The candidate version of each package (missing ones left out)."""
        if not names:
            return {}
        proc = self._run("apt-cache", ["show", "--no-all-versions", *names], 300)
        found: dict[str, PackageInfo] = {}
        for para in _deb822_paragraphs(proc.stdout):
            try:
                info = PackageInfo(para["package"], para["version"], int(para["size"]),
                                   para.get("sha256", ""))
            except (KeyError, ValueError):
                continue
            found.setdefault(info.name, info)
        return found

    def download(self, package: PackageInfo, dest: Path) -> Path:
        """``apt-get download NAME=VERSION`` into ``dest`` (apt checks its
        size and hash against the signed index)."""
        proc = self._run("apt-get", ["download", f"{package.name}={package.version}"],
                         _DOWNLOAD_TIMEOUT_S, cwd=dest)
        debs = sorted(dest.glob(f"{package.name}_*.deb"))
        if proc.returncode == 0 and debs:
            return debs[0]
        output = proc.stdout + proc.stderr
        what = f"{package.name} {package.version} ({package.size / 1e6:.0f} MB, {ARCH})"
        if "Failed to fetch" in output or "Could not" in output or "Temporary failure" in output:
            raise MirrorUnreachable(f"cannot download {what} from {self.where}: "
                                    f"{_tail(output)}; check the network, then run again")
        raise DebianPackageError(f"cannot download {what} from {self.where}: apt-get download "
                                 f"exit {proc.returncode}: {_tail(output)}; check the free "
                                 f"space in {dest}, or name another image")


def apt_index(cache: Path, suite: str, machine: Machine = THIS_MACHINE) -> AptIndex:
    """The harness's apt state for ``suite`` (its directory is not made yet)."""
    if not re.fullmatch(r"[a-z][a-z0-9-]*", suite):
        raise DebianPackageError(f"{suite!r} is not a Debian suite name (bookworm, trixie, sid)")
    entries = machine.entries()
    return AptIndex(cache / APT_DIR / suite, suite,
                    entries_for(suite, entries, machine_codename(entries, machine.os_release)))
