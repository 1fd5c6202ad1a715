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
from pyharness.paths import configs_dir, kconfig_file

_SET_LINE = re.compile(r"^CONFIG_([A-Za-z0-9_]+)=(.*)$")
_UNSET_LINE = re.compile(r"^# CONFIG_([A-Za-z0-9_]+) is not set$")
_INT_VALUE = re.compile(r"^-?[0-9]+$")
_HEX_VALUE = re.compile(r"^0[xX][0-9a-fA-F]+$")
_STRING_VALUE = re.compile(r'^"(?:[^"\\]|\\.)*"$')


@dataclass(frozen=True)
class Assignment:
    """One ``CONFIG_X=v`` (or ``# CONFIG_X is not set``) line of a file."""

    name: str
    value: str
    path: str
    line: int

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"


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
    """Parse the Kconfig tree, quietly: problems are reported by us."""
    kconf = kconfiglib.Kconfig(str(kconfig_file()), warn_to_stderr=False)
    kconf.warn_assign_undef = False
    kconf.warn_assign_override = False
    kconf.warn_assign_redun = False
    return kconf


def parse_assignments(path: Path) -> list[Assignment]:
    """Read a fragment's assignments, rejecting malformed lines."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: cannot read config file: {err}") from None
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
            f"{path}:{number}: malformed line {raw.strip()!r}; expected "
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
            f"{a.where}: bad value {a.value!r} for CONFIG_{a.name}, "
            f"which is {kind}: expected {expected}")


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", r"\1", value[1:-1])


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
        value = _unescape(a.value) if a.value.startswith('"') else a.value
        if sym.orig_type in (kconfiglib.BOOL, kconfiglib.TRISTATE):
            sym.set_value(2 if value == "y" else 0)
        else:
            sym.set_value(value)


def _unmet_symbols(expr: object) -> list[str]:
    names = []
    for item in kconfiglib.expr_items(expr):
        if isinstance(item, kconfiglib.Symbol) and not item.is_constant \
                and item.tri_value == 0 and item.name not in names:
            names.append(item.name)
    return names


def _active_range(sym: kconfiglib.Symbol) -> tuple[int, int] | None:
    for low, high, cond in sym.ranges:
        if kconfiglib.expr_value(cond):
            base = 16 if sym.orig_type == kconfiglib.HEX else 10
            return int(low.str_value, base), int(high.str_value, base)
    return None


def _same_value(sym: kconfiglib.Symbol, wanted: str) -> bool:
    got = sym.str_value
    if sym.orig_type in (kconfiglib.INT, kconfiglib.HEX):
        try:
            return int(got, 0) == int(wanted, 0)
        except ValueError:
            return False
    if sym.orig_type == kconfiglib.STRING:
        return got == _unescape(wanted)
    return got == wanted


def _dependency_text(sym: kconfiglib.Symbol) -> str:
    """The dependency expression, without kconfiglib's choice marker."""
    text = kconfiglib.expr_str(sym.direct_dep)
    text = re.sub(r"\s*&&\s*<choice>|<choice>\s*&&\s*", "", text)
    return text


def _why_dropped(sym: kconfiglib.Symbol, a: Assignment,
                 by_name: dict[str, Assignment]) -> str:
    """Explain why Kconfig did not honour an assignment."""
    head = (f"{a.where}: CONFIG_{a.name}={a.value} was dropped by Kconfig "
            f"(it resolved to {sym.str_value or 'n'})")
    if sym.orig_type in (kconfiglib.INT, kconfiglib.HEX):
        bounds = _active_range(sym)
        if bounds and not bounds[0] <= int(a.value, 0) <= bounds[1]:
            return (f"{a.where}: CONFIG_{a.name}={a.value} is outside its "
                    f"range {bounds[0]}..{bounds[1]}")
    if not any(node.prompt for node in sym.nodes):
        return (f"{head}: CONFIG_{a.name} has no prompt and is derived from "
                "other options; set those instead")
    if a.value != "n" and kconfiglib.expr_value(sym.direct_dep) == 0:
        unmet = _unmet_symbols(sym.direct_dep)
        names = ", ".join(f"CONFIG_{n}" for n in unmet) or "its dependencies"
        return (f"{head}: it depends on {_dependency_text(sym)}, and {names} "
                f"{'is' if len(unmet) == 1 else 'are'} not set; "
                f"enable {names} in the same file")
    if sym.choice is not None:
        chosen = sym.choice.selection
        if a.value == "y" and chosen is not None:
            rival = by_name.get(chosen.name)
            where = f" at {rival.where}" if rival else " (the choice's default)"
            return (f"{head}: CONFIG_{chosen.name}{where} is selected in the "
                    "same choice; keep only one of them")
        return (f"{head}: one member of its choice must be y; set another "
                "member to y instead of unsetting this one")
    if a.value == "n" and sym.rev_dep is not None \
            and kconfiglib.expr_value(sym.rev_dep):
        return (f"{head}: it is selected by "
                f"{kconfiglib.expr_str(sym.rev_dep)}")
    return head


def _check_honoured(kconf: kconfiglib.Kconfig,
                    assignments: list[Assignment]) -> None:
    last: dict[str, Assignment] = {}
    for a in assignments:
        last[a.name] = a
    for a in last.values():
        sym = kconf.syms[a.name]
        if not _same_value(sym, a.value):
            raise ConfigError(_why_dropped(sym, a, last))


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


def resolve_kconfig(path: Path) -> tuple[ResolvedConfig, kconfiglib.Kconfig]:
    """Resolve ``path`` and also return the live Kconfig object."""
    assignments = parse_assignments(path)
    kconf = load_kconfig()
    apply_assignments(kconf, assignments)
    _check_honoured(kconf, assignments)
    resolved = ResolvedConfig(name=config_name(path), source=path,
                              dotconfig=_config_text(kconf),
                              values=_values(kconf))
    return resolved, kconf


def resolve(path: Path | str) -> ResolvedConfig:
    """A fragment or full .config -> the full configuration (olddefconfig).

    Remembered per process while the file and the Kconfig tree are
    unchanged (by stat)."""
    path = Path(path)
    try:
        st, kst = path.stat(), kconfig_file().stat()
    except OSError:
        return resolve_kconfig(path)[0]
    return _resolve_cached(str(path), st.st_mtime_ns, st.st_size,
                           str(kconfig_file()), kst.st_mtime_ns)


@functools.lru_cache(maxsize=256)
def _resolve_cached(path: str, _mtime: int, _size: int, _kconfig: str,
                    _kconfig_mtime: int) -> ResolvedConfig:
    return resolve_kconfig(Path(path))[0]


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
