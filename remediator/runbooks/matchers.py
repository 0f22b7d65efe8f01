"""Alertmanager label matchers, so runbooks select alerts exactly as routes and silences do.

Operators and semantics follow Alertmanager's classic matchers (``pkg/labels``):

* ``name=value``, ``name!=value``, ``name=~regex``, ``name!~regex``; whitespace around each
  part is ignored.
* Values are unquoted (taken literally, trimmed) or double-quoted with Go-style escapes
  (``\\"``, ``\\\\``, ``\\n``, ``\\t``, ``\\r``, ``\\uXXXX``, ``\\UXXXXXXXX``). Like
  Alertmanager, any other backslash is kept literally, so ``=~"\\d+"`` is the regex ``\\d+``.
* Regexes are fully anchored (Go's ``^(?:regex)$``, here ``re.fullmatch``): ``job=~"web"``
  does not match ``web-1``; a leading ``(?i)`` works as in Alertmanager.
* An absent label is the empty string: ``foo=""`` matches an alert without ``foo``.

Regexes are compiled with Python's :mod:`re`, not RE2. Everyday patterns behave the same;
RE2-only syntax such as ``\\pL`` or mid-pattern ``(?i)``, and unbalanced tricks such as
``a)|(b`` (which Go would leave half unanchored), are rejected at parse time instead.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

__all__ = [
    "MatchType",
    "Matcher",
    "MatcherError",
    "first_failing",
    "parse_matcher",
    "parse_matchers",
]

_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
# The name token runs up to whitespace or an operator character, so "a<>b" reports a bad
# operator rather than a bad name.
_NAME_TOKEN = re.compile(r"[^\s=!~<>]*")
_OPERATOR_RUN = re.compile(r"[=!~<>]+")
_OPERATOR_CHARS = "=!~<>"

# Escapes understood inside a quoted value, and the canonical spelling used by __str__.
_UNESCAPE = {'"': '"', "\\": "\\", "n": "\n", "t": "\t", "r": "\r"}
_ESCAPE = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r"}
_UNICODE_ESCAPE_WIDTH = {"u": 4, "U": 8}


class MatchType(StrEnum):
    """The four Alertmanager match operators; the value is the operator's spelling."""

    EQUAL = "="
    NOT_EQUAL = "!="
    REGEX = "=~"
    NOT_REGEX = "!~"


class MatcherError(ValueError):
    """A matcher is malformed; the message quotes the matcher text and says what is wrong."""

    def __init__(self, text: str, problem: str) -> None:
        # Both parts go into args so the error pickles and compares sensibly.
        super().__init__(text, problem)
        self.text = text
        self.problem = problem

    def __str__(self) -> str:
        return f"invalid matcher {self.text!r}: {self.problem}"


@dataclass(frozen=True, slots=True)
class Matcher:
    """One label condition, validated and with its regex compiled once at construction.

    Equality, hashing and ``repr`` only look at ``name``, ``op`` and ``value``.
    """

    name: str
    op: MatchType
    value: str
    _regex: re.Pattern[str] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        try:
            op = MatchType(self.op)
        except ValueError:
            raise MatcherError(
                f"{self.name}{self.op}{_quote(self.value)}",
                f"unknown operator {self.op!r}; expected one of =, !=, =~, !~",
            ) from None
        object.__setattr__(self, "op", op)
        if not _LABEL_NAME.fullmatch(self.name):
            raise MatcherError(str(self), _bad_name(self.name))
        if op in (MatchType.REGEX, MatchType.NOT_REGEX):
            try:
                # fullmatch of the bare pattern is Go's ^(?:value)$ without the wrapper, which
                # Python would reject for a leading "(?i)", a common Alertmanager idiom.
                regex = re.compile(self.value)
            except (re.error, OverflowError, RecursionError) as exc:
                raise MatcherError(
                    str(self), f"invalid regular expression {self.value!r}: {exc}"
                ) from None
            object.__setattr__(self, "_regex", regex)

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether ``labels`` satisfy this matcher; a missing label counts as ``""``."""
        value = labels.get(self.name, "")
        regex = self._regex
        if regex is None:
            return (value == self.value) is (self.op is MatchType.EQUAL)
        return (regex.fullmatch(value) is not None) is (self.op is MatchType.REGEX)

    def __str__(self) -> str:
        """Canonical ``name<op>"value"`` form; ``parse_matcher`` reads it back unchanged."""
        return f"{self.name}{self.op.value}{_quote(self.value)}"


def parse_matcher(text: str) -> Matcher:
    """Parse one matcher such as ``severity=~"warning|critical"`` or ``team!=infra``.

    Raises :class:`MatcherError` naming ``text`` when it is malformed or its regex is invalid.
    """
    stripped = text.strip()
    if not stripped:
        raise MatcherError(text, "empty matcher; expected name, operator and value")

    name_match = _NAME_TOKEN.match(stripped)
    name = name_match.group() if name_match else ""
    rest = stripped[len(name) :].lstrip()
    if not name:
        raise MatcherError(text, "missing label name before the operator")
    if not _LABEL_NAME.fullmatch(name):
        raise MatcherError(text, _bad_name(name))

    op_match = _OPERATOR_RUN.match(rest)
    if op_match is None:
        raise MatcherError(text, "missing operator; expected one of =, !=, =~, !~")
    spelled = op_match.group()
    try:
        op = MatchType(spelled)
    except ValueError:
        raise MatcherError(
            text,
            f"unknown operator {spelled!r}; expected one of =, !=, =~, !~ "
            f"(quote the value if it starts with one of {_OPERATOR_CHARS})",
        ) from None

    raw_value = rest[len(spelled) :].strip()
    value = _unquote(raw_value, text) if raw_value.startswith('"') else _unquoted(raw_value, text)
    try:
        return Matcher(name, op, value)
    except MatcherError as exc:
        raise MatcherError(text, exc.problem) from None


def parse_matchers(texts: Iterable[str]) -> tuple[Matcher, ...]:
    """Parse a runbook's matcher list; the first bad entry raises :class:`MatcherError`.

    A bare string is refused: iterating it would silently parse one matcher per character.
    """
    if isinstance(texts, str):
        raise TypeError("parse_matchers expects a list of matcher strings, not a single string")
    return tuple(parse_matcher(text) for text in texts)


def first_failing(matchers: Sequence[Matcher], labels: Mapping[str, str]) -> Matcher | None:
    """The first matcher ``labels`` do not satisfy, or ``None`` if all do (for ``explain``)."""
    for matcher in matchers:
        if not matcher.matches(labels):
            return matcher
    return None


def _bad_name(name: str) -> str:
    return f"invalid label name {name!r}; label names must match [a-zA-Z_][a-zA-Z0-9_]*"


def _unquoted(raw: str, text: str) -> str:
    """An unquoted value is literal; a stray quote in it is almost surely a typo."""
    if '"' in raw:
        raise MatcherError(
            text, 'unquoted value contains a double quote; quote the whole value and write \\"'
        )
    return raw


def _unquote(raw: str, text: str) -> str:
    """Decode a double-quoted value; ``raw`` starts with the opening quote."""
    out: list[str] = []
    i, end = 1, len(raw)
    while i < end:
        char = raw[i]
        if char == '"':
            if i != end - 1:
                raise MatcherError(
                    text, 'unescaped double quote inside quoted value; write \\" for a literal one'
                )
            return "".join(out)
        if char != "\\" or i + 1 == end:
            out.append(char)
            i += 1
            continue
        escaped = raw[i + 1]
        if escaped in _UNESCAPE:
            out.append(_UNESCAPE[escaped])
            i += 2
        elif escaped in _UNICODE_ESCAPE_WIDTH:
            width = _UNICODE_ESCAPE_WIDTH[escaped]
            digits = raw[i + 2 : i + 2 + width]
            if len(digits) != width or not all(d in string.hexdigits for d in digits):
                raise MatcherError(
                    text, f"invalid \\{escaped} escape; expected {width} hexadecimal digits"
                )
            code = int(digits, 16)
            if code > 0x10FFFF:
                raise MatcherError(text, f"invalid \\{escaped} escape; code point out of range")
            out.append(chr(code))
            i += 2 + width
        else:
            # Alertmanager keeps unknown escapes literally, which keeps regexes like \d+ usable.
            out.append("\\")
            i += 1
    raise MatcherError(text, "unterminated quoted value; missing closing double quote")


def _quote(value: str) -> str:
    """Go-style quoting that ``_unquote`` reverses exactly."""
    parts: list[str] = []
    for char in value:
        escaped = _ESCAPE.get(char)
        if escaped is not None:
            parts.append(escaped)
        elif char.isprintable():
            parts.append(char)
        elif ord(char) <= 0xFFFF:
            parts.append(f"\\u{ord(char):04x}")
        else:
            parts.append(f"\\U{ord(char):08x}")
    return '"' + "".join(parts) + '"'
