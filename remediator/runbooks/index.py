"""An alertname index over runbook matchers, so matching stays cheap with thousands of runbooks.

Almost every runbook pins ``alertname``; bucketing by it means an alert is checked only
against runbooks that could possibly match, plus the few that cannot be bucketed.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Generic, TypeVar

from remediator.runbooks.matchers import Matcher, MatchType

__all__ = ["AlertnameIndex"]

T = TypeVar("T")

_ALERTNAME = "alertname"
# A regex made only of these characters is a plain alternation of literal names: every one
# of them is literal in a regex except "|", so it fully matches exactly the listed names.
_LITERAL_ALTERNATION = re.compile(r"[A-Za-z0-9_:|]*")


class AlertnameIndex(Generic[T]):
    """Candidates by alertname, so one alert is checked only against runbooks that could match.

    An entry with ``alertname="X"`` is filed under X; one with ``alertname=~"A|B"`` (literal
    names only) under A and B. Everything else is generic and considered for every alert.
    ``match`` always agrees with checking every entry in order.
    """

    def __init__(self, entries: Iterable[tuple[T, Sequence[Matcher]]]) -> None:
        self._entries: list[tuple[T, Sequence[Matcher]]] = []
        self._by_name: dict[str, list[int]] = {}
        self._generic: list[int] = []
        for position, (item, matchers) in enumerate(entries):
            # A private tuple: later changes to the caller's list cannot desync the index.
            frozen = tuple(matchers)
            self._entries.append((item, frozen))
            names = _indexed_alertnames(frozen)
            if names is None:
                self._generic.append(position)
            else:
                for name in names:
                    self._by_name.setdefault(name, []).append(position)

    def candidates(self, labels: Mapping[str, str]) -> list[tuple[T, Sequence[Matcher]]]:
        """Entries that could match ``labels``, in insertion order, each once."""
        return [self._entries[position] for position in self._positions(labels)]

    def match(self, labels: Mapping[str, str]) -> list[T]:
        """Items whose matchers all match ``labels``, in insertion order."""
        matched: list[T] = []
        for position in self._positions(labels):
            item, matchers = self._entries[position]
            if all(matcher.matches(labels) for matcher in matchers):
                matched.append(item)
        return matched

    def __len__(self) -> int:
        return len(self._entries)

    def _positions(self, labels: Mapping[str, str]) -> Sequence[int]:
        # Both lists are ascending and disjoint, so a merge restores insertion order.
        indexed = self._by_name.get(labels.get(_ALERTNAME, ""), ())
        if not self._generic:
            return indexed
        if not indexed:
            return self._generic
        return list(heapq.merge(indexed, self._generic))


def _indexed_alertnames(matchers: Sequence[Matcher]) -> tuple[str, ...] | None:
    """The only alertnames these matchers can accept, or None when that set is open-ended."""
    for matcher in matchers:
        if matcher.name != _ALERTNAME:
            continue
        if matcher.op is MatchType.EQUAL:
            return (matcher.value,)
        if matcher.op is MatchType.REGEX and _LITERAL_ALTERNATION.fullmatch(matcher.value):
            # dict.fromkeys drops repeats ("A|A") so an entry is filed under a name once.
            return tuple(dict.fromkeys(matcher.value.split("|")))
    return None
