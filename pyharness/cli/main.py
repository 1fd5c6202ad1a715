"""The ``pyharness`` command line: a thin layer over the library.

Exit codes: 0 all passed, 1 a check failed, 2 bad input (README).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable, NoReturn

from pyharness.builder import cache as builder
from pyharness.builder.kernelsrc import default_kernel_src
from pyharness.cli.options import add_kernel_src_option
from pyharness.kconfig import resolve as kconfig
from pyharness.cli.clean import add_clean_parser
from pyharness.cli.decode import add_decode_parser
from pyharness.cli.report import add_report_parser
from pyharness.errors import EXIT_BAD_INPUT, EXIT_OK, BuildError, HarnessError
from pyharness.run.spec import DEFAULT_MAX_INSTRUCTIONS, DEFAULT_TIMEOUT_S, MODES
from pyharness.cli.matrix import add_matrix_parser
from pyharness.cli.mutate import add_mutate_parser
from pyharness.cli.qemu import add_qemu_parser
from pyharness.cli.record_output import print_record
from pyharness.run.runner import RunRequest, run_one
from pyharness.run.scenarios import list_scenarios
from pyharness.terminal import visible

Handler = Callable[[argparse.Namespace], int]


def cmd_configs(args: argparse.Namespace) -> int:
    """List the shipped configurations with a one-line summary each."""
    paths = kconfig.named_configs()
    width = max((len(kconfig.config_name(p)) for p in paths), default=0)
    for path in paths:
        resolved = kconfig.resolve(path)
        print(visible(f"{resolved.name:<{width}}  {resolved.summary.one_line()}"))
    return EXIT_OK


def cmd_build(args: argparse.Namespace) -> int:
    if args.all == (args.config is not None):
        raise HarnessError("build needs exactly one of --config FILE or --all")
    configs = kconfig.named_configs() if args.all else [args.config]
    kernel_src = args.kernel_src or default_kernel_src()
    for config in configs:
        result = builder.build(config, out_dir=args.out, jobs=args.jobs, kernel_src=kernel_src)
        if result.cached:
            note = "cached, no compiler work"
        elif result.rebuilt_because:
            note = f"rebuilt in {result.seconds:.1f} s: {result.rebuilt_because}"
        else:
            note = f"built in {result.seconds:.1f} s"
        name = result.config.name
        if result.kernel is not None:
            kernel = result.kernel
            name += (f" with the {kernel.unwinder} unwinder of {kernel.given} "
                     f"({kernel.tree.version}; {kernel.provenance.describe()})")
        print(visible(f"{name}: {note}"), file=sys.stderr)
        if result.kernel is not None:
            print(visible(f"compile_commands.json: {result.compile_commands}"), file=sys.stderr)
        print(visible(result.elf))
    return EXIT_OK


def cmd_scenarios(args: argparse.Namespace) -> int:
    """List the scenarios of a configuration's image (default: nvhe)."""
    elf = builder.build(args.config).elf
    known = list_scenarios(elf)
    width = max(len(s.name) for s in known)
    for scenario in known:
        print(visible(f"{scenario.name:<{width}}  {scenario.description}"))
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    record = run_one(RunRequest(config=args.config, scenario=args.scenario, mode=args.mode,
                                cpu=args.cpu, kaslr_seed=args.kaslr_seed,
                                max_instructions=args.max_instructions,
                                timeout_s=args.timeout, out_dir=args.out,
                                kernel_src=args.kernel_src or default_kernel_src()))
    return print_record(record, args.json,
                        f"{record.instructions} instructions, {record.elapsed_ms:.1f} ms")


def cmd_menuconfig(args: argparse.Namespace) -> int:
    from pyharness.kconfig.menuconfig import run_menuconfig

    target = Path(args.config)
    saved = run_menuconfig(target)
    for path in saved:
        print(visible(f"saved {path}"), file=sys.stderr)
    if not saved:
        print(visible(f"{target}: no change"), file=sys.stderr)
    return EXIT_OK


def _add(sub: argparse._SubParsersAction, name: str, handler: Handler,
         help_text: str, description: str | None = None) -> argparse.ArgumentParser:
    parser = sub.add_parser(name, help=help_text, description=description or help_text)
    parser.set_defaults(handler=handler)
    return parser


class _Parser(argparse.ArgumentParser):
    """argparse's parser, whose error line (which quotes what it did not
    understand) goes through terminal.visible like every other."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_BAD_INPUT, visible(f"{self.prog}: error: {message}") + "\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="pyharness",
        description="Build the nVHE stack-unwinder lab firmware per Kconfig "
                    "configuration and test it on an emulated arm64 platform.",
        epilog="Exit codes: 0 all passed, 1 a check failed, 2 bad input.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    _add(sub, "configs", cmd_configs, "list the shipped configurations")

    p = _add(sub, "build", cmd_build, "build the firmware for a configuration",
             "Build vmlinux for a configuration (cached) and print its path.")
    p.add_argument("--config",
                   help="a Kconfig fragment or .config, or a shipped config name")
    p.add_argument("--all", action="store_true",
                   help="build every shipped configuration (configs/*_defconfig)")
    p.add_argument("--out", default=None,
                   help="base directory for build trees (default: build/)")
    p.add_argument("-j", "--jobs", type=int, default=None,
                   help="parallel compile jobs (default: number of CPUs)")
    add_kernel_src_option(p)

    p = _add(sub, "menuconfig", cmd_menuconfig, "edit a configuration in menuconfig",
             "Open kconfiglib's terminal menuconfig on a config file and save "
             "it (minimal form for *_defconfig files).")
    p.add_argument("--config", default=".config",
                   help="the file to edit (default: ./.config)")

    p = _add(sub, "run", cmd_run, "run one scenario and check the dump",
             "Build if needed, run one scenario on the emulated platform, print the "
             "console and check it against the oracle. Exit 0 pass, 1 fail, 2 bad input.")
    p.add_argument("--config", required=True,
                   help="a Kconfig fragment or .config, or a shipped config name")
    p.add_argument("--scenario", required=True, help="see `pyharness scenarios`")
    p.add_argument("--mode", choices=MODES, default="nvhe",
                   help="hypervisor mode at run time (kvm-arm.mode); default nvhe")
    p.add_argument("--cpu", type=int, default=0, help="the CPU that runs (default 0)")
    p.add_argument("--kaslr-seed", type=int, default=0,
                   help="seed of the KASLR offset (ignored without CONFIG_RANDOMIZE_BASE)")
    p.add_argument("--json", action="store_true", help="print one JSON record")
    p.add_argument("--max-instructions", type=int, default=DEFAULT_MAX_INSTRUCTIONS,
                   help=f"instruction budget (default {DEFAULT_MAX_INSTRUCTIONS})")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S,
                   help=f"wall-clock budget in seconds (default {DEFAULT_TIMEOUT_S:g})")
    p.add_argument("--out", default=None, help="base directory for build trees")
    add_kernel_src_option(p)

    p = _add(sub, "scenarios", cmd_scenarios, "list the scenarios")
    p.add_argument("--config", default="nvhe",
                   help="whose image to read them from (default: nvhe)")

    add_qemu_parser(sub)
    add_matrix_parser(sub)
    add_mutate_parser(sub)
    add_report_parser(sub)
    add_decode_parser(sub)
    add_clean_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except HarnessError as err:
        # A build's own failure carries the compiler's lines; bad input is one line.
        message = visible(err, multiline=isinstance(err, BuildError))
        print(f"pyharness: error: {message}", file=sys.stderr)
        return err.exit_code
    except BrokenPipeError:
        # The reader went away (`pyharness configs | head`): not an error.
        sys.stderr.close()
        return EXIT_OK
    except KeyboardInterrupt:
        print("pyharness: interrupted", file=sys.stderr)
        return 130
