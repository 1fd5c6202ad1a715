"""pyharness decode: traces out of logs, and checked against a real AArch64 ELF.

The ELF tests build a tiny firmware-like image with the cross compiler and
take their expectations from binutils (nm, objdump, addr2line), never from
the decoder's own reading of the ELF.
"""

from __future__ import annotations

import argparse
import json
import os
import pty
import re
import shutil
import struct
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from pyharness.cli.decode import add_decode_parser
from pyharness.decode import decode_text, format_json, format_text, traces_from_json
from pyharness.errors import HarnessError
from pyharness.builder.toolchain import cross_prefix

DATA = Path(__file__).resolve().parent / "data"
REPO = Path(__file__).resolve().parents[1]


def run_decode(argv: list[str], capsys) -> tuple[int, str, str]:
    """``pyharness decode ARGV`` in process, through ``add_decode_parser``."""
    parser = argparse.ArgumentParser(prog="pyharness")
    add_decode_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["decode", *argv])
    try:
        code = args.handler(args)
    except HarnessError as err:
        print(f"pyharness: error: {err}", file=sys.stderr)
        code = err.exit_code
    out = capsys.readouterr()
    return code, out.out, out.err


def decode_process(*argv: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m pyharness.decode ARGV`` as a user runs it."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p))
    return subprocess.run([sys.executable, "-m", "pyharness.decode", *argv],
                          capture_output=True, text=True, input=stdin, env=env,
                          timeout=60, stdin=None if stdin is not None else subprocess.DEVNULL)


def assert_one_clean_error(proc: subprocess.CompletedProcess[str], code: int, *words: str):
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    for word in words:
        assert word in proc.stderr


# -- without an ELF


def test_seed_decodes_into_three_traces_two_of_them_quoted_copies(seed_path):
    traces = decode_text(seed_path.read_text())
    assert [t.number for t in traces] == [1, 2, 3]
    assert [t.trace.line_number for t in traces] == [2, 18, 34]
    assert [t.duplicate_of for t in traces] == [None, 1, 1]
    for decoded in traces:
        assert decoded.address_mode == "as printed" and decoded.mismatches == ()
        assert [f.index for f in decoded.frames] == list(range(10))
        assert decoded.frames[0].frame.symbolic == "__kvm_nvhe_hyp_panic+0xac/0xf8"
        assert decoded.frames[-1].frame.symbolic == "__kvm_nvhe___host_exit+0x64/0x64"
        assert decoded.panic_location.frame.address == 0xffff8000090a51d0


def test_seed_text_output_names_lines_elision_and_copies(seed_path, capsys):
    code, out, err = run_decode([str(seed_path)], capsys)
    assert code == 0 and err == ""
    assert "Trace 1 of 3, line 2: Protected nVHE HYP call trace" in out
    assert "Trace 3 of 3, line 34, quoted (depth 2)" in out
    assert out.count("same frames as trace 1") == 2
    assert re.search(r"line 7\s+\. \. \.\s+\(frames left out in the log\)", out)
    assert re.search(r"#0\s+line 3\s+\[<ffff8000090a5570>\] __kvm_nvhe_hyp_panic\+0xac/0xf8", out)
    assert re.search(r"#9\s+line 14\s+\[<ffff8000090a6864>\] __kvm_nvhe___host_exit\+0x64/0x64",
                     out)
    assert out.rstrip().endswith("3 traces (2 repeats of an earlier one).")


def test_mainline_sample_text_output(capsys):
    code, out, _ = run_decode([str(DATA / "mainline_hyp_offset.log")], capsys)
    assert code == 0
    assert "Trace 1 of 1, line 3: nVHE call trace (4 frames, footer at line 8)" in out
    assert "Hyp Offset: 0xfffece8013600000" in out
    assert "nVHE hyp BUG at [<ffff800008b4d2cc>] __kvm_nvhe_handle___pkvm_host_share_hyp" in out
    assert "[<ffff800008b51234>] 0xffff800008b51234" in out


def test_quoting_prefixes_in_a_mail_reply(capsys):
    traces = decode_text((DATA / "quoted_reply.log").read_text())
    assert [(t.trace.kind, t.trace.quote_depth) for t in traces] == [
        ("mainline", 1), ("non-protected", 2), ("protected", 1), ("mainline", 2),
        ("protected", 2)]
    code, out, _ = run_decode([str(DATA / "quoted_reply.log")], capsys)
    assert code == 0 and "5 traces." in out


def test_truncated_trace_is_reported_without_footer(capsys):
    code, out, _ = run_decode([str(DATA / "truncated.log")], capsys)
    assert code == 0
    assert "(3 frames, no footer: cut off after line 6)" in out
    assert "(1 frame, no footer: cut off after line 13)" in out
    assert re.search(r"line 4\s+unrecognised line inside the trace: .*usb 1-1", out)


def test_no_trace_exits_1_and_says_so_on_stderr(capsys):
    code, out, err = run_decode([str(DATA / "no_trace.log")], capsys)
    assert code == 1 and out == ""
    assert "no nVHE hyp call trace found in" in err and "no_trace.log" in err


def test_no_trace_with_json_still_prints_valid_json(capsys):
    code, out, err = run_decode(["--json", str(DATA / "no_trace.log")], capsys)
    assert code == 1 and json.loads(out)["traces"] == []
    assert "no nVHE hyp call trace" in err


def test_cannot_dump_line_is_explained(capsys):
    code, out, err = run_decode([str(DATA / "cannot_dump.log")], capsys)
    assert code == 1 and out == ""
    assert "could not dump it (!CONFIG_PROTECTED_NVHE_STACKTRACE)" in err


def test_json_round_trip(seed_path):
    for text in (seed_path.read_text(), (DATA / "quoted_reply.log").read_text(),
                 (DATA / "truncated.log").read_text(),
                 (DATA / "mainline_hyp_offset.log").read_text()):
        traces = decode_text(text)
        document = format_json(traces, source="x.log")
        assert traces_from_json(document) == traces
        assert traces_from_json(json.loads(document)) == traces


def test_json_shape(seed_path, capsys):
    code, out, _ = run_decode(["--json", str(seed_path)], capsys)
    assert code == 0
    document = json.loads(out)
    assert document["source"] == str(seed_path) and document["elf"] is None
    first = document["traces"][0]
    assert (first["line"], first["kind"], first["footer"], first["footer_line"]) == \
        (2, "protected", True, 15)
    frame = first["frames"][0]
    assert frame["address"] == "0xffff8000090a5570"
    assert (frame["symbol"], frame["offset"], frame["size"]) == ("__kvm_nvhe_hyp_panic", 0xac, 0xf8)
    assert frame["printed"] == "__kvm_nvhe_hyp_panic+0xac/0xf8" and frame["line"] == 3
    assert first["elisions"] == [{"line": 7, "raw": "   . . .", "after_frames": 4}]
    assert first["panic"]["kind"] == "panic"
    assert first["panic"]["location"]["address"] == "0xffff8000090a51d0"
    assert [t["duplicate_of"] for t in document["traces"]] == [None, 1, 1]


# -- input handling, as a user runs it


def test_stdin_dash(seed_path):
    proc = decode_process("-", stdin=seed_path.read_text())
    assert proc.returncode == 0, proc.stderr
    assert "Trace 2 of 3, line 18" in proc.stdout


def test_missing_log_exits_2_with_one_line(tmp_path):
    assert_one_clean_error(decode_process(str(tmp_path / "nope.log")), 2, "nope.log",
                           "no such file")


def test_directory_as_log_exits_2(tmp_path):
    assert_one_clean_error(decode_process(str(tmp_path)), 2, "is a directory")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_log_exits_2(tmp_path):
    log = tmp_path / "secret.log"
    log.write_text("x")
    log.chmod(0)
    assert_one_clean_error(decode_process(str(log)), 2, "secret.log", "cannot read")


def test_no_log_argument_reads_a_piped_stdin(seed_path):
    proc = decode_process(stdin=seed_path.read_text())
    assert proc.returncode == 0 and "Trace 1 of 3" in proc.stdout
    proc = decode_process()        # stdin is /dev/null: an empty log
    assert proc.returncode == 1 and "no nVHE hyp call trace found in <stdin>" in proc.stderr


def test_no_log_and_a_terminal_on_stdin_exits_2_instead_of_waiting():
    controller, terminal = pty.openpty()
    try:
        env = dict(os.environ, PYTHONPATH=str(REPO))
        proc = subprocess.run([sys.executable, "-m", "pyharness.decode"], stdin=terminal,
                              capture_output=True, text=True, env=env, timeout=60)
    finally:
        os.close(terminal)
        os.close(controller)
    assert_one_clean_error(proc, 2, "no log to decode")


def test_binary_garbage_is_refused_in_one_line(tmp_path):
    junk = tmp_path / "junk.bin"
    junk.write_bytes(bytes(range(256)) * 64)
    proc = decode_process(str(junk))
    assert_one_clean_error(proc, 2, "is not a text log", "NUL byte at offset 0")


def test_registered_in_the_pyharness_cli(seed_path):
    from pyharness.cli import main as cli

    parser = cli.build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    if "decode" not in commands.choices:
        pytest.skip("cli.py does not register `decode` yet (add_decode_parser)")
    proc = subprocess.run([sys.executable, "-m", "pyharness", "decode", str(seed_path)],
                          capture_output=True, text=True, timeout=60, cwd=REPO,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 0 and "Trace 3 of 3" in proc.stdout


# -- with --elf: a real AArch64 ELF built here

FIXTURE_C = r"""
#define noinline __attribute__((noinline))

volatile int sink;

noinline __attribute__((noreturn)) void __kvm_nvhe_hyp_panic(void)
{
	for (;;)
		sink++;
}

noinline void __kvm_nvhe_hyp_panic_bad_stack(void)
{
	__kvm_nvhe_hyp_panic();
}

noinline int __kvm_nvhe_leaf(int x)
{
	if (x > 100)
		__kvm_nvhe_hyp_panic_bad_stack();
	sink = x;
	return x + 1;
}

noinline int __kvm_nvhe_middle(int x)
{
	int y = __kvm_nvhe_leaf(x + 1);

	return y * 3;
}

noinline int __kvm_nvhe_foo(int x)
{
	int y = __kvm_nvhe_middle(x * 2);

	return y + sink;
}

void _start(void)
{
	__kvm_nvhe_foo(1);
	for (;;)
		;
}
"""

LINK_ADDRESS = 0xffff800008000000
CALL_CHAIN = [   # (caller, callee): the return addresses of a trace, innermost first
    ("__kvm_nvhe_hyp_panic_bad_stack", "__kvm_nvhe_hyp_panic"),
    ("__kvm_nvhe_leaf", "__kvm_nvhe_hyp_panic_bad_stack"),
    ("__kvm_nvhe_middle", "__kvm_nvhe_leaf"),
    ("__kvm_nvhe_foo", "__kvm_nvhe_middle"),
    ("_start", "__kvm_nvhe_foo"),
]


@dataclass(frozen=True)
class FixtureElf:
    path: Path
    symbols: dict[str, tuple[int, int]]     # name -> (address, size), from nm
    returns: list[int]                      # return addresses along CALL_CHAIN, from objdump
    tool_prefix: str

    def pb(self, address: int) -> str:
        """The %pB form of ``address`` by nm's symbols."""
        for name, (start, size) in self.symbols.items():
            if start <= address - 1 < start + size:
                return f"{name}+{address - start:#x}/{size:#x}"
        raise AssertionError(f"{address:#x} in no function")

    def addr2line(self, addresses: list[int]) -> list[str]:
        out = subprocess.run([self.tool_prefix + "addr2line", "-e", str(self.path),
                              *[f"{a:#x}" for a in addresses]],
                             capture_output=True, text=True, check=True).stdout
        return [line.split(" (discriminator")[0] for line in out.splitlines()]


@pytest.fixture(scope="module")
def fixture_elf(tmp_path_factory) -> FixtureElf:
    prefix = cross_prefix()
    gcc = shutil.which(prefix + "gcc")
    if gcc is None or shutil.which(prefix + "nm") is None:
        pytest.skip(f"no aarch64 cross toolchain ({prefix}gcc); install gcc-aarch64-linux-gnu")
    workdir = tmp_path_factory.mktemp("elf")
    source = workdir / "hyp.c"
    source.write_text(FIXTURE_C)
    elf = workdir / "vmlinux"
    subprocess.run([gcc, "-g", "-O1", "-fno-omit-frame-pointer", "-falign-functions=16",
                    "-ffreestanding", "-fno-pie", "-no-pie", "-static", "-nostdlib",
                    f"-Wl,-Ttext={LINK_ADDRESS:#x}", "-Wl,--build-id=none",
                    "-o", str(elf), str(source)], check=True, cwd=workdir)
    nm = subprocess.run([prefix + "nm", "-S", str(elf)], capture_output=True, text=True,
                        check=True).stdout
    symbols = {}
    for line in nm.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[2] in "Tt":
            symbols[parts[3]] = (int(parts[0], 16), int(parts[1], 16))
    disassembly = subprocess.run([prefix + "objdump", "-d", str(elf)], capture_output=True,
                                 text=True, check=True).stdout
    calls: dict[tuple[str, str], int] = {}
    function = ""
    for line in disassembly.splitlines():
        if header := re.match(r"[0-9a-f]+ <(\S+)>:", line):
            function = header[1]
        elif call := re.match(r"\s*([0-9a-f]+):\s+[0-9a-f]{8}\s+bl\s+[0-9a-f]+ <([^>+]+)>", line):
            calls[(function, call[2])] = int(call[1], 16) + 4
    return FixtureElf(path=elf, symbols=symbols, returns=[calls[pair] for pair in CALL_CHAIN],
                      tool_prefix=prefix)


def mainline_log(frames: list[tuple[int, str]], panic: tuple[int, str] | None = None,
                 hyp_offset: int | None = None) -> str:
    lines = []
    if panic is not None:
        lines.append(f"[  1.000000] kvm [9]: nVHE hyp panic at: [<{panic[0]:016x}>] {panic[1]}!")
    lines.append("[  1.000001] kvm [9]: nVHE call trace:")
    lines += [f"[  1.000002] kvm [9]:  [<{a:016x}>] {s}" for a, s in frames]
    lines.append("[  1.000003] kvm [9]: ---[ end nVHE call trace ]---")
    if hyp_offset is not None:
        lines.append(f"[  1.000004] kvm [9]: Hyp Offset: {hyp_offset:#x}")
    return "\n".join(lines) + "\n"


WRONG_FRAME = 3    # the frame in __kvm_nvhe_foo: printed with a wrong symbol


def correct_frames(elf: FixtureElf, slide: int = 0) -> list[tuple[int, str]]:
    return [(a + slide, elf.pb(a)) for a in elf.returns]


def frames_with_one_wrong(elf: FixtureElf, slide: int = 0) -> list[tuple[int, str]]:
    frames = correct_frames(elf, slide)
    address, printed = frames[WRONG_FRAME]
    frames[WRONG_FRAME] = (address, printed.replace("__kvm_nvhe_foo", "__kvm_nvhe_bogus"))
    return frames


def test_fixture_has_the_noreturn_boundary_case(fixture_elf):
    # The call to the noreturn hyp_panic is bad_stack's last instruction: the
    # return address is one past its end and belongs, by address, to the next
    # function. The %pB rule must still print bad_stack+size/size.
    ret = fixture_elf.returns[0]
    start, size = fixture_elf.symbols["__kvm_nvhe_hyp_panic_bad_stack"]
    assert ret == start + size
    assert fixture_elf.pb(ret) == f"__kvm_nvhe_hyp_panic_bad_stack+{size:#x}/{size:#x}"


def test_elf_resymbolizes_every_frame_and_flags_the_wrong_one(fixture_elf):
    elf = fixture_elf
    panic_address = elf.symbols["__kvm_nvhe_hyp_panic"][0] + 8
    log = mainline_log(frames_with_one_wrong(elf), panic=(panic_address, elf.pb(panic_address)))
    (decoded,) = decode_text(log, elf.path)
    assert decoded.address_mode == "link-time" and decoded.slide == 0
    expected_lines = elf.addr2line([a - 1 for a in elf.returns])
    for frame, ret, pb, where in zip(decoded.frames, elf.returns,
                                     [elf.pb(a) for a in elf.returns], expected_lines):
        assert frame.lookup_address == ret
        assert frame.elf.printed == pb
        assert f"{frame.elf.file}:{frame.elf.line}" == where
    flagged = [f.index for f in decoded.frames if f.mismatch]
    assert flagged == [WRONG_FRAME]
    mismatch = decoded.frames[WRONG_FRAME].mismatch
    good = elf.pb(elf.returns[WRONG_FRAME])
    wrong = good.replace("__kvm_nvhe_foo", "__kvm_nvhe_bogus")
    assert mismatch == f"printed {wrong}, ELF has {good}"
    # The panic line's address is the faulting instruction itself.
    assert decoded.panic_location.elf.printed == elf.pb(panic_address)
    assert decoded.panic_location.mismatch is None
    assert [f"{decoded.panic_location.elf.file}:{decoded.panic_location.elf.line}"] == \
        elf.addr2line([panic_address])


def test_elf_flags_wrong_offsets_and_sizes_too(fixture_elf):
    elf = fixture_elf
    frames = correct_frames(elf)
    address, printed = frames[2]
    name, rest = printed.split("+")
    offset, size = (int(x, 16) for x in rest.split("/"))
    frames[2] = (address, f"{name}+{offset + 4:#x}/{size:#x}")
    frames[4] = (frames[4][0], frames[4][1].rsplit("/", 1)[0] + "/0x1000")
    (decoded,) = decode_text(mainline_log(frames), elf.path)
    assert [f.index for f in decoded.frames if f.mismatch] == [2, 4]


def test_kallsyms_size_up_to_the_next_symbol_is_accepted(fixture_elf):
    # -falign-functions=16 pads between functions; kallsyms counts the padding.
    elf = fixture_elf
    ret = elf.returns[2]                                  # in __kvm_nvhe_middle
    start, size = elf.symbols["__kvm_nvhe_middle"]
    following = min(a for a, _ in elf.symbols.values() if a > start)
    assert following - start > size, "the fixture should have padding after middle"
    log = mainline_log([(ret, f"__kvm_nvhe_middle+{ret - start:#x}/{following - start:#x}")])
    (decoded,) = decode_text(log, elf.path)
    assert decoded.frames[0].mismatch is None


def test_elf_cli_text_output_exit_1_on_mismatch(fixture_elf, tmp_path, capsys):
    log = tmp_path / "panic.log"
    log.write_text(mainline_log(frames_with_one_wrong(fixture_elf)))
    code, out, _ = run_decode(["--elf", str(fixture_elf.path), str(log)], capsys)
    assert code == 1
    lines = out.splitlines()
    flagged = [line for line in lines if "MISMATCH" in line]
    assert len(flagged) == 1 and "__kvm_nvhe_bogus" in flagged[0]
    assert "ELF has __kvm_nvhe_foo+" in flagged[0]
    assert "1 printed location disagrees with vmlinux" in out
    source = fixture_elf.addr2line([fixture_elf.returns[0] - 1])[0]
    assert any(f"at {source}" in line for line in lines)


def test_elf_cli_exit_0_when_everything_agrees(fixture_elf, tmp_path, capsys):
    log = tmp_path / "panic.log"
    log.write_text(mainline_log(correct_frames(fixture_elf)))
    code, out, _ = run_decode(["--elf", str(fixture_elf.path), str(log)], capsys)
    assert code == 0 and "MISMATCH" not in out
    assert "every printed location agrees with vmlinux" in out


def test_relocated_addresses_are_shifted_back(fixture_elf):
    slide = 0x2a00000
    log = mainline_log(frames_with_one_wrong(fixture_elf, slide))
    (decoded,) = decode_text(log, fixture_elf.path)
    assert decoded.address_mode == "relocated" and decoded.slide == slide
    assert [f.lookup_address for f in decoded.frames] == fixture_elf.returns
    assert [f.index for f in decoded.frames if f.mismatch] == [WRONG_FRAME]


def test_hyp_offset_means_link_time_addresses(fixture_elf):
    log = mainline_log(correct_frames(fixture_elf), hyp_offset=0xfffece8013600000)
    (decoded,) = decode_text(log, fixture_elf.path)
    assert decoded.address_mode == "link-time" and decoded.slide == 0
    assert "Hyp Offset 0xfffece8013600000" in decoded.notes[0]
    assert decoded.mismatches == ()


def test_a_log_from_another_kernel_is_unmatched(fixture_elf, seed_path):
    traces = decode_text(seed_path.read_text(), fixture_elf.path)
    assert {t.address_mode for t in traces} == {"unmatched"}
    for frame in traces[0].frames:
        assert frame.elf is None and "the ELF has no function at" in frame.mismatch


def test_elf_json_round_trip(fixture_elf, tmp_path, capsys):
    log = tmp_path / "panic.log"
    log.write_text(mainline_log(frames_with_one_wrong(fixture_elf, 0x200000)))
    traces = decode_text(log.read_text(), fixture_elf.path)
    assert traces_from_json(format_json(traces, elf_path=fixture_elf.path)) == traces
    code, out, _ = run_decode(["--json", "--elf", str(fixture_elf.path), str(log)], capsys)
    assert code == 1
    document = json.loads(out)
    assert document["elf"] == str(fixture_elf.path)
    frame = document["traces"][0]["frames"][WRONG_FRAME]
    assert frame["symbol"] == "__kvm_nvhe_bogus" and frame["elf"]["function"] == "__kvm_nvhe_foo"
    assert frame["lookup_address"] == f"{fixture_elf.returns[WRONG_FRAME]:#x}"
    assert traces_from_json(out) == traces
    assert format_text(traces_from_json(out), elf_path=fixture_elf.path) == \
        format_text(traces, elf_path=fixture_elf.path)


# -- bad ELFs: one line, exit 2


def test_missing_elf_exits_2(tmp_path):
    assert_one_clean_error(decode_process("--elf", str(tmp_path / "vmlinux"),
                                          str(DATA / "firmware_console.log")),
                           2, "no such ELF file")


def test_corrupt_elf_exits_2(tmp_path):
    garbage = tmp_path / "garbage"
    garbage.write_bytes(b"\x7fELF\x02\x01\x01" + b"\xff" * 200)
    assert_one_clean_error(decode_process("--elf", str(garbage),
                                          str(DATA / "firmware_console.log")),
                           2, "garbage")


@pytest.mark.parametrize("keep", [100, 2000])
def test_truncated_elf_exits_2(fixture_elf, tmp_path, keep):
    truncated = tmp_path / "vmlinux"
    truncated.write_bytes(fixture_elf.path.read_bytes()[:keep])
    assert_one_clean_error(decode_process("--elf", str(truncated),
                                          str(DATA / "firmware_console.log")),
                           2, "not a readable ELF")


def test_text_file_as_elf_exits_2():
    assert_one_clean_error(decode_process("--elf", str(DATA / "no_trace.log"),
                                          str(DATA / "firmware_console.log")),
                           2, "not a readable ELF")


def test_foreign_elf_exits_2(tmp_path):
    # A bare ELF64 header for x86-64 (EM_X86_64 = 62), no sections.
    ident = b"\x7fELF\x02\x01\x01" + b"\0" * 9
    header = ident + struct.pack("<HHIQQQIHHHHHH", 2, 62, 1, 0, 0, 0, 0, 64, 0, 0, 64, 0, 0)
    foreign = tmp_path / "vmlinux"
    foreign.write_bytes(header)
    assert_one_clean_error(decode_process("--elf", str(foreign),
                                          str(DATA / "firmware_console.log")),
                           2, "EM_X86_64", "not AArch64")


def test_stripped_elf_exits_2(fixture_elf, tmp_path):
    stripped = tmp_path / "vmlinux"
    subprocess.run([fixture_elf.tool_prefix + "strip", "-o", str(stripped),
                    str(fixture_elf.path)], check=True)
    assert_one_clean_error(decode_process("--elf", str(stripped),
                                          str(DATA / "firmware_console.log")),
                           2, "no symbol table")


def test_elf_without_dwarf_still_symbolizes(fixture_elf, tmp_path, capsys):
    no_debug = tmp_path / "vmlinux"
    subprocess.run([fixture_elf.tool_prefix + "strip", "--strip-debug", "-o", str(no_debug),
                    str(fixture_elf.path)], check=True)
    log = tmp_path / "panic.log"
    log.write_text(mainline_log(correct_frames(fixture_elf)))
    code, out, err = run_decode(["--elf", str(no_debug), str(log)], capsys)
    assert code == 0 and "no DWARF line table" in err
    (decoded,) = decode_text(log.read_text(), no_debug)
    assert all(f.elf.file is None and f.elf.printed == fixture_elf.pb(f.lookup_address)
               for f in decoded.frames)
