"""``pyharness qemu``: one scenario on a tree's real kernel under QEMU.

Exit 0 pass, 1 fail (or the kernel failed to build), 2 bad input.
"""

from __future__ import annotations

import argparse

from pyharness.builder.kernelsrc import KERNEL_SRC_ENV, default_kernel_src, split_name
from pyharness.cli.record_output import print_record
from pyharness.errors import HarnessError
from pyharness.run.kernel_scenarios import SCENARIOS
from pyharness.run.qemu_runner import QemuRequest, run_qemu
from pyharness.run.spec import DEFAULT_QEMU_TIMEOUT_S, MODES, QEMU_LABEL_PREFIX


def cmd_qemu(args: argparse.Namespace) -> int:
    kernel_src = args.kernel_src or default_kernel_src()
    if not kernel_src or kernel_src == "lab":
        raise HarnessError(f"pyharness qemu needs a kernel tree: --kernel-src TREE or a "
                           f"Debian /usr/src/linux-source-X.Y.tar.xz (or ${KERNEL_SRC_ENV}), "
                           "or one of Debian's own kernels: --kernel-src debian:6.1")
    name, kernel_src = split_name(kernel_src)
    record = run_qemu(QemuRequest(config=args.config, kernel_src=kernel_src,
                                  label=f"{QEMU_LABEL_PREFIX}{name}" if name else None,
                                  scenario=args.scenario, mode=args.mode, cpu=args.cpu,
                                  kaslr_seed=args.kaslr_seed, timeout_s=args.timeout,
                                  out_dir=args.out, differential=args.differential))
    build = "" if record.build_ms < 1000 else f"; kernel built in {record.build_ms / 1000:.0f} s"
    return print_record(record, args.json,
                        f"boot {record.elapsed_ms / 1000:.2f} s, {record.run_status}{build}")


def add_qemu_parser(subparsers: argparse._SubParsersAction) -> None:
    scenarios = ", ".join(s.name for s in SCENARIOS)
    p = subparsers.add_parser(
        "qemu", help="run one scenario on a kernel tree's real kernel under QEMU",
        description="Build the tree's own kernel with kbuild for a lab configuration "
                    "(cached), write the scenario's fault into a copy of its Image, boot "
                    "it under qemu-system-aarch64 with EL2, and judge the kernel's hyp "
                    "panic dump (docs/real-kernel.md). Exit 0 pass, 1 fail, 2 bad input.",
        epilog=f"Scenarios: {scenarios}.")
    p.set_defaults(handler=cmd_qemu)
    p.add_argument("--config", required=True,
                   help="the lab configuration the kernel's fragment is derived from "
                        "(a shipped name or a file); accepted and not used with a "
                        "debian: kernel, which has Debian's configuration")
    p.add_argument("--kernel-src", metavar="TREE|TARBALL|debian:NAME",
                   help=f"the kernel tree (its top directory, never written: kbuild builds "
                        f"with O=DIR) or a Debian linux-source-X.Y.tar.xz (unpacked once "
                        f"into the kernel cache); or one of Debian's own arm64 kernels as "
                        f"shipped, fetched once into the kernel cache: debian:6.1 (the "
                        f"newest of a series), debian:6.1.0-57 (an ABI), debian:trixie (a "
                        f"suite's newest), debian:6.12@trixie. Default: ${KERNEL_SRC_ENV}")
    p.add_argument("--scenario", required=True, help=f"one of: {scenarios}")
    p.add_argument("--mode", choices=MODES, default="nvhe",
                   help="kvm-arm.mode the kernel boots with (default nvhe)")
    p.add_argument("--cpu", type=int, default=0,
                   help="the CPU that faults (the machine boots CPUs 0..N; default 0)")
    p.add_argument("--kaslr-seed", type=int, default=0,
                   help="the device tree's kaslr-seed (0: boot with nokaslr)")
    p.add_argument("--timeout", type=float, default=DEFAULT_QEMU_TIMEOUT_S,
                   help=f"wall-clock budget of the boot in seconds (default "
                        f"{DEFAULT_QEMU_TIMEOUT_S:g})")
    p.add_argument("--differential", action="store_true",
                   help="for a scenario the lab has too (hyp_panic, bug, stack_overflow), "
                        "also run it on the lab's fast path with the tree's unwinder and "
                        "compare the two dumps' shape; a difference docs/real-kernel.md "
                        "does not explain fails the run")
    p.add_argument("--json", action="store_true", help="print one JSON record")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="the kernel cache: unpacked trees, kernel builds, device trees "
                        "(default: $PYHARNESS_KERNEL_CACHE, else ~/.cache/pyharness/kernels)")
