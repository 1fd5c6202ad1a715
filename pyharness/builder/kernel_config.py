"""The Kconfig fragment of a real kernel, derived from a lab configuration.

A real kernel built for ``pyharness qemu`` is ``allnoconfig`` plus a
fragment (``KCONFIG_ALLCONFIG``): the shipped base,
``configs/kernel/qemu.config`` (console, GICv3, KVM, kallsyms...), and the
options that carry the lab configuration over to the kernel's own Kconfig:

| lab | kernel |
|---|---|
| ARM64_{4K,16K,64K}_PAGES | the same |
| ARM64_VA_BITS_N | the same |
| RANDOMIZE_BASE | the same |
| NR_CPUS | the same (the kernel's range is 2-4096) |
| NVHE_EL2_DEBUG | the same |
| PROTECTED_NVHE_STACKTRACE | the same, or PKVM_STACKTRACE in trees that name it so (7.x), with PKVM_DISABLE_STAGE2_ON_PANIC where the tree makes it depend on that |
| CC_OPTIMIZE_FOR_SIZE | the same (else CC_OPTIMIZE_FOR_PERFORMANCE) |
| ARM64_PTR_AUTH_KERNEL (pac-ret) | ARM64_PTR_AUTH + ARM64_PTR_AUTH_KERNEL |
| ARM64_BTI_KERNEL | ARM64_BTI + ARM64_BTI_KERNEL |
| CC_IS_CLANG | the build's ``LLVM=1`` (not an option) |

After ``olddefconfig`` every option must hold the value asked for: one the
tree's Kconfig does not have, cannot reach (an unmet dependency, a value
out of range) or drops is refused by :func:`check_applied`, naming it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from pyharness.errors import ConfigError
from pyharness.kconfig.resolve import ResolvedConfig
from pyharness.paths import configs_dir

BASE_FRAGMENT = "kernel/qemu.config"
# The protected-mode stacktrace's names, newest first: 7.x trees renamed it.
PROTECTED_STACKTRACE_NAMES = ("PKVM_STACKTRACE", "PROTECTED_NVHE_STACKTRACE")
KVM_KCONFIG = "arch/arm64/kvm/Kconfig"
# 7.x: the host may only read the hyp's stacktrace once the panicking hyp
# relaxed the host's stage 2, and PKVM_STACKTRACE depends on this option.
STAGE2_OFF_ON_PANIC = "PKVM_DISABLE_STAGE2_ON_PANIC"

_OPTION_LINE = re.compile(r"^CONFIG_(\w+)=(.*)$")
_UNSET_LINE = re.compile(r"^# CONFIG_(\w+) is not set$")


@dataclass(frozen=True)
class KernelOption:
    """One line of the fragment: CONFIG_NAME=value ("n": not set)."""

    name: str
    value: str
    origin: str          # where it comes from: the base fragment or the lab option

    def line(self) -> str:
        if self.value == "n":
            return f"# CONFIG_{self.name} is not set"
        return f"CONFIG_{self.name}={self.value}"


def base_fragment_path() -> Path:
    return configs_dir() / BASE_FRAGMENT


def read_fragment(text: str, origin: str) -> list[KernelOption]:
    """The options of a Kconfig fragment's text (comments and blanks skipped)."""
    options = []
    for line in text.splitlines():
        line = line.strip()
        unset = _UNSET_LINE.match(line)
        if unset:
            options.append(KernelOption(unset.group(1), "n", origin))
            continue
        match = _OPTION_LINE.match(line)
        if match:
            options.append(KernelOption(match.group(1), match.group(2).strip('"'), origin))
    return options


def kvm_options(tree_root: Path) -> set[str]:
    """The options the tree's ``arch/arm64/kvm/Kconfig`` declares."""
    try:
        text = (tree_root / KVM_KCONFIG).read_text(encoding="utf-8", errors="replace")
    except OSError as err:
        raise ConfigError(f"{tree_root / KVM_KCONFIG}: cannot read it ({err.strerror}): "
                          "not an arm64 kernel tree with KVM") from None
    return set(re.findall(r"^config\s+(\w+)\s*$", text, re.M))


def protected_stacktrace_name(declared: set[str], tree_root: Path) -> str:
    """The tree's name for the protected-mode stacktrace option: the first
    of PROTECTED_STACKTRACE_NAMES its KVM Kconfig declares."""
    for name in PROTECTED_STACKTRACE_NAMES:
        if name in declared:
            return name
    raise ConfigError(f"{tree_root / KVM_KCONFIG} declares none of "
                      f"{', '.join(PROTECTED_STACKTRACE_NAMES)}: the tree has no protected "
                      "nVHE stacktrace option this harness knows")


def _flag(on: bool) -> str:
    return "y" if on else "n"


def derived_options(config: ResolvedConfig, declared: set[str],
                    protected_name: str) -> list[KernelOption]:
    """The kernel options that carry ``config`` over (the module's table);
    ``declared``: the options the tree's KVM Kconfig has."""
    s = config.summary
    origin = f"lab {config.name}"
    pages = {4: "ARM64_4K_PAGES", 16: "ARM64_16K_PAGES", 64: "ARM64_64K_PAGES"}
    options = [KernelOption(name, _flag(size == s.page_size_kb), origin)
               for size, name in pages.items()]
    options += [
        KernelOption(f"ARM64_VA_BITS_{s.va_bits}", "y", origin),
        KernelOption("RANDOMIZE_BASE", _flag(s.kaslr), origin),
        KernelOption("NR_CPUS", str(s.nr_cpus), origin),
        KernelOption("NVHE_EL2_DEBUG", _flag(s.el2_debug), origin),
        KernelOption(protected_name, _flag(s.protected_stacktrace), origin),
        KernelOption("CC_OPTIMIZE_FOR_SIZE", _flag(s.optimize == "-Os"), origin),
        KernelOption("CC_OPTIMIZE_FOR_PERFORMANCE", _flag(s.optimize != "-Os"), origin),
        KernelOption("ARM64_PTR_AUTH", _flag(s.pac_ret), origin),
        KernelOption("ARM64_PTR_AUTH_KERNEL", _flag(s.pac_ret), origin),
        KernelOption("ARM64_BTI", _flag(s.bti), origin),
        KernelOption("ARM64_BTI_KERNEL", _flag(s.bti), origin),
    ]
    if STAGE2_OFF_ON_PANIC in declared:
        options.append(KernelOption(STAGE2_OFF_ON_PANIC, _flag(s.protected_stacktrace),
                                    f"{origin} (the tree's {protected_name} depends on it)"))
    return options


def kernel_fragment(config: ResolvedConfig, tree_root: Path) -> list[KernelOption]:
    """The whole fragment for ``config`` in the tree at ``tree_root``: the
    shipped base, then the derived options (a derived option wins)."""
    path = base_fragment_path()
    try:
        base = read_fragment(path.read_text(encoding="utf-8"), str(path.name))
    except OSError as err:
        raise ConfigError(f"{path}: cannot read the base kernel fragment "
                          f"({err.strerror}); the checkout is incomplete") from None
    declared = kvm_options(tree_root)
    derived = derived_options(config, declared, protected_stacktrace_name(declared, tree_root))
    names = {option.name for option in derived}
    return [option for option in base if option.name not in names] + derived


def fragment_text(options: list[KernelOption]) -> str:
    return "".join(option.line() + "\n" for option in options)


def read_dotconfig(text: str) -> dict[str, str]:
    """A kernel .config's values (``n`` for ``# ... is not set``)."""
    return {option.name: option.value for option in read_fragment(text, ".config")}


def check_applied(options: list[KernelOption], dotconfig: dict[str, str],
                  tree: str, config_name: str) -> None:
    """Every option holds its value after olddefconfig, or ConfigError
    naming each that does not."""
    dropped = []
    for option in options:
        got = dotconfig.get(option.name, "n")
        if got != option.value:
            dropped.append(f"CONFIG_{option.name}={option.value} (from {option.origin}) "
                           f"ended up {'not set' if got == 'n' else repr(got)}")
    if dropped:
        raise ConfigError(
            f"{tree}: the kernel's Kconfig cannot take the configuration {config_name}: "
            + "; ".join(dropped)
            + ". The tree lacks the option, its dependencies are not met, or the value is "
              "out of its range; choose a lab configuration the tree can build")
