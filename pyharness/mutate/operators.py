"""Expression-level mutation operators on C tokens (pyharness.mutate.lexer).

Each operator takes the tokens of one file and returns :class:`Edit`s.
They act on code only: tokens inside a function body or a ``#define``
body, and for constants and arithmetic also inside ``[...]`` at file scope
(array sizes: ``pkvm_stacktrace[NR_CPUS][NVHE_STACKTRACE_ENTRIES]``).
Statement-level operators are in :mod:`pyharness.mutate.statements`.
"""

from __future__ import annotations

import re
from typing import Callable, Iterator, Sequence

from pyharness.mutate.edits import Edit
from pyharness.mutate.lexer import Token

RELATIONAL = ("<", "<=", ">", ">=", "==", "!=")
PRINT_FUNCTIONS = frozenset({"printk", "kvm_err", "panic", "pr_err", "pr_info", "pr_warn",
                             "pr_emerg", "pr_crit", "snprintf", "kvm_info"})
_BITOP_SWAPS = {"&": "|", "|": "&", "<<": ">>", ">>": "<<", "&=": "|=", "|=": "&=",
                "<<=": ">>=", ">>=": "<<=", "^": "|"}
_INT = re.compile(r"^(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9]\d*)([uUlL]*)$")
_CONVERSION = re.compile(r"%[-+ #0]*\d*(?:\.\d+)?(?:hh|h|ll|l|z|t)?(?:p[A-Za-z]?|[a-zA-Z%])")
_PADDED = re.compile(r"%0\d+(l{0,2}[xXdu])")

Operator = Callable[[str, Sequence[Token]], Iterator[Edit]]


def in_code(token: Token) -> bool:
    """Inside a function body or a #define body."""
    return token.in_define or token.function is not None


def _bracket_depths(tokens: Sequence[Token]) -> list[int]:
    """For each token, how many file-scope ``[`` are open around it."""
    depths, level = [], 0
    for token in tokens:
        if token.text == "]" and not in_code(token):
            level = max(0, level - 1)
        depths.append(level)
        if token.text == "[" and not in_code(token):
            level += 1
    return depths


def is_binary(tokens: Sequence[Token], i: int) -> bool:
    """Whether the operator at i has a left operand (not unary)."""
    if i == 0:
        return False
    prev = tokens[i - 1]
    if prev.kind in ("ident", "number", "char", "string"):
        return prev.text not in ("return", "case", "sizeof")
    return prev.text in (")", "]", "++", "--")


def ror(text: str, tokens: Sequence[Token]) -> Iterator[Edit]:
    for token in tokens:
        if token.kind == "punct" and token.text in RELATIONAL and in_code(token):
            for other in RELATIONAL:
                if other != token.text:
                    yield Edit(token.start, token.end, other, "ror", f"{token.text} -> {other}")


def _format_int(value: int, original: str, suffix: str) -> str:
    body = original[:len(original) - len(suffix)] if suffix else original
    if body[:2] in ("0x", "0X"):
        digits = f"{value:x}" if body[2:].islower() or body[2:].isdigit() else f"{value:X}"
        return body[:2] + digits.zfill(len(body) - 2) + suffix
    if len(body) > 1 and body.startswith("0"):
        return "0" + f"{value:o}" + suffix
    return f"{value}{suffix}"


def constant_variants(value: int) -> list[tuple[int, str]]:
    """+1, -1, x2, /2, without repeats, negatives or the value itself."""
    out: list[tuple[int, str]] = []
    for new, how in ((value + 1, "+1"), (value - 1, "-1"), (value * 2, "x2"), (value // 2, "/2")):
        if new >= 0 and new != value and new not in [v for v, _ in out]:
            out.append((new, how))
    return out


def const(text: str, tokens: Sequence[Token]) -> Iterator[Edit]:
    brackets = _bracket_depths(tokens)
    for token, bracket in zip(tokens, brackets):
        if token.kind != "number" or not (in_code(token) or bracket):
            continue
        match = _INT.match(token.text)
        if not match:
            continue
        value = int(match.group(1), 0) if not re.match(r"^0[0-7]+$", match.group(1)) \
            else int(match.group(1), 8)
        for new, how in constant_variants(value):
            replacement = _format_int(new, token.text, match.group(2))
            yield Edit(token.start, token.end, replacement, "const",
                       f"{token.text} -> {replacement} ({how})")


def aor(text: str, tokens: Sequence[Token]) -> Iterator[Edit]:
    brackets = _bracket_depths(tokens)
    for i, token in enumerate(tokens):
        if token.kind != "punct" or not (in_code(token) or brackets[i]):
            continue
        if token.text in ("+", "-") and is_binary(tokens, i):
            other = "-" if token.text == "+" else "+"
        elif token.text in ("++", "--"):
            other = "--" if token.text == "++" else "++"
        elif token.text in ("+=", "-="):
            other = "-=" if token.text == "+=" else "+="
        else:
            continue
        yield Edit(token.start, token.end, other, "aor", f"{token.text} -> {other}")


def bitop(text: str, tokens: Sequence[Token]) -> Iterator[Edit]:
    for i, token in enumerate(tokens):
        if token.kind != "punct" or not in_code(token):
            continue
        if token.text == "~":
            yield Edit(token.start, token.end, "", "bitop", "~ removed")
        elif token.text in _BITOP_SWAPS and (token.text.endswith("=") or
                                             is_binary(tokens, i)):
            other = _BITOP_SWAPS[token.text]
            yield Edit(token.start, token.end, other, "bitop", f"{token.text} -> {other}")


def lcr(text: str, tokens: Sequence[Token]) -> Iterator[Edit]:
    for token in tokens:
        if token.text in ("&&", "||") and token.kind == "punct" and in_code(token):
            other = "||" if token.text == "&&" else "&&"
            yield Edit(token.start, token.end, other, "lcr", f"{token.text} -> {other}")


def not_drop(text: str, tokens: Sequence[Token]) -> Iterator[Edit]:
    for token in tokens:
        if token.text == "!" and token.kind == "punct" and in_code(token):
            yield Edit(token.start, token.end, "", "not-drop", "! removed")


# Where an operand of && / || (or of a comparison) stops, at its own depth.
_STOP = frozenset({",", ";", "{", "}", "=", "?", ":", "return", "+=", "-=", "|=", "&=",
                   "<<=", ">>=", "^=", "*=", "/=", "%="})


def operand_end(tokens: Sequence[Token], i: int, stops: frozenset[str]) -> int:
    """Index one past the operand that starts at i (balanced brackets)."""
    level = 0
    while i < len(tokens):
        text = tokens[i].text
        if text in ("(", "["):
            level += 1
        elif text in (")", "]"):
            if level == 0:
                return i
            level -= 1
        elif level == 0 and (text in stops or text in _STOP):
            return i
        i += 1
    return i


def operand_start(tokens: Sequence[Token], i: int, stops: frozenset[str]) -> int:
    """Index of the first token of the operand that ends at i (inclusive)."""
    level = 0
    while i >= 0:
        text = tokens[i].text
        if text in (")", "]"):
            level += 1
        elif text in ("(", "["):
            if level == 0:
                return i + 1
            level -= 1
        elif level == 0 and (text in stops or text in _STOP):
            return i + 1
        i -= 1
    return 0


def _span(text: str, start: int, end: int) -> str:
    return "\n" * text.count("\n", start, end)


def cond_drop(text: str, tokens: Sequence[Token]) -> Iterator[Edit]:
    for i, token in enumerate(tokens):
        if token.text not in ("&&", "||") or token.kind != "punct" or not in_code(token):
            continue
        stops = frozenset({"||"}) if token.text == "||" else frozenset({"&&", "||"})
        left = operand_start(tokens, i - 1, stops)
        right_end = operand_end(tokens, i + 1, stops)
        if left >= i or right_end <= i + 1:
            continue
        first, last = tokens[left], tokens[right_end - 1]
        after = tokens[i + 1]
        kept_right = " ".join(t.text for t in tokens[i + 1:right_end])
        kept_left = " ".join(t.text for t in tokens[left:i])
        yield Edit(first.start, after.start, _span(text, first.start, after.start),
                   "cond-drop", f"left of {token.text} removed, keeps {kept_right}")
        yield Edit(tokens[i - 1].end, last.end, _span(text, tokens[i - 1].end, last.end),
                   "cond-drop", f"right of {token.text} removed, keeps {kept_left}")


def _loop_conditions(tokens: Sequence[Token]) -> Iterator[tuple[int, int]]:
    """(first, end) token indices of each for/while condition."""
    for i, token in enumerate(tokens):
        if token.text not in ("for", "while") or not in_code(token):
            continue
        if i + 1 >= len(tokens) or tokens[i + 1].text != "(":
            continue
        close = operand_end(tokens, i + 2, frozenset())
        start = i + 2
        if token.text == "for":
            semis = [j for j in range(i + 2, close) if tokens[j].text == ";"]
            if len(semis) != 2:
                continue
            start, close = semis[0] + 1, semis[1]
        if start < close:
            yield start, close


def loop_bound(text: str, tokens: Sequence[Token]) -> Iterator[Edit]:
    for start, end in _loop_conditions(tokens):
        for i in range(start, end):
            if tokens[i].text not in RELATIONAL or tokens[i].kind != "punct":
                continue
            stop = operand_end(tokens, i + 1, frozenset({"&&", "||"}) | set(RELATIONAL))
            stop = min(stop, end)
            if stop <= i + 1:
                continue
            last = tokens[stop - 1]
            for delta in ("+ 1", "- 1"):
                yield Edit(last.end, last.end, f" {delta}", "loop-bound",
                           f"bound {delta.replace(' ', '')}")


def _printed_strings(tokens: Sequence[Token]) -> Iterator[Token]:
    """String literals passed (at any argument position) to a print function."""
    calls: list[bool] = []
    for i, token in enumerate(tokens):
        if token.text == "(":
            calls.append(i > 0 and tokens[i - 1].text in PRINT_FUNCTIONS)
        elif token.text == ")" and calls:
            calls.pop()
        elif token.kind == "string" and calls and calls[-1] and in_code(token):
            yield token


def _first_plain_char(literal: str) -> int | None:
    """Offset in the literal of its first visible character outside a
    conversion (%...) and an escape (\\n)."""
    i = 1
    while i < len(literal) - 1:
        ch = literal[i]
        if ch == "%":
            match = _CONVERSION.match(literal, i)
            i = match.end() if match else i + 1
        elif ch == "\\":
            i += 2
        elif ch.isspace():
            i += 1
        else:
            return i
    return None


def string(text: str, tokens: Sequence[Token]) -> Iterator[Edit]:
    for token in _printed_strings(tokens):
        at = _first_plain_char(token.text)
        if at is None:
            continue
        ch = token.text[at]
        new = ch.swapcase() if ch.isalpha() else ""
        replacement = token.text[:at] + new + token.text[at + 1:]
        what = f"{ch!r} -> {new!r}" if new else f"{ch!r} removed"
        yield Edit(token.start, token.end, replacement, "string", what)


def format_(text: str, tokens: Sequence[Token]) -> Iterator[Edit]:
    for token in _printed_strings(tokens):
        literal = token.text
        for match in re.finditer(r"%p([BS])", literal):
            other = "S" if match.group(1) == "B" else "B"
            replacement = literal[:match.start()] + "%p" + other + literal[match.end():]
            yield Edit(token.start, token.end, replacement, "format",
                       f"%p{match.group(1)} -> %p{other}")
        for match in _PADDED.finditer(literal):
            replacement = literal[:match.start()] + "%" + match.group(1) + literal[match.end():]
            yield Edit(token.start, token.end, replacement, "format",
                       f"{match.group(0)} -> %{match.group(1)}")


EXPRESSION_OPERATORS: tuple[Operator, ...] = (ror, const, aor, bitop, lcr, cond_drop,
                                              not_drop, loop_bound, string, format_)
