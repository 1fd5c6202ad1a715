"""Kconfig layer: a fragment or .config -> a full, checked configuration.

Resolution follows ``make olddefconfig``: the assignments in the file are
applied in order and every symbol not mentioned takes its default. Unlike
the kernel's tools, an assignment that Kconfig does not honour (an unmet
dependency, a value out of range, a choice member overridden) is an error
naming the option and the reason, never a silent change.

The files the build reads are written by :mod:`pyharness.kconfig.outputs`.
"""

from __future__ import annotations

import functools
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import kconfiglib

from pyharness.errors import ConfigError
from pyharness.kconfig.assignment import Assignment, unescape
from pyharness.kconfig.honoured import check_honoured
from pyharness.paths import configs_dir, kconfig_file

_SET_LINE = re.compile(r"^CONFIG_([A-Za-z0-9_]+)=(.*)$")
_UNSET_LINE = re.compile(r"^# CONFIG_([A-Za-z0-9_]+) is not set$")
_INT_VALUE = re.compile(r"^-?[0-9]+$")
_HEX_VALUE = re.compile(r"^0[xX][0-9a-fA-F]+$")
# Longer numbers are no value any option here can take (and Python refuses
# to convert decimal strings past 4300 digits).
_MAX_INT_DIGITS = 19
_MAX_HEX_DIGITS = 16
# A config file is a few hundred bytes; a larger one is not a config.
MAX_CONFIG_BYTES = 1 << 20
_STRING_VALUE = re.compile(r'^"(?:[^"\\]|\\.)*"$')


@dataclass(frozen=True)
class ConfigSummary:
    """The options a user scans a configuration for."""

    page_size_kb: int
    va_bits: int
    kaslr: bool
    nr_cpus: int
    kvm: bool
    el2_debug: bool
    protected_stacktrace: bool
    optimize: str
    compiler: str = "gcc"
    pac_ret: bool = False
    bti: bool = False

    def one_line(self) -> str:
        hardening = [name for name, on in (("pac-ret", self.pac_ret), ("bti", self.bti)) if on]
        return (f"{self.page_size_kb}K pages, VA {self.va_bits}, "
                f"KASLR {'on' if self.kaslr else 'off'}, "
                f"{self.nr_cpus} CPU{'s' if self.nr_cpus > 1 else ''}, "
                f"protected stacktrace "
                f"{'on' if self.protected_stacktrace else 'off'}, "
                f"{self.optimize}, {self.compiler.upper() if self.compiler == 'gcc' else 'Clang'}"
                + "".join(f", {h}" for h in hardening))


@dataclass(frozen=True)
class ResolvedConfig:
    """A fragment resolved to a full configuration."""

    name: str
    source: Path
    dotconfig: str
    values: dict[str, str]

    def enabled(self, symbol: str) -> bool:
        return self.values.get(symbol) == "y"

    def integer(self, symbol: str) -> int:
        return int(self.values[symbol], 0)

    @property
    def summary(self) -> ConfigSummary:
        return ConfigSummary(
            page_size_kb=(1 << self.integer("ARM64_PAGE_SHIFT")) // 1024,
            va_bits=self.integer("ARM64_VA_BITS"),
            kaslr=self.enabled("RANDOMIZE_BASE"),
            nr_cpus=self.integer("NR_CPUS"),
            kvm=self.enabled("KVM"),
            el2_debug=self.enabled("NVHE_EL2_DEBUG"),
            protected_stacktrace=self.enabled("PROTECTED_NVHE_STACKTRACE"),
            optimize="-Os" if self.enabled("CC_OPTIMIZE_FOR_SIZE") else "-O2",
            compiler="clang" if self.enabled("CC_IS_CLANG") else "gcc",
            pac_ret=self.enabled("ARM64_PTR_AUTH_KERNEL"),
            bti=self.enabled("ARM64_BTI_KERNEL"),
        )


def config_name(path: Path) -> str:
    """``configs/pkvm_16k_defconfig`` -> ``pkvm_16k``; other files keep their stem."""
    name = path.name
    for suffix in ("_defconfig", ".config"):
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name.lstrip(".") or "config"


def config_slug(name: str) -> str:
    """A config's name as build directories and generated files carry it:
    letters, digits and ``._+-`` only, never starting with ``.`` or ``-``.

    A config's path may hold anything (``;``, a newline, ``*/``); written raw
    into a path or a generated file it would be CMake or C code."""
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", name).lstrip(".-")[:64] or "config"


def named_configs() -> list[Path]:
    """The shipped configurations, ``configs/*_defconfig``, sorted by name."""
    return sorted(configs_dir().glob("*_defconfig"))


def find_config(name_or_path: str) -> Path:
    """A path as given, or the name of a shipped config (``pkvm_16k``)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    for candidate in (configs_dir() / name_or_path,
                      configs_dir() / f"{name_or_path}_defconfig"):
        if candidate.is_file():
            return candidate
    if path.exists():
        raise ConfigError(f"{path}: not a regular file; give a Kconfig fragment "
                          "or .config file")
    raise ConfigError(
        f"{name_or_path}: no such config file or shipped config; "
        f"`pyharness configs` lists the shipped ones")


def load_kconfig() -> kconfiglib.Kconfig:
    """Parse the Kconfig tree, quietly: problems are reported by us.

    kconfiglib takes the symbol prefix and file headers from the environment
    (``$CONFIG_``, ``$KCONFIG_CONFIG_HEADER``...); the files we write must not
    depend on it, so they are set back to the kernel's."""
    kconf = kconfiglib.Kconfig(str(kconfig_file()), warn_to_stderr=False)
    kconf.config_prefix = "CONFIG_"
    kconf.config_header = kconf.header_header = ""
    kconf.warn_assign_undef = False
    kconf.warn_assign_override = False
    kconf.warn_assign_redun = False
    return kconf


def shown(value: str, limit: int = 40) -> str:
    """``value`` for a one-line message: repr'd, and cut short if long."""
    if len(value) <= limit:
        return repr(value)
    return f"{value[:limit]!r}... ({len(value)} characters)"


def read_config_text(path: Path) -> str:
    """A config file's text; a missing, unreadable, huge or binary file is a
    ConfigError."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_CONFIG_BYTES + 1)
        if len(data) > MAX_CONFIG_BYTES:
            raise ConfigError(f"{path}: over {MAX_CONFIG_BYTES >> 20} MiB, too large for a "
                              "config file; give a Kconfig fragment or .config")
        return data.decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: cannot read config file: {err}") from None


def parse_assignments(path: Path, text: str | None = None) -> list[Assignment]:
    """Read a fragment's assignments (``text``: its contents, if already
    read), rejecting malformed lines."""
    if text is None:
        text = read_config_text(path)
    if not text.strip():
        raise ConfigError(
            f"{path}: the config file is empty; put at least one "
            "CONFIG_...=... line in it, or start from configs/nvhe_defconfig")

    assignments = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        match = _SET_LINE.match(line)
        if match:
            assignments.append(Assignment(match[1], match[2], str(path), number))
            continue
        match = _UNSET_LINE.match(line)
        if match:
            assignments.append(Assignment(match[1], "n", str(path), number))
            continue
        if line.startswith("#"):
            continue
        raise ConfigError(
            f"{path}:{number}: malformed line {shown(raw.strip())}; expected "
            "'CONFIG_NAME=value', '# CONFIG_NAME is not set' or a # comment")
    return assignments


def _check_value_syntax(sym: kconfiglib.Symbol, a: Assignment) -> None:
    kind = kconfiglib.TYPE_TO_STR[sym.orig_type]
    ok = {
        "bool": a.value in ("y", "n"),
        "tristate": a.value in ("y", "n"),
        "int": bool(_INT_VALUE.match(a.value)),
        "hex": bool(_HEX_VALUE.match(a.value)),
        "string": bool(_STRING_VALUE.match(a.value)),
    }.get(kind, False)
    if not ok:
        expected = {"bool": "y or n", "tristate": "y or n",
                    "int": "a decimal number", "hex": "a 0x... number",
                    "string": 'a "quoted string"'}.get(kind, kind)
        raise ConfigError(
            f"{a.where}: bad value {shown(a.value)} for CONFIG_{a.name}, "
            f"which is {kind}: expected {expected}")
    digits = a.value.lstrip("-")[2 if kind == "hex" else 0:]
    if kind == "int" and len(digits) > 1 and digits.startswith("0"):
        raise ConfigError(
            f"{a.where}: bad value {shown(a.value)} for CONFIG_{a.name}: a leading zero "
            "(C would read it as octal); write the decimal number without it")
    if len(digits) > {"int": _MAX_INT_DIGITS, "hex": _MAX_HEX_DIGITS}.get(kind, len(digits)):
        raise ConfigError(
            f"{a.where}: bad value {shown(a.value)} for CONFIG_{a.name}: {len(digits)} "
            "digits, more than any value this option can take")


def apply_assignments(kconf: kconfiglib.Kconfig, assignments: list[Assignment]) -> None:
    """Set each assigned symbol, in order; an unknown symbol or a malformed
    value is a ConfigError naming the line."""
    for a in assignments:
        sym = kconf.syms.get(a.name)
        if sym is None or not sym.nodes:
            raise ConfigError(
                f"{a.where}: unknown symbol CONFIG_{a.name}; check the "
                "spelling against Kconfig (`pyharness menuconfig` shows them)")
        _check_value_syntax(sym, a)
        value = unescape(a.value) if a.value.startswith('"') else a.value
        if sym.orig_type in (kconfiglib.BOOL, kconfiglib.TRISTATE):
            sym.set_value(2 if value == "y" else 0)
        else:
            sym.set_value(value)


def _values(kconf: kconfiglib.Kconfig) -> dict[str, str]:
    values = {}
    for sym in kconf.unique_defined_syms:
        if sym.config_string:
            values[sym.name] = sym.str_value
    return values


def _config_text(kconf: kconfiglib.Kconfig) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, ".config")
        kconf.write_config(path, header="")
        return Path(path).read_text(encoding="utf-8")


def resolve_kconfig(path: Path, text: str | None = None
                    ) -> tuple[ResolvedConfig, kconfiglib.Kconfig]:
    """Resolve ``path`` (whose contents are ``text``, if already read) and
    also return the live Kconfig object."""
    assignments = parse_assignments(path, text)
    kconf = load_kconfig()
    apply_assignments(kconf, assignments)
    check_honoured(kconf, assignments)
    resolved = ResolvedConfig(name=config_name(path), source=path,
                              dotconfig=_config_text(kconf),
                              values=_values(kconf))
    return resolved, kconf


def resolve(path: Path | str) -> ResolvedConfig:
    """A fragment or full .config -> the full configuration (olddefconfig).

    Remembered per process for the same path and contents (not mtime: two
    writes within one clock tick share it) while the Kconfig tree is
    unchanged."""
    path = Path(path)
    text = read_config_text(path)
    kst = kconfig_file().stat()
    return _resolve_cached(str(path), text, str(kconfig_file()), kst.st_mtime_ns,
                           kst.st_size)


@functools.lru_cache(maxsize=256)
def _resolve_cached(path: str, text: str, _kconfig: str, _kconfig_mtime: int,
                    _kconfig_size: int) -> ResolvedConfig:
    return resolve_kconfig(Path(path), text)[0]


def savedefconfig(path: Path | str) -> str:
    """The minimal fragment that resolves to the same configuration."""
    _, kconf = resolve_kconfig(Path(path))
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "defconfig")
        kconf.write_min_config(out, header="")
        return Path(out).read_text(encoding="utf-8")


def parse_assignments_text(text: str) -> list[Assignment]:
    out = []
    for number, line in enumerate(text.splitlines(), start=1):
        match = _SET_LINE.match(line.strip())
        if match:
            out.append(Assignment(match[1], match[2], "<.config>", number))
            continue
        match = _UNSET_LINE.match(line.strip())
        if match:
            out.append(Assignment(match[1], "n", "<.config>", number))
    return out
