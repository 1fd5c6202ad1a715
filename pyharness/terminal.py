"""Text from input on a terminal: shown, never obeyed.

Config names and paths, scenario names read back from a JSON report, kernel
log lines, a firmware's console, an error message quoting any of them: each
may hold an ESC (``ESC ] 0 ; ... BEL`` sets the window title, ``ESC [ 2 J``
clears the screen), a C1 control (``0x9b`` is a one-byte CSI to some
terminals), a bidirectional override that reorders what is shown, or, from
a file name that is not UTF-8, a lone surrogate that cannot be printed at
all. :func:`visible` is the one helper every place that prints such text
calls: it spells each of those as a Python escape (``\\x1b``, ``\\u202e``,
``\\xff`` for an undecodable byte), and leaves all other text alone. (XML
and HTML have their own: :mod:`pyharness.reports.text`.)
"""

from __future__ import annotations

import re

# C0 controls but tab (and newline, which multi-line text keeps), DEL, C1
# controls, the bidirectional marks/overrides/isolates, lone surrogates.
_CONTROLS = "\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
_SURROGATES = "\ud800-\udfff"
_ONE_LINE = re.compile(f"[\n{_CONTROLS}{_SURROGATES}]")
_MULTI_LINE = re.compile(f"[{_CONTROLS}{_SURROGATES}]")
_NAMED = {"\n": "\\n", "\r": "\\r"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    if char in _NAMED:
        return _NAMED[char]
    if 0xDC80 <= code <= 0xDCFF:          # a byte Python could not decode (surrogateescape)
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(text: object, *, multiline: bool = False) -> str:
    """``text`` as a terminal may show it: every character a terminal would
    act on (or could not print) spelt as an escape. One line unless
    ``multiline``, when newlines are kept."""
    return (_MULTI_LINE if multiline else _ONE_LINE).sub(_escape, str(text))
