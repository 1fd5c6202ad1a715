"""Decoding kernel logs: every nVHE hyp call trace, frame by frame, optionally
checked against the ELF that printed it. ``python -m pyharness.decode`` is
``pyharness decode``."""

from pyharness.decode.decoder import decode_parsed, decode_text, untraced_panics
from pyharness.decode.jsonio import format_json, traces_from_json
from pyharness.decode.records import DecodedFrame, DecodedTrace, ElfLocation
from pyharness.decode.text import format_text
from pyharness.elf.dwarf import SourceLine
from pyharness.elf.symbolizer import ElfSymbol, ElfSymbolizer

__all__ = ["DecodedFrame", "DecodedTrace", "ElfLocation", "ElfSymbol", "ElfSymbolizer",
           "SourceLine", "decode_parsed", "decode_text", "format_json", "format_text",
           "traces_from_json", "untraced_panics"]
