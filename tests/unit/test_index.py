"""The alertname index must narrow candidates yet answer exactly like a linear scan."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from hypothesis import given
from hypothesis import strategies as st

from remediator.runbooks.index import AlertnameIndex
from remediator.runbooks.matchers import Matcher, MatchType, parse_matchers


def _index(*specs: tuple[str, list[str]]) -> AlertnameIndex[str]:
    return AlertnameIndex((name, parse_matchers(texts)) for name, texts in specs)


def _names(entries: Sequence[tuple[str, Sequence[Matcher]]]) -> list[str]:
    return [item for item, _ in entries]


def _linear(
    entries: Sequence[tuple[str, Sequence[Matcher]]], labels: Mapping[str, str]
) -> list[str]:
    return [item for item, matchers in entries if all(m.matches(labels) for m in matchers)]


def test_candidates_keep_insertion_order_across_buckets() -> None:
    index = _index(
        ("generic-1", ["severity=critical"]),
        ("a-1", ["alertname=A"]),
        ("b-1", ["alertname=B"]),
        ("generic-2", ['alertname!="B"']),
        ("a-2", ['alertname="A"', "team=x"]),
        ("generic-3", []),
    )
    assert _names(index.candidates({"alertname": "A"})) == [
        "generic-1",
        "a-1",
        "generic-2",
        "a-2",
        "generic-3",
    ]
    assert _names(index.candidates({"alertname": "B"})) == [
        "generic-1",
        "b-1",
        "generic-2",
        "generic-3",
    ]
    assert _names(index.candidates({"alertname": "Z"})) == ["generic-1", "generic-2", "generic-3"]
    assert index.match({"alertname": "A", "team": "x"}) == ["a-1", "generic-2", "a-2", "generic-3"]
    assert index.match({"alertname": "A", "severity": "critical"}) == [
        "generic-1",
        "a-1",
        "generic-2",
        "generic-3",
    ]


def test_candidates_return_the_matchers() -> None:
    matchers = parse_matchers(["alertname=A", "team=x"])
    index = AlertnameIndex([("a", matchers)])
    [(item, got)] = index.candidates({"alertname": "A"})
    assert item == "a"
    assert tuple(got) == matchers


def test_literal_alternation_is_indexed_under_each_name() -> None:
    index = _index(
        ("ab", ['alertname=~"A|B"']),
        ("colon", ['alertname=~"job:up|Other_1"']),
        ("c", ["alertname=C"]),
    )
    assert _names(index.candidates({"alertname": "A"})) == ["ab"]
    assert _names(index.candidates({"alertname": "B"})) == ["ab"]
    assert _names(index.candidates({"alertname": "job:up"})) == ["colon"]
    assert _names(index.candidates({"alertname": "Other_1"})) == ["colon"]
    assert _names(index.candidates({"alertname": "C"})) == ["c"]
    # Indexed, not generic: an unrelated alert sees none of them.
    assert index.candidates({"alertname": "AB"}) == []
    assert index.candidates({"alertname": "A|B"}) == []


def test_non_literal_alertname_matchers_are_generic() -> None:
    index = _index(
        ("prefix", ['alertname=~"Pod.*"']),
        ("group", ['alertname=~"(A|B)"']),
        ("not-equal", ['alertname!="A"']),
        ("not-regex", ['alertname!~"A|B"']),
        ("dash", ['alertname=~"A-B"']),
        ("none", ["severity=critical"]),
    )
    everyone = ["prefix", "group", "not-equal", "not-regex", "dash", "none"]
    assert _names(index.candidates({"alertname": "Unrelated"})) == everyone
    assert _names(index.candidates({})) == everyone
    assert index.match({"alertname": "PodDown", "severity": "critical"}) == [
        "prefix",
        "not-equal",
        "not-regex",
        "none",
    ]
    assert index.match({"alertname": "A-B"}) == ["not-equal", "not-regex", "dash"]


def test_entry_is_never_a_duplicate_candidate() -> None:
    index = _index(
        ("repeat", ['alertname=~"A|A|A"']),
        ("two-matchers", ["alertname=A", 'alertname=~"A|B"']),
    )
    assert _names(index.candidates({"alertname": "A"})) == ["repeat", "two-matchers"]
    assert index.match({"alertname": "A"}) == ["repeat", "two-matchers"]
    assert index.match({"alertname": "B"}) == []


def test_absent_alertname_is_the_empty_name() -> None:
    index = _index(
        ("empty", ['alertname=""']),
        ("empty-or-a", ['alertname=~"|A"']),
        ("a", ["alertname=A"]),
    )
    assert index.match({"severity": "critical"}) == ["empty", "empty-or-a"]
    assert index.match({"alertname": ""}) == ["empty", "empty-or-a"]
    assert index.match({"alertname": "A"}) == ["empty-or-a", "a"]


def test_index_narrows_candidates() -> None:
    entries: list[tuple[str, Sequence[Matcher]]] = [
        (f"rb-{i}", parse_matchers([f'alertname="Alert{i}"', "severity=critical"]))
        for i in range(1000)
    ]
    generic: list[tuple[str, Sequence[Matcher]]] = [
        ("generic-ns", parse_matchers(['namespace!~"kube-.*"'])),
        ("generic-pod", parse_matchers(['alertname=~"Pod.*"'])),
        ("generic-all", ()),
    ]
    entries[10:10] = generic[:1]
    entries.extend(generic[1:])
    index = AlertnameIndex(entries)
    assert len(index) == 1003

    labels = {"alertname": "Alert500", "severity": "critical", "namespace": "default"}
    got = index.candidates(labels)
    assert len(got) == 1 + len(generic)
    assert _names(got) == ["generic-ns", "rb-500", "generic-pod", "generic-all"]
    assert index.match(labels) == ["generic-ns", "rb-500", "generic-all"]
    assert index.match(labels) == _linear(entries, labels)
    assert len(index.candidates({"alertname": "Nope"})) == len(generic)


def test_index_without_generic_entries() -> None:
    index = _index(("a", ["alertname=A"]), ("b", ["alertname=B"]), ("a2", ["alertname=A"]))
    assert _names(index.candidates({"alertname": "A"})) == ["a", "a2"]
    assert index.candidates({"alertname": "C"}) == []
    assert index.candidates({}) == []


def test_empty_index() -> None:
    index: AlertnameIndex[str] = AlertnameIndex([])
    assert len(index) == 0
    assert index.candidates({"alertname": "A"}) == []
    assert index.match({"alertname": "A"}) == []


def test_index_is_isolated_from_later_list_changes() -> None:
    matchers = list(parse_matchers(["alertname=A"]))
    index = AlertnameIndex([("a", matchers)])
    matchers.append(Matcher("team", MatchType.EQUAL, "never"))
    assert index.match({"alertname": "A"}) == ["a"]


def test_candidates_result_is_a_fresh_list() -> None:
    index = _index(("g", []), ("a", ["alertname=A"]))
    first = index.candidates({"alertname": "Z"})
    first.clear()
    assert _names(index.candidates({"alertname": "Z"})) == ["g"]


# --- property: the index answers exactly like a linear scan --------------------------------

_ALERTNAMES = ["A", "B", "C", "job:up", ""]
_VALUES = ["A", "B", "C", "job:up", "", "x", "A-B"]
_REGEXES = ["A|B", "A", "B|C|job:up", "|A", "A|A", ".*", ".+", "A.*", "(A|B)", "A-B", "[AB]", ""]


@st.composite
def _matchers(draw: st.DrawFn) -> Matcher:
    name = draw(st.sampled_from(["alertname", "alertname", "alertname", "severity", "team"]))
    op = draw(st.sampled_from(list(MatchType)))
    if op in (MatchType.REGEX, MatchType.NOT_REGEX):
        value = draw(st.sampled_from(_REGEXES))
    else:
        value = draw(st.sampled_from(_VALUES))
    return Matcher(name, op, value)


_entries = st.lists(st.lists(_matchers(), max_size=3), max_size=25).map(
    lambda lists: [(f"rb-{i}", tuple(ms)) for i, ms in enumerate(lists)]
)
_labels = st.dictionaries(
    st.sampled_from(["alertname", "severity", "team"]), st.sampled_from(_VALUES + _ALERTNAMES)
)


@given(_entries, _labels)
def test_index_matches_linear_scan(
    entries: list[tuple[str, Sequence[Matcher]]], labels: dict[str, str]
) -> None:
    index = AlertnameIndex(entries)
    assert len(index) == len(entries)
    assert index.match(labels) == _linear(entries, labels)

    candidates = _names(index.candidates(labels))
    order = [item for item, _ in entries]
    assert len(candidates) == len(set(candidates))
    assert candidates == [item for item in order if item in set(candidates)]
    assert set(index.match(labels)) <= set(candidates)
