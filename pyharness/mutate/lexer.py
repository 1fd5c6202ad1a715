"""A small C tokenizer for the mutation operators.

It knows what an edit must stay out of, and where it matters:

- comments are skipped, and so is the text of every preprocessor line
  (``#include``, ``#if``, ``#endif``...): an edit there would be meaningless
  or would only break the build. The conditional lines are kept as
  :class:`Directive` records, so that each token knows the ``#if`` /
  ``#ifdef`` conditions it sits under (:attr:`Token.conditions`);
- the body of a ``#define`` is tokenized like code (``Token.in_define``):
  sizes and masks live there (``NVHE_STACKTRACE_ENTRIES``, ``HYP_VA_MASK``);
- string and character literals are single tokens, so nothing inside one
  is mistaken for an operator;
- each token records its offsets in the text, its line, the brace depth and
  the function it is in (for the run order and the report).

Not a C parser: the operators look at short token windows, and whatever
they produce is judged by the compiler (a mutant that does not compile is
reported as a compile error, not as a kill).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Longest first, so that ``<<=`` is not read as ``<<`` then ``=``.
PUNCTUATORS = sorted("""
    <<= >>= ... -> ++ -- << >> <= >= == != && || += -= *= /= %= &= ^= |= ##
    [ ] ( ) { } . & * + - ~ ! / % < > ^ | ? : ; = , #
""".split(), key=len, reverse=True)

_IDENT = re.compile(r"[A-Za-z_]\w*")
_NUMBER = re.compile(r"\.?\d(?:[eEpP][+-]|[\w.])*")
_SPACE = re.compile(r"[ \t\f\v\r]+")

# Directives that open, flip or close a conditional block.
_CONDITIONALS = ("if", "ifdef", "ifndef", "elif", "else", "endif")


@dataclass(frozen=True)
class Condition:
    """One enclosing conditional: ``symbol`` must be defined (``want``
    True) or undefined (False). ``symbol`` is None for an ``#if`` expression
    this module does not evaluate (any configuration may compile it)."""

    symbol: str | None
    want: bool
    text: str

    def describe(self) -> str:
        return self.text


@dataclass(frozen=True)
class Token:
    kind: str            # "ident", "number", "string", "char", "punct"
    text: str
    start: int           # offset in the text
    end: int
    line: int            # 1-based
    depth: int           # brace depth before this token
    in_define: bool      # inside a #define body
    define: str | None   # that macro's name
    function: str | None
    conditions: tuple[Condition, ...]


@dataclass(frozen=True)
class Directive:
    name: str            # "define", "ifdef", ...
    text: str            # the whole directive, continuation lines joined
    start: int
    end: int
    line: int


def line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def _directive_end(text: str, pos: int) -> int:
    """The offset of the newline that ends the directive starting at pos
    (backslash-newline continues it; a comment may hide a newline)."""
    while pos < len(text):
        ch = text[pos]
        if ch == "\\" and text.startswith("\n", pos + 1):
            pos += 2
        elif text.startswith("/*", pos):
            close = text.find("*/", pos + 2)
            pos = len(text) if close < 0 else close + 2
        elif ch == "\n":
            return pos
        else:
            pos += 1
    return pos


_CONDITION_PATTERNS = (
    (re.compile(r"^\s*(?:IS_ENABLED|defined)\s*\(\s*(\w+)\s*\)\s*$"), True),
    (re.compile(r"^\s*defined\s+(\w+)\s*$"), True),
    (re.compile(r"^\s*!\s*(?:IS_ENABLED|defined)\s*\(\s*(\w+)\s*\)\s*$"), False),
)


def _condition(name: str, rest: str) -> Condition:
    text = f"#{name} {rest.strip()}".strip()
    if name in ("ifdef", "ifndef"):
        return Condition(rest.split()[0] if rest.split() else None, name == "ifdef", text)
    for pattern, want in _CONDITION_PATTERNS:
        match = pattern.match(rest)
        if match:
            return Condition(match.group(1), want, text)
    return Condition(None, True, text)


def _flip(condition: Condition) -> Condition:
    if condition.symbol is None:
        return Condition(None, True, condition.text + " (#else)")
    return Condition(condition.symbol, not condition.want, condition.text + " (#else)")


class _Lexer:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens: list[Token] = []
        self.directives: list[Directive] = []
        self.conditions: list[Condition] = []
        self.depth = 0
        self.function: str | None = None

    def run(self) -> None:
        pos, at_line_start = 0, True
        text = self.text
        while pos < len(text):
            ch = text[pos]
            if ch == "\n":
                pos, at_line_start = pos + 1, True
                continue
            match = _SPACE.match(text, pos)
            if match:
                pos = match.end()
                continue
            if text.startswith("\\\n", pos):
                pos += 2
                continue
            if ch == "#" and at_line_start:
                pos = self._directive(pos)
                continue
            at_line_start = False
            pos = self._token(pos, in_define=None)

    def _skip_comment(self, pos: int) -> int | None:
        text = self.text
        if text.startswith("/*", pos):
            close = text.find("*/", pos + 2)
            return len(text) if close < 0 else close + 2
        if text.startswith("//", pos):
            newline = text.find("\n", pos)
            return len(text) if newline < 0 else newline
        return None

    def _token(self, pos: int, in_define: str | None) -> int:
        text = self.text
        skipped = self._skip_comment(pos)
        if skipped is not None:
            return skipped
        ch = text[pos]
        if ch in "\"'":
            end = pos + 1
            while end < len(text) and text[end] != ch and text[end] != "\n":
                end += 2 if text[end] == "\\" else 1
            end = min(end + 1, len(text))
            kind = "string" if ch == '"' else "char"
        elif _IDENT.match(text, pos):
            end, kind = _IDENT.match(text, pos).end(), "ident"  # type: ignore[union-attr]
        elif _NUMBER.match(text, pos):
            end, kind = _NUMBER.match(text, pos).end(), "number"  # type: ignore[union-attr]
        else:
            punct = next((p for p in PUNCTUATORS if text.startswith(p, pos)), ch)
            end, kind = pos + len(punct), "punct"
        self._emit(kind, pos, end, in_define)
        return end

    def _emit(self, kind: str, start: int, end: int, define: str | None) -> None:
        value = self.text[start:end]
        if define is None and kind == "punct" and value == "{" and self.depth == 0:
            self.function = _function_before(self.tokens)
        depth = self.depth
        if define is None and kind == "punct":
            if value == "{":
                self.depth += 1
            elif value == "}":
                self.depth = max(0, self.depth - 1)
                if self.depth == 0:
                    self.function = None
        self.tokens.append(Token(
            kind=kind, text=value, start=start, end=end, line=line_of(self.text, start),
            depth=depth if define is None else 0, in_define=define is not None,
            define=define, function=self.function if define is None else None,
            conditions=tuple(self.conditions)))

    def _directive(self, pos: int) -> int:
        end = _directive_end(self.text, pos)
        body = self.text[pos + 1:end]
        match = re.match(r"\s*(\w*)", body)
        name = match.group(1) if match else ""
        self.directives.append(Directive(name, self.text[pos:end], pos, end,
                                         line_of(self.text, pos)))
        rest = body[match.end():] if match else body
        rest_clean = re.sub(r"/\*.*?\*/|//.*", " ", rest.replace("\\\n", " "), flags=re.S)
        if name in ("if", "ifdef", "ifndef"):
            self.conditions.append(_condition(name, rest_clean))
        elif name in ("else", "elif") and self.conditions:
            self.conditions[-1] = (_flip(self.conditions[-1]) if name == "else"
                                   else Condition(None, True, f"#elif {rest_clean.strip()}"))
        elif name == "endif" and self.conditions:
            self.conditions.pop()
        elif name == "define":
            self._define_body(pos + 1 + match.end() if match else end, end)  # type: ignore[union-attr]
        return end

    def _define_body(self, pos: int, end: int) -> None:
        """Tokens of ``NAME body`` or ``NAME(params) body``: only the body's
        are kept, marked with the macro's name."""
        text = self.text
        while pos < end and text[pos] in " \t":
            pos += 1
        match = _IDENT.match(text, pos)
        if not match:
            return
        macro, pos = match.group(0), match.end()
        if pos < end and text[pos] == "(":
            close = text.find(")", pos)
            pos = end if close < 0 or close > end else close + 1
        while pos < end:
            if text.startswith("\\\n", pos):
                pos += 2
                continue
            space = _SPACE.match(text, pos)
            if space:
                pos = space.end()
                continue
            pos = min(self._token(pos, in_define=macro), end)


def _function_before(tokens: list[Token]) -> str | None:
    """The function a ``{`` at depth 0 opens: the identifier before the last
    parenthesised group, if the tokens before the brace end with ``)``
    (attributes such as ``__noreturn`` may follow it)."""
    i = len(tokens) - 1
    while i >= 0 and tokens[i].kind == "ident":   # trailing attributes
        i -= 1
    if i < 0 or tokens[i].text != ")":
        return None
    level = 0
    while i >= 0:
        if tokens[i].text == ")":
            level += 1
        elif tokens[i].text == "(":
            level -= 1
            if level == 0:
                break
        i -= 1
    if i > 0 and tokens[i - 1].kind == "ident":
        return tokens[i - 1].text
    return None


def tokenize(text: str) -> tuple[list[Token], list[Directive]]:
    """The code tokens of a C (or preprocessed assembly) text, and its
    preprocessor directives."""
    lexer = _Lexer(text)
    lexer.run()
    return lexer.tokens, lexer.directives
