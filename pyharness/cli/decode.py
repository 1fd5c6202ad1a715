"""``pyharness decode``: every nVHE hyp call trace in a kernel log, frame by frame.

Exit codes: 0 decoded (and, with ``--elf``, every frame agrees), 1 no trace
found or a frame disagrees with the ELF, 2 bad input (unreadable log or ELF).
The work is :mod:`pyharness.decode`; this is the command line around it.
"""

from __future__ import annotations

import argparse
import io
import itertools
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Iterator

from pyharness.decode.decoder import decode_parsed, untraced_panics
from pyharness.decode.jsonio import format_json
from pyharness.decode.logbytes import SNIFF_BYTES, log_text
from pyharness.decode.mail import MailText, mail_kind
from pyharness.decode.text import format_text
from pyharness.elf.symbolizer import ElfSymbolizer
from pyharness.errors import EXIT_CHECK_FAILED, EXIT_OK, HarnessError
from pyharness.judge.logprefix import noting_drops
from pyharness.judge.logrecords import ParsedLog
from pyharness.judge.tracelog import parse_log
from pyharness.terminal import visible


# Kernel log lines are at most 1 KiB (printk); the rest of a longer line is
# skipped as it is read, so one huge line cannot take the memory.
MAX_LINE_BYTES = 64 * 1024


@dataclass
class LogSource:
    """A log being read: its lines (as the parser asks), its name, and the
    forms of the whole file (an mbox, quoted-printable: known once read)."""

    lines: Iterator[str]
    name: str
    forms: list[str] = field(default_factory=list)


@contextmanager
def open_log(source: str | None) -> Iterator[LogSource]:
    """The log at ``source``, read line by line as the parser asks (memory
    does not grow with the log; a mail, one message at a time); ``-`` or
    None is stdin."""
    if source is None or source == "-":
        stdin = sys.stdin
        if stdin is None or (source is None and stdin.isatty()):
            raise HarnessError("no log to decode: give a log file, or `-` and pipe "
                               "the log into stdin")
        log = LogSource(iter(()), "<stdin>")
        log.lines = _lines(stdin.buffer, log)
        yield log
        return
    path = Path(source)
    try:
        stream = open(path, "rb")
    except FileNotFoundError:
        raise HarnessError(f"{path}: no such file; give the kernel log to decode "
                           "(or `-` to read stdin)") from None
    except IsADirectoryError:
        raise HarnessError(f"{path}: is a directory; give the kernel log file to "
                           "decode") from None
    except OSError as err:
        raise HarnessError(f"{path}: cannot read the log ({err.strerror})") from None
    with stream:
        log = LogSource(iter(()), str(path))
        log.lines = _lines(stream, log)
        yield log


def _lines(stream: BinaryIO, log: LogSource) -> Iterator[str]:
    """Each line of ``stream`` without its line end, decoded as UTF-8 with
    replacement characters. The first 64 KiB decide whether it is text at
    all (decode/logbytes.py) and whether it is mail (decode/mail.py); a
    UTF-16 log is decoded whole."""
    name = log.name
    try:
        head = stream.read(SNIFF_BYTES)
        first = log_text(head, name)             # one clear message for a binary file
        kind = mail_kind(head)
        if kind is not None:
            mail = MailText(kind, itertools.chain(io.BytesIO(head).readlines(), stream))
            log.forms = mail.forms
            yield from mail.lines()
            return
        if head.startswith((b"\xff\xfe", b"\xfe\xff")):
            text = log_text(head + stream.read(), name)
            yield from text.split("\n" if "\n" in text else "\r")
            return
        if b"\n" not in head and b"\r" in head:   # an old Mac's line ends
            yield from (first + stream.read().decode("utf-8", "replace")).split("\r")
            return
        pending = head
        while True:
            end = pending.find(b"\n")
            if end >= 0:
                yield pending[:end].decode("utf-8", errors="replace")
                pending = pending[end + 1:]
                continue
            more = stream.readline(MAX_LINE_BYTES)
            if not more:
                if pending:
                    yield pending.decode("utf-8", errors="replace")
                return
            pending += more
            if len(pending) >= MAX_LINE_BYTES and not pending.endswith(b"\n"):
                yield pending[:MAX_LINE_BYTES].decode("utf-8", errors="replace")
                while (rest := stream.readline(MAX_LINE_BYTES)) and not rest.endswith(b"\n"):
                    pass
                pending = b""
    except OSError as err:
        raise HarnessError(f"{name}: cannot read the log ({err.strerror})") from None


def _explain_nothing_found(parsed: ParsedLog, name: str) -> str:
    message = f"no nVHE hyp call trace found in {name}"
    cannot = [p.cannot_dump for p in parsed if p.cannot_dump is not None]
    panics = [p.panic for p in parsed if p.panic is not None]
    if cannot:
        message += (f"; line {cannot[0].line_number} says the kernel could not dump it "
                    f"({cannot[0].reason})")
    elif panics:
        message += f"; there is a hyp panic line at line {panics[0].line_number} but no trace"
    return message


def run_decode(args: argparse.Namespace) -> int:
    """The ``decode`` subcommand: 0 decoded, 1 nothing found or a mismatch, 2 bad input."""
    with open_log(args.log) as log:   # a missing log is reported first
        name = log.name
        symbolizer = ElfSymbolizer(args.elf) if args.elf is not None else None
        try:
            drops: list[tuple[int, int]] = []
            parsed = parse_log(noting_drops(log.lines, drops), pasted=True)
            traces = decode_parsed(parsed, symbolizer, tuple(log.forms), drops)
            if symbolizer is not None and not symbolizer.has_line_info:
                print(visible(f"pyharness decode: {args.elf} has no DWARF line table; "
                              "file:line left out (build with -g)"), file=sys.stderr)
        finally:
            if symbolizer is not None:
                symbolizer.close()
    if args.json:
        sys.stdout.write(format_json(traces, source=name, elf_path=args.elf,
                                     untraced=untraced_panics(parsed)))
    elif traces:
        sys.stdout.write(visible(format_text(traces, elf_path=args.elf,
                                             untraced=untraced_panics(parsed)),
                                 multiline=True))
    if not traces:
        print(visible(f"pyharness decode: {_explain_nothing_found(parsed, name)}"),
              file=sys.stderr)
        return EXIT_CHECK_FAILED
    if any(t.mismatches for t in traces):
        return EXIT_CHECK_FAILED
    return EXIT_OK


def configure_decode_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--elf", type=Path, default=None, metavar="VMLINUX",
                        help="re-symbolize every address from this ELF (symbols and "
                             "DWARF file:line) and flag printed locations that disagree")
    parser.add_argument("--json", action="store_true",
                        help="print JSON (one object per trace) instead of text")
    parser.add_argument("log", nargs="?", default=None, metavar="LOG",
                        help="the kernel log, console capture or mail thread; "
                             "`-` (or nothing, with a pipe) reads stdin")
    parser.set_defaults(handler=run_decode)


_DECODE_HELP = "decode the nVHE hyp call traces of a kernel log"
_DECODE_DESCRIPTION = (
    "Find every nVHE hyp call trace in a kernel log (the RFC's `nVHE HYP call trace:`, "
    "v5 `Protected/Non-protected nVHE HYP call trace:` and mainline `nVHE call trace:` "
    "wordings; panic, BUG and CFI-failure lines; timestamps, caller ids, mail quoting "
    "of any depth, lines a mailer wrapped, notes after frames, CRLF) and print each "
    "frame by frame. With --elf, check every printed symbol+offset/size against the "
    "ELF and give file:line. A file that is not text is refused (exit 2).")
_DECODE_EPILOG = ("Exit codes: 0 traces decoded (and with --elf all agree), 1 no trace "
                  "found or a printed location disagrees with the ELF, 2 bad input.")


def add_decode_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``decode`` on the ``pyharness`` command line."""
    parser = subparsers.add_parser("decode", help=_DECODE_HELP,
                                   description=_DECODE_DESCRIPTION, epilog=_DECODE_EPILOG)
    configure_decode_parser(parser)
