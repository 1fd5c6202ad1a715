"""Statement-level mutation operators: a removed statement, swapped arguments.

A small statement walker over each function body's tokens finds the
statements (expression statements, ``if``/``for``/``while``/``do``, blocks,
``break``/``continue``), and which of them are the lone body of an ``if``,
``else`` or loop (deleting one of those leaves ``{}``, so GCC's
``-Wempty-body`` does not turn the mutant into a compile error).
Declarations and ``return`` statements are never removed: without them the
function does not compile (-Werror), which would measure nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence

from pyharness.mutate.edits import Edit, blank
from pyharness.mutate.lexer import Token
from pyharness.mutate.operators import in_code, operand_end

_TYPE_WORDS = frozenset({"unsigned", "signed", "int", "long", "short", "char", "bool", "void",
                         "const", "static", "struct", "enum", "union", "volatile", "register",
                         "u8", "u16", "u32", "u64", "s64", "size_t", "uintptr_t", "va_list",
                         "typeof", "__typeof__"})
_CALL_EXCLUDED = frozenset({"if", "for", "while", "switch", "return", "sizeof", "typeof",
                            "__typeof__", "__attribute__", "__asm__", "asm", "defined",
                            "__builtin_frame_address", "va_start", "va_end", "va_arg"})


@dataclass(frozen=True)
class Statement:
    first: int        # token index
    end: int          # one past the last token
    kind: str         # "expr", "if", "loop", "block", "jump", "decl", "return", "other"
    is_body: bool     # the lone body of an if / else / loop


def _close(tokens: Sequence[Token], i: int) -> int:
    """Index of the bracket closing the one at i."""
    opening = tokens[i].text
    closing = {"(": ")", "[": "]", "{": "}"}[opening]
    level = 0
    for j in range(i, len(tokens)):
        if tokens[j].text == opening:
            level += 1
        elif tokens[j].text == closing:
            level -= 1
            if level == 0:
                return j
    return len(tokens) - 1


def _is_declaration(tokens: Sequence[Token], i: int) -> bool:
    first = tokens[i]
    if first.text in _TYPE_WORDS:
        return True
    following = [t.text for t in tokens[i + 1:i + 4]]
    if first.kind == "ident" and following and tokens[i + 1].kind == "ident":
        return True
    return first.kind == "ident" and following[:1] == ["*"] and len(following) > 2 and \
        tokens[i + 2].kind == "ident" and following[2] in ("=", ";", ",", "[")


class _Walker:
    def __init__(self, tokens: Sequence[Token]) -> None:
        self.tokens = tokens
        self.found: list[Statement] = []

    def block(self, i: int) -> int:
        """Statements of the block whose ``{`` is at i; returns past its ``}``."""
        end = _close(self.tokens, i)
        j = i + 1
        while j < end:
            j = self.statement(j, is_body=False)
        return end + 1

    def statement(self, i: int, is_body: bool) -> int:
        tokens, text = self.tokens, self.tokens[i].text
        if text == "{":
            end = self.block(i)
            self.found.append(Statement(i, end, "block", is_body))
            return end
        if text in ("if", "for", "while", "switch") and i + 1 < len(tokens) \
                and tokens[i + 1].text == "(":
            header_end = _close(tokens, i + 1) + 1
            end = self.statement(header_end, is_body=True)
            if text == "if" and end < len(tokens) and tokens[end].text == "else":
                end = self.statement(end + 1, is_body=True)
            kind = "if" if text == "if" else ("loop" if text != "switch" else "other")
            self.found.append(Statement(i, end, kind, is_body))
            return end
        if text == "do":
            body_end = self.statement(i + 1, is_body=True)
            end = operand_end(tokens, body_end, frozenset()) + 1
            while end < len(tokens) and tokens[end - 1].text != ";":
                end += 1
            self.found.append(Statement(i, end, "loop", is_body))
            return end
        if text in ("case", "default"):
            j = i
            while j < len(tokens) and tokens[j].text != ":":
                j += 1
            return j + 1
        j = i
        while j < len(tokens) and tokens[j].text != ";":
            j = _close(tokens, j) + 1 if tokens[j].text in ("(", "[", "{") else j + 1
        end = min(j + 1, len(tokens))
        if text in ("break", "continue"):
            kind = "jump"
        elif text in ("return", "goto"):
            kind = "return"
        elif text == ";":
            kind = "other"
        elif _is_declaration(tokens, i):
            kind = "decl"
        else:
            kind = "expr"
        self.found.append(Statement(i, end, kind, is_body))
        return end


def statements(tokens: Sequence[Token]) -> list[Statement]:
    """Every statement of every function body, innermost first."""
    walker = _Walker(tokens)
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token.text == "{" and token.depth == 0 and token.function is not None \
                and not token.in_define:
            i = walker.block(i)
        else:
            i += 1
    return walker.found


def stmt_del(text: str, tokens: Sequence[Token]) -> Iterator[Edit]:
    for st in sorted(statements(tokens), key=lambda s: (tokens[s.first].start, -s.end)):
        if st.kind not in ("expr", "if", "loop", "jump"):
            continue
        first, last = tokens[st.first], tokens[st.end - 1]
        removed = text[first.start:last.end]
        replacement = ("{}" if st.is_body else "") + blank(removed)
        head = " ".join(t.text for t in tokens[st.first:min(st.end, st.first + 6)])
        yield Edit(first.start, last.end, replacement, "stmt-del",
                   f"{st.kind} removed: {head}{' ...' if st.end - st.first > 6 else ''}")


def _arguments(tokens: Sequence[Token], open_index: int) -> list[tuple[int, int]]:
    """(first, end) token indices of each argument of the call whose ``(``
    is at open_index."""
    close = _close(tokens, open_index)
    args, start, j = [], open_index + 1, open_index + 1
    while j < close:
        if tokens[j].text in ("(", "[", "{"):
            j = _close(tokens, j) + 1
            continue
        if tokens[j].text == ",":
            args.append((start, j))
            start = j + 1
        j += 1
    if start < close:
        args.append((start, close))
    return args


def args_swap(text: str, tokens: Sequence[Token]) -> Iterator[Edit]:
    for i, token in enumerate(tokens):
        if token.text != "(" or i == 0 or not in_code(token):
            continue
        callee = tokens[i - 1]
        if callee.kind != "ident" or callee.text in _CALL_EXCLUDED:
            continue
        args = _arguments(tokens, i)
        for (a0, a1), (b0, b1) in zip(args, args[1:]):
            if a1 <= a0 or b1 <= b0:
                continue
            a_text = text[tokens[a0].start:tokens[a1 - 1].end]
            b_text = text[tokens[b0].start:tokens[b1 - 1].end]
            if a_text == b_text or any(tokens[k].kind == "string" for k in (a0, b0)):
                continue
            between = text[tokens[a1 - 1].end:tokens[b0].start]
            yield Edit(tokens[a0].start, tokens[b1 - 1].end, b_text + between + a_text,
                       "args-swap", f"{callee.text}(): {' '.join(a_text.split())} <-> "
                                    f"{' '.join(b_text.split())}")


STATEMENT_OPERATORS = (stmt_del, args_swap)
