"""The decoder on logs as people paste them: every wording the kernel has
printed for these traces, any quoting, wrapped lines, notes after frames,
CRLF, stamps, and files that are not text at all.

Each log in tests/data/pasted/ was written for these tests in the shape
such logs take (addresses and symbols of this project's firmware).
"""

from __future__ import annotations

import gzip
import subprocess
import sys
from pathlib import Path

import pytest

from pyharness.decode import decode_text
from pyharness.decode.logbytes import binary_reason
from pyharness.judge.tracelog import parse_log

PASTED = Path(__file__).resolve().parent / "data" / "pasted"


def traces(name: str):
    return decode_text((PASTED / name).read_text(encoding="utf-8", errors="replace"))


def frames(decoded) -> list[str]:
    return [f.frame.symbolic for f in decoded.frames]


def decode_cli(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "pyharness", "decode", *args],
                          capture_output=True, input=stdin, timeout=60,
                          stdin=None if stdin is not None else subprocess.DEVNULL)


# Wordings

def test_the_rfc_wording_with_either_footer_and_one_space_after_the_prefix():
    first, second = traces("rfc.log")
    assert first.trace.kind == second.trace.kind == "rfc"
    assert first.trace.footer and second.trace.footer              # "end of" and "End of"
    assert first.trace.footer_raw.endswith("---- end of nVHE HYP call trace ----")
    assert second.trace.footer_raw.endswith("---- End of nVHE HYP call trace ----")
    assert second.trace.header.endswith("nVHE HYP call trace (vmlinux addresses):")
    assert frames(first) == ["__kvm_nvhe_recursive_death+0x34/0x78"] * 2 + [
        "__kvm_nvhe_handle_trap+0x68/0x9c", "__kvm_nvhe___host_exit+0x68/0x68"]
    assert first.trace.panic.kind == "panic"
    assert first.panic_location.frame.address == 0xffff800008002210


def test_the_cfi_failure_panic_line_and_hyp_offset():
    (decoded,) = traces("cfi.log")
    panic = decoded.trace.panic
    assert panic.kind == "cfi" and panic.line_number == 1
    assert panic.location.symbolic == "__kvm_nvhe_handle___kvm_vcpu_run+0x44/0x90"
    assert decoded.trace.kind == "mainline" and decoded.trace.hyp_offset == 0xfffe8f0bf7c00000
    assert len(decoded.frames) == 3 and decoded.trace.strays == ()
    proc = decode_cli(str(PASTED / "cfi.log"))
    assert proc.returncode == 0
    assert b"nVHE hyp CFI failure at [<ffff800008002244>]" in proc.stdout


@pytest.mark.parametrize("line, kind", [
    ("kvm [1]: nVHE hyp panic at: [<ffff800008002210>] __kvm_nvhe_f+0x20/0x78!", "panic"),
    ("kvm [1]: nVHE hyp CFI failure at: [<ffff800008002210>] __kvm_nvhe_f+0x20/0x78!", "cfi"),
    ("kvm [1]: nVHE hyp BUG at: [<ffff800008002210>] __kvm_nvhe_f+0x20/0x78!", "bug-addr"),
])
def test_every_panic_line_kind_is_one_of_a_trace(line, kind):
    log = "\n".join([line, "kvm [1]: nVHE call trace:",
                     "kvm [1]:  [<ffff800008001068>] __kvm_nvhe___host_exit+0x68/0x68",
                     "kvm [1]: ---[ end nVHE call trace ]---"])
    (trace,) = parse_log(log).traces
    assert trace.panic.kind == kind and trace.footer


def test_v5_wordings_frames_without_a_symbol_and_deep_mixed_quoting():
    first, second = traces("deep_quotes.log")
    assert (first.trace.kind, first.trace.quote_depth) == ("non-protected", 3)
    assert (second.trace.kind, second.trace.quote_depth) == ("protected", 3)
    bare = first.frames[1].frame
    assert bare.symbol is None and bare.address == 0xffff80000800a000
    assert first.trace.footer and second.trace.footer


# What pasting does

def test_wrapped_lines_are_joined_back():
    (decoded,) = traces("wrapped.log")
    trace = decoded.trace
    assert trace.kind == "protected" and trace.footer and trace.strays == ()
    assert frames(decoded) == [
        "__kvm_nvhe_hyp_panic+0x1c/0x38",             # split at the space before the symbol
        "__kvm_nvhe_hyp_panic_bad_stack+0xc/0xc",     # inside the symbol
        "__kvm_nvhe_recursive_death+0x34/0x78",       # inside the offset
        "__kvm_nvhe_recursive_death+0x34/0x78",       # inside the size
        "__kvm_nvhe_handle_trap+0x68/0x9c",           # inside the address
        "__kvm_nvhe___host_exit+0x68/0x68"]           # not wrapped
    assert [f.frame.address for f in decoded.frames][4] == 0xffff8000080020cc
    assert [f.frame.line_number for f in decoded.frames] == [4, 6, 8, 10, 12, 14]
    assert trace.footer_line == 15                    # its continuation lost the quoting


def test_the_checker_joins_nothing():
    """A firmware that prints a frame over two lines must not pass."""
    log = "\n".join(["kvm [1]: nVHE call trace:", "kvm [1]:  [<ffff8000080024cc>]",
                     "kvm [1]: __kvm_nvhe_hyp_panic+0x1c/0x38",
                     "kvm [1]: ---[ end nVHE call trace ]---"])
    assert parse_log(log).traces[0].frames == ()
    assert len(parse_log(log, pasted=True).traces[0].frames) == 1


def test_notes_after_frames_are_kept_aside():
    (decoded,) = traces("annotated.log")
    notes = [f.frame.note for f in decoded.frames]
    assert notes == [None, "<-- loops here", "# should not be here",
                     "(no symbol: module text?)"]
    assert frames(decoded)[1] == "__kvm_nvhe_recursive_death+0x34/0x78"
    assert decoded.trace.footer and decoded.trace.strays == ()
    strict = parse_log((PASTED / "annotated.log").read_text()).traces[0]
    assert len(strict.frames) == 1                    # the checker: a note is not a frame


def test_crlf_printk_stamps_caller_ids_dmesg_t_and_log_levels():
    (decoded,) = traces("crlf_stamps.log")
    assert frames(decoded) == ["__kvm_nvhe_bug_depth2+0x14/0x20",
                               "__kvm_nvhe___host_exit+0x68/0x68"]
    assert decoded.trace.panic.kind == "bug-addr" and decoded.trace.footer
    lf = (PASTED / "crlf_stamps.log").read_text().replace("\r\n", "\n")
    assert [frames(t) for t in decode_text(lf)] == [frames(decoded)]
    mac = lf.replace("\n", "\r")                      # CR-only line ends
    assert [frames(t) for t in decode_text(mac)] == [frames(decoded)]


# Not text

@pytest.mark.parametrize("data, says", [
    (b"\x7fELF\x02\x01\x01" + bytes(200), "an ELF file"),
    # mtime=0: the header holds no timestamp, so every xdist worker
    # collects the same test id.
    (gzip.compress(b"kvm [1]: nVHE call trace:\n", mtime=0), "gzip-compressed"),
    (bytes(range(256)) * 8, "NUL byte at offset 0"),
    (bytes(range(1, 32)) * 40, "control bytes"),
    (bytes(range(0x80, 0x100)) * 40, "are not text"),
])
def test_binary_input_exits_2_with_one_clear_line(tmp_path, data, says):
    path = tmp_path / "log.bin"
    path.write_bytes(data)
    proc = decode_cli(str(path))
    assert proc.returncode == 2
    err = proc.stderr.decode()
    assert len(err.strip().splitlines()) == 1, err
    assert "is not a text log" in err and says in err and "Traceback" not in err
    piped = decode_cli("-", stdin=data)
    assert piped.returncode == 2 and b"<stdin> is not a text log" in piped.stderr


def test_text_with_a_few_odd_bytes_or_a_bom_is_still_text():
    log = (PASTED / "cfi.log").read_bytes()
    assert binary_reason(log.replace(b"Kernel", b"K\xe9rnel")) is None   # Latin-1 byte
    assert binary_reason(b"\x1b[31mred\x1b[0m\n" + log) is None            # colours
    utf16 = log.decode().encode("utf-16")
    assert binary_reason(utf16) is None
    proc = decode_cli("-", stdin=utf16)
    assert proc.returncode == 0 and b"Trace 1 of 1" in proc.stdout
