"""Alertmanager matcher semantics: parsing, quoting, anchoring and absent labels."""

from __future__ import annotations

import pickle
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from remediator.runbooks.matchers import (
    Matcher,
    MatcherError,
    MatchType,
    first_failing,
    parse_matcher,
    parse_matchers,
)

# --- operators -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "labels", "expected"),
    [
        ('alertname="PodCrashLooping"', {"alertname": "PodCrashLooping"}, True),
        ('alertname="PodCrashLooping"', {"alertname": "PodCrashLoopingX"}, False),
        ("team!=infra", {"team": "apps"}, True),
        ("team!=infra", {"team": "infra"}, False),
        ('severity=~"warning|critical"', {"severity": "critical"}, True),
        ('severity=~"warning|critical"', {"severity": "info"}, False),
        ('namespace!~"kube-.*"', {"namespace": "kube-system"}, False),
        ('namespace!~"kube-.*"', {"namespace": "default"}, True),
        ("env=prod", {"env": "prod"}, True),
        ("env=prod", {"env": "Prod"}, False),
    ],
)
def test_each_operator(text: str, labels: dict[str, str], expected: bool) -> None:
    assert parse_matcher(text).matches(labels) is expected


@pytest.mark.parametrize(
    ("text", "op"),
    [
        ("a=b", MatchType.EQUAL),
        ("a!=b", MatchType.NOT_EQUAL),
        ("a=~b", MatchType.REGEX),
        ("a!~b", MatchType.NOT_REGEX),
    ],
)
def test_operator_is_parsed(text: str, op: MatchType) -> None:
    matcher = parse_matcher(text)
    assert (matcher.name, matcher.op, matcher.value) == ("a", op, "b")


def test_match_type_spellings() -> None:
    assert [m.value for m in MatchType] == ["=", "!=", "=~", "!~"]
    assert MatchType.REGEX == "=~"


# --- anchoring -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value", "expected"),
    [
        ('instance=~"web"', "web", True),
        ('instance=~"web"', "web-1", False),
        ('instance=~"web"', "my-web", False),
        ('instance=~"web.*"', "web-1", True),
        ('instance!~"web"', "web-1", True),
        ('instance!~"web"', "web", False),
        # The group matters: unanchored-by-group "^a|b$" would accept these.
        ('severity=~"warning|critical"', "warningx", False),
        ('severity=~"warning|critical"', "xcritical", False),
        # A plain "$" would accept a trailing newline; full matching must not.
        ('instance=~"web"', "web\n", False),
        # Alertmanager's case-insensitive idiom, still anchored.
        ('instance=~"(?i)WEB"', "web", True),
        ('instance=~"(?i)WEB"', "web-1", False),
        ('instance=~"(?i:w)eb"', "Web", True),
        ('instance=~"(?i:w)eb"', "wEB", False),
    ],
)
def test_regex_is_fully_anchored(text: str, value: str, expected: bool) -> None:
    assert parse_matcher(text).matches({"instance": value, "severity": value}) is expected


# --- absent labels -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('foo=""', True),
        ('foo!=""', False),
        ('foo=~".*"', True),
        ('foo!~".+"', True),
        ('foo=~".+"', False),
        ("foo=bar", False),
        ("foo!=bar", True),
    ],
)
def test_absent_label_is_empty_string(text: str, expected: bool) -> None:
    assert parse_matcher(text).matches({"alertname": "X"}) is expected


def test_present_empty_label_behaves_like_absent() -> None:
    matcher = parse_matcher('foo=""')
    assert matcher.matches({"foo": ""})
    assert not matcher.matches({"foo": "x"})


# --- quoting and whitespace ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        (r'a="x\"y"', 'x"y'),
        (r'a="\\"', "\\"),
        (r'a="x\\y"', "x\\y"),
        (r'a="\n\t\r"', "\n\t\r"),
        (r'a="\u00e9"', "\u00e9"),
        (r'a="\U0001F600"', "\U0001f600"),
        ('a="x y"', "x y"),
        ('  a  =  " padded "  ', " padded "),
        ("env=prod", "prod"),
        ("  team  !=  infra  ", "infra"),
        ("a= hello world ", "hello world"),
        ("a=x\\y", "x\\y"),
        ('a=""', ""),
        ("a=", ""),
        ("a=,", ","),
        ('a="x,y=z"', "x,y=z"),
        ('a="line\nbreak"', "line\nbreak"),
        # Unknown escapes stay literal, as in Alertmanager, so regex escapes survive.
        (r'a=~"\d+"', r"\d+"),
        (r'a=~"\.svc$"', r"\.svc$"),
    ],
)
def test_value_unquoting(text: str, value: str) -> None:
    assert parse_matcher(text).value == value


def test_escaped_regex_value_matches() -> None:
    matcher = parse_matcher(r'pod=~"web-\d+"')
    assert matcher.matches({"pod": "web-12"})
    assert not matcher.matches({"pod": "web-x"})


def test_name_is_whitespace_trimmed() -> None:
    matcher = parse_matcher("\t severity =~ critical \n")
    assert matcher == Matcher("severity", MatchType.REGEX, "critical")


# --- errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "empty matcher"),
        ("   ", "empty matcher"),
        ('="x"', "missing label name"),
        ('!~"x"', "missing label name"),
        ('1a="x"', "invalid label name '1a'"),
        ('a-b="x"', "invalid label name 'a-b'"),
        ('"a"="x"', "invalid label name '\"a\"'"),
        ("a b", "missing operator"),
        ("a", "missing operator"),
        ("a==b", "unknown operator '=='"),
        ("a<>b", "unknown operator '<>'"),
        ("a~=b", "unknown operator '~='"),
        ("a!b", "unknown operator '!'"),
        ('a="x', "unterminated quoted value"),
        ('a="', "unterminated quoted value"),
        ('a="x\\"', "unterminated quoted value"),
        ('a="x"y"', "unescaped double quote"),
        ('a="x" y', "unescaped double quote"),
        ('a=x"y', "unquoted value contains a double quote"),
        ('a=x"', "unquoted value contains a double quote"),
        ('a="\\u12"', "invalid \\u escape"),
        ('a="\\UFFFFFFFF"', "code point out of range"),
        ('a=~"(("', "invalid regular expression '(('"),
        ('a!~"[z-a]"', "invalid regular expression '[z-a]'"),
        ('a=~"x{99999999999}"', "invalid regular expression"),
        # Go would compile ^(?:a)|(b)$ and match "ax"; refusing it is safer than half-anchoring.
        ('a=~"a)|(b"', "invalid regular expression 'a)|(b'"),
    ],
)
def test_parse_errors_name_text_and_problem(text: str, problem: str) -> None:
    with pytest.raises(MatcherError) as caught:
        parse_matcher(text)
    message = str(caught.value)
    assert repr(text) in message
    assert problem in message
    assert caught.value.text == text
    assert isinstance(caught.value, ValueError)


def test_constructor_validates_like_the_parser() -> None:
    with pytest.raises(MatcherError, match=r"invalid matcher 'a=~\"\(\"': invalid regular"):
        Matcher("a", MatchType.REGEX, "(")
    with pytest.raises(MatcherError, match="invalid label name '9'"):
        Matcher("9", MatchType.EQUAL, "x")
    # An invalid regex in an equality matcher is just a literal value.
    assert Matcher("a", MatchType.EQUAL, "(").matches({"a": "("})


def test_matcher_error_pickles() -> None:
    with pytest.raises(MatcherError) as caught:
        parse_matcher("a==b")
    clone = pickle.loads(pickle.dumps(caught.value))  # noqa: S301 - our own bytes
    assert str(clone) == str(caught.value)


# --- canonical form ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("  team  !=  infra ", 'team!="infra"'),
        ('alertname="PodCrashLooping"', 'alertname="PodCrashLooping"'),
        (r'a="x\"y"', r'a="x\"y"'),
        (r'a="\\"', r'a="\\"'),
        (r'a=~"\d+"', r'a=~"\\d+"'),
        ('a="tab\there"', r'a="tab\there"'),
        (r'a="\u0007"', r'a="\u0007"'),
        ("a=", 'a=""'),
    ],
)
def test_str_is_canonical(text: str, canonical: str) -> None:
    assert str(parse_matcher(text)) == canonical


_names = st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_]{0,10}", fullmatch=True)
_literal_matchers = st.builds(
    Matcher, _names, st.sampled_from([MatchType.EQUAL, MatchType.NOT_EQUAL]), st.text()
)
_regex_values = st.one_of(
    st.text().map(re.escape),
    st.sampled_from([".*", ".+", "", "a|b", r"\d+", r"x\\y", "[\"']", "(?i)web-[0-9]+"]),
)
_regex_matchers = st.builds(
    Matcher, _names, st.sampled_from([MatchType.REGEX, MatchType.NOT_REGEX]), _regex_values
)


@given(st.one_of(_literal_matchers, _regex_matchers))
def test_str_round_trips(matcher: Matcher) -> None:
    parsed = parse_matcher(str(matcher))
    assert parsed == matcher
    assert str(parsed) == str(matcher)


@given(st.one_of(_literal_matchers, _regex_matchers), st.text())
def test_round_trip_preserves_matching(matcher: Matcher, value: str) -> None:
    labels = {matcher.name: value}
    assert parse_matcher(str(matcher)).matches(labels) == matcher.matches(labels)


@given(st.text())
def test_parser_raises_only_matcher_error(text: str) -> None:
    try:
        matcher = parse_matcher(text)
    except MatcherError:
        return
    assert parse_matcher(str(matcher)) == matcher


@given(st.text())
def test_equal_and_not_equal_are_complements(value: str) -> None:
    labels = {"a": value}
    eq = Matcher("a", MatchType.EQUAL, "x")
    ne = Matcher("a", MatchType.NOT_EQUAL, "x")
    assert eq.matches(labels) != ne.matches(labels)
    rx = Matcher("a", MatchType.REGEX, "x.*")
    nrx = Matcher("a", MatchType.NOT_REGEX, "x.*")
    assert rx.matches(labels) != nrx.matches(labels)


# --- compiled regex cache ------------------------------------------------------------------


def test_regex_compiled_once_and_ignored_by_equality(monkeypatch: pytest.MonkeyPatch) -> None:
    matcher = parse_matcher('job=~"api|web"')
    other = Matcher("job", MatchType.REGEX, "api|web")

    def forbidden(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("regex recompiled while matching")

    for name in ("compile", "fullmatch", "match", "search"):
        monkeypatch.setattr(re, name, forbidden)
    assert matcher.matches({"job": "web"})
    assert not matcher.matches({"job": "webx"})

    assert matcher == other
    assert hash(matcher) == hash(other)
    assert "_regex" not in repr(matcher)
    assert len({matcher, other}) == 1


def test_matcher_is_frozen_and_pickles() -> None:
    matcher = parse_matcher('job=~"api|web"')
    with pytest.raises(AttributeError):
        matcher.value = "x"  # type: ignore[misc]
    clone = pickle.loads(pickle.dumps(matcher))  # noqa: S301 - our own bytes
    assert clone == matcher
    assert clone.matches({"job": "api"})


# --- lists and explain ---------------------------------------------------------------------


def test_parse_matchers_keeps_order() -> None:
    matchers = parse_matchers(["alertname=A", 'severity=~"warning|critical"', "team!=infra"])
    assert [str(m) for m in matchers] == [
        'alertname="A"',
        'severity=~"warning|critical"',
        'team!="infra"',
    ]
    assert isinstance(matchers, tuple)
    assert parse_matchers([]) == ()


def test_parse_matchers_names_the_bad_entry() -> None:
    with pytest.raises(MatcherError, match=r"invalid matcher 'b=~\"\[\"'"):
        parse_matchers(["a=1", 'b=~"["', "c=3"])


def test_parse_matchers_refuses_a_bare_string() -> None:
    with pytest.raises(TypeError, match="not a single string"):
        parse_matchers("alertname=A")


def test_first_failing() -> None:
    matchers = parse_matchers(["alertname=A", "severity=critical", "team!=infra"])
    assert first_failing(matchers, {"alertname": "A", "severity": "critical"}) is None
    assert first_failing(matchers, {"alertname": "B", "severity": "x"}) == matchers[0]
    assert first_failing(matchers, {"alertname": "A", "team": "infra"}) == matchers[1]
    assert (
        first_failing(matchers, {"alertname": "A", "severity": "critical", "team": "infra"})
        == matchers[2]
    )
    assert first_failing((), {}) is None
