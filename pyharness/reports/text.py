"""Console text made safe for XML and HTML, and still readable.

A console may hold any byte the firmware wrote. C0 control characters
(other than tab and newline) become their Unicode control pictures, so an
ESC shows as U+241B rather than breaking an XML parser or vanishing.
"""

from __future__ import annotations

import re

_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f]")
# Code points XML 1.0 cannot carry at all, beyond the C0 controls.
_NOT_XML = re.compile("[\ud800-\udfff\ufffe\uffff]")


def _picture(match: re.Match[str]) -> str:
    code = ord(match.group())
    return "\u2421" if code == 0x7F else chr(0x2400 + code)


def printable(text: str) -> str:
    return _NOT_XML.sub("\ufffd", _CONTROL.sub(_picture, text))
