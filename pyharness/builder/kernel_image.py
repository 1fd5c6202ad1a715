"""A bootable real kernel and the files that describe it: what a kbuild
build (:mod:`pyharness.builder.kbuild`) and a Debian package
(:mod:`pyharness.builder.debian_kernel`) both hand to the QEMU platform and
the judge."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from pyharness.builder.kernel_config import read_dotconfig


@dataclass(frozen=True)
class KernelImage:
    """An arm64 kernel ``Image`` with its ``vmlinux`` and ``System.map``."""

    image: Path              # arch/arm64/boot/Image: uncompressed, what -kernel boots
    vmlinux: Path            # the ELF with every symbol (and DWARF when built with it)
    system_map: Path
    dotconfig: Path          # the kernel's .config
    version: str             # "6.12.118"
    generation: str          # the unwinder generation: "6.1", "6.12", ...
    label: str               # the row in reports: "linux-6.12.118", "debian-6.1.0-41-cloud-arm64"
    origin: str              # "kbuild" or "debian"
    config_name: str         # the lab configuration it was derived from ("debian": none)
    compiler: str = "gcc"
    build_dir: Path = field(default_factory=Path)
    given: str = ""          # the tree, tarball or package as the user named it
    source_root: Path | None = None   # the tree it was built from (kbuild)
    cached: bool = False
    seconds: float = 0.0

    @cached_property
    def options(self) -> dict[str, str]:
        """The kernel's CONFIG_ values (``n`` for the unset ones)."""
        return read_dotconfig(self.dotconfig.read_text(encoding="utf-8", errors="replace"))

    def enabled(self, name: str) -> bool:
        return self.options.get(name) == "y"
