"""Mail as mailing-list archives serve it: an mbox (several messages, each
after a ``From `` line) or one MIME message (an ``.eml``), read as the text
a person sees: headers left out but for From, Date and Subject, each text
part decoded (quoted-printable soft line breaks and ``=20``, base64, the
part's charset), an HTML-only part reduced to its text. Python's
:mod:`email` package does the parsing and decoding.

Line numbers of a mail read this way count the lines of that text, not the
file's (a soft line break joins two of the file's lines); the decoder says
so. Anything else (a plain log, a paste with a ``Subject:`` line at its
top) is read as it is.
"""

from __future__ import annotations

import email
import email.policy
import html
import re
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Iterable, Iterator

MBOX = "mbox"
MIME_MAIL = "MIME mail"
QUOTED_PRINTABLE = "quoted-printable"
BASE64 = "base64"
HTML_PART = "HTML part as text"

_HEADER_FIELD_RE = re.compile(rb"[A-Za-z][A-Za-z0-9-]*:[ \t]")
_MIME_MARKER_RE = re.compile(rb"^(?:MIME-Version|Content-Transfer-Encoding|Content-Type):",
                             re.IGNORECASE | re.MULTILINE)
_SHOWN_HEADERS = ("From", "Date", "Subject")
_TAG_RE = re.compile(r"<[^>]*>")
_BREAK_RE = re.compile(r"<br\s*/?>|</p\s*>|</div\s*>", re.IGNORECASE)


def mail_kind(head: bytes) -> str | None:
    """``mbox``, ``MIME mail`` or None (not mail: read as a plain log), from
    a file's first bytes."""
    head = head.lstrip(b"\r\n")
    first, _, rest = head.partition(b"\n")
    if first.startswith(b"From ") and _HEADER_FIELD_RE.match(rest):
        return MBOX
    if not _HEADER_FIELD_RE.match(first):
        return None
    headers = re.split(rb"\r?\n\r?\n", head, maxsplit=1)[0]
    return MIME_MAIL if _MIME_MARKER_RE.search(headers) else None


@dataclass
class MailText:
    """The lines of a mail read as text, and how it was read (``forms``:
    filled in as the messages are read)."""

    kind: str
    chunks: Iterable[bytes]        # the file's lines, line ends kept
    forms: list[str] = field(default_factory=list)
    messages: int = 0

    def lines(self) -> Iterator[str]:
        self._note(self.kind)
        for raw in self._messages():
            self.messages += 1
            yield from self._message_lines(raw)

    def _note(self, form: str) -> None:
        if form not in self.forms:
            self.forms.append(form)

    def _messages(self) -> Iterator[bytes]:
        if self.kind != MBOX:
            yield b"".join(self.chunks)
            return
        message: list[bytes] = []
        blank_before = True
        for line in self.chunks:
            if line.startswith(b"From ") and blank_before and message:
                yield b"".join(message)
                message = []
            if not (line.startswith(b"From ") and not message):   # the separator itself
                message.append(line)
            blank_before = not line.strip()
        if message:
            yield b"".join(message)

    def _message_lines(self, raw: bytes) -> Iterator[str]:
        message = email.message_from_bytes(raw, policy=email.policy.default)
        for name in _SHOWN_HEADERS:
            if message[name] is not None:
                yield f"{name}: {message[name]}"
        yield ""
        for text in self._texts(message):
            yield from text.replace("\r\n", "\n").split("\n")
        yield ""

    def _texts(self, message: EmailMessage | email.message.Message) -> Iterator[str]:
        parts = [p for p in message.walk() if not p.is_multipart()]
        plain = [p for p in parts if p.get_content_type() == "text/plain"]
        chosen = plain or [p for p in parts if p.get_content_type() == "text/html"]
        for part in chosen:
            encoding = str(part.get("Content-Transfer-Encoding", "")).strip().lower()
            if encoding in (QUOTED_PRINTABLE, BASE64):
                self._note(encoding)
            text = _part_text(part)
            if part.get_content_type() == "text/html":
                self._note(HTML_PART)
                text = html.unescape(_TAG_RE.sub("", _BREAK_RE.sub("\n", text)))
            yield text


def _part_text(part: email.message.Message) -> str:
    """A part's text, its transfer encoding and charset undone (bad bytes
    replaced rather than refused)."""
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return str(part.get_payload())
    charset = part.get_content_charset() or "utf-8"
    try:
        return payload.decode(charset, errors="replace")
    except LookupError:                         # a charset Python does not know
        return payload.decode("utf-8", errors="replace")


def mail_or_log_lines(data: bytes) -> tuple[Iterator[str] | None, tuple[str, ...]]:
    """A whole file's lines read as mail, and how (None: not mail)."""
    kind = mail_kind(data[:65536])
    if kind is None:
        return None, ()
    mail = MailText(kind, data.splitlines(keepends=True))
    lines = list(mail.lines())
    return iter(lines), tuple(mail.forms)
