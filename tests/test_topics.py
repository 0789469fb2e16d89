"""Topics, patterns and the matcher, with NATS subject rules."""

from __future__ import annotations

import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hms_bus.topics import TopicIndex, matches, validate_pattern, validate_topic


@pytest.mark.parametrize(
    ("pattern", "topic", "expected"),
    [
        ("payments.*", "payments.sent", True),
        ("payments.*", "payments", False),
        ("payments.*", "payments.sent.eu", False),
        ("payments.>", "payments.sent.eu", True),
        ("payments.>", "payments", False),
        ("*.error", "bank.error", True),
        ("*.error", "bank.api.error", False),
        ("alerts.*", "alerts.error_storm", True),
        (">", "anything.at.all", True),
        ("*", "one", True),
        ("*", "one.two", False),
        ("a.*.c", "a.b.c", True),
        ("payments.sent", "payments.sent", True),
        ("payments.sent", "payments.failed", False),
    ],
)
def test_matches_by_whole_tokens(pattern, topic, expected):
    assert matches(pattern, topic) is expected


BAD_PATTERNS = [
    ("pay*", ValueError, r"wildcard inside the token 'pay\*'.*'pay.\*' \(one token\) or 'pay.>'"),
    ("payments.sent*", ValueError, r"use 'payments.\*' \(one token\) or 'payments.>'"),
    ("a..b", ValueError, r"empty token.*use 'a.b'"),
    (".a", ValueError, "empty token"),
    ("a.", ValueError, "empty token"),
    ("", ValueError, "empty"),
    ("a b", ValueError, "whitespace.*'a.b'"),
    ("a.>.b", ValueError, r"'>' before the last token.*use 'a.>'"),
    (None, TypeError, "must be a str.*None"),
    (42, TypeError, "must be a str.*42 of type int"),
]


@pytest.mark.parametrize(("pattern", "exc", "message"), BAD_PATTERNS)
def test_bad_pattern_says_what_and_how(pattern, exc, message):
    with pytest.raises(exc, match=message):
        validate_pattern(pattern)


BAD_TOPICS = [
    ("payments.*", ValueError, r"wildcard \('\*'\).*only in subscribe\(\) patterns"),
    ("payments.>", ValueError, "wildcard"),
    ("pay*", ValueError, "wildcard"),
    ("a..b", ValueError, "empty token"),
    ("a\tb", ValueError, "whitespace"),
    (b"payments.sent", TypeError, "must be a str"),
]


@pytest.mark.parametrize(("topic", "exc", "message"), BAD_TOPICS)
def test_bad_topic_says_what_and_how(topic, exc, message):
    with pytest.raises(exc, match=message):
        validate_topic(topic)


# -- property tests against a simple reference ---------------------------------

token = st.sampled_from(["a", "b", "c", "pay", "sent"])
topic_st = st.lists(token, min_size=1, max_size=5).map(".".join)
pattern_tokens = st.lists(st.one_of(token, st.just("*")), min_size=1, max_size=5)
pattern_st = st.one_of(
    pattern_tokens.map(".".join),
    pattern_tokens.map(lambda ts: ".".join([*ts, ">"])),
    st.just(">"),
)


def reference_match(pattern: str, topic: str) -> bool:
    """A deliberately plain restatement of the token rules."""
    p, t = pattern.split("."), topic.split(".")
    if p[-1] == ">":
        head = p[:-1]
        return len(t) > len(head) and all(x in ("*", y) for x, y in zip(head, t, strict=False))
    return len(p) == len(t) and all(x in ("*", y) for x, y in zip(p, t, strict=True))


@given(pattern_st, topic_st)
def test_matcher_agrees_with_reference(pattern, topic):
    assert matches(validate_pattern(pattern), validate_topic(topic)) == reference_match(
        pattern, topic
    )


@given(st.lists(pattern_st, max_size=12), st.lists(topic_st, min_size=1, max_size=6))
def test_index_finds_exactly_the_matching_patterns_in_order(patterns, topics):
    index: TopicIndex[int] = TopicIndex()
    for i, p in enumerate(patterns):
        index.add(p, i)
    for t in topics:
        expected = tuple(i for i, p in enumerate(patterns) if reference_match(p, t))
        assert index.lookup(t) == expected


@given(st.lists(pattern_st, min_size=1, max_size=12), st.data())
def test_index_remove_forgets_only_that_subscription(patterns, data):
    index: TopicIndex[int] = TopicIndex()
    keys = [index.add(p, i) for i, p in enumerate(patterns)]
    gone = data.draw(st.sets(st.integers(0, len(patterns) - 1)))
    for i in gone:
        index.remove(patterns[i], keys[i])
        index.remove(patterns[i], keys[i])  # twice is harmless
    assert len(index) == len(patterns) - len(gone)
    topic = data.draw(topic_st)
    expected = tuple(
        i for i, p in enumerate(patterns) if i not in gone and reference_match(p, topic)
    )
    assert index.lookup(topic) == expected


def test_index_cache_is_refreshed_after_subscribe():
    index: TopicIndex[str] = TopicIndex()
    index.add("a.*", "first")
    assert index.lookup("a.b") == ("first",)
    index.add("a.b", "second")
    assert index.lookup("a.b") == ("first", "second")


def test_trailing_dot_in_a_pattern_suggests_both_wildcards():
    with pytest.raises(ValueError, match=r"use 'payments.\*' \(one more token\) or 'payments.>'"):
        validate_pattern("payments.")


# -- deep topics and patterns: no recursion per token ----------------------------


@st.composite
def deep_pair(draw):
    """A topic and a pattern about as deep as the recursion limit, or deeper."""
    depth = draw(st.integers(900, 3_000))
    topic = ["a"] * depth
    for i in draw(st.lists(st.integers(0, depth - 1), max_size=4)):
        topic[i] = "b"
    pattern = list(topic)
    for i in draw(st.lists(st.integers(0, depth - 1), max_size=6)):
        pattern[i] = draw(st.sampled_from(["*", "a", "b"]))
    cut = draw(st.integers(-2, 2))
    if cut < 0:
        pattern = pattern[:cut]
    elif cut > 0:
        pattern += ["a"] * cut
    if draw(st.booleans()):
        pattern = pattern[: draw(st.integers(0, len(pattern) - 1))] + [">"]
    return ".".join(pattern), ".".join(topic)


@settings(max_examples=40, deadline=None)
@given(st.lists(deep_pair(), min_size=1, max_size=4))
def test_deep_patterns_match_and_index_like_the_reference(pairs):
    index: TopicIndex[int] = TopicIndex()
    for i, (pattern, _) in enumerate(pairs):
        index.add(validate_pattern(pattern), i)
    for _, topic in pairs:
        validate_topic(topic)
        expected = tuple(i for i, (p, _) in enumerate(pairs) if reference_match(p, topic))
        assert index.lookup(topic) == expected
        for i, (pattern, _) in enumerate(pairs):
            assert matches(pattern, topic) == (i in expected)
    for i, (pattern, _) in enumerate(pairs):
        index.remove(pattern, i + 1)
    assert len(index) == 0 and index.lookup(pairs[0][1]) == ()


def test_index_lookup_is_iterative_even_past_the_recursion_limit():
    depth = sys.getrecursionlimit() * 3
    index: TopicIndex[str] = TopicIndex()
    index.add(".".join(["*"] * depth), "stars")
    index.add(".".join(["x"] * (depth - 1) + [">"]), "rest")
    assert index.lookup(".".join(["x"] * depth)) == ("stars", "rest")


@pytest.mark.parametrize("topic", ["zahlungen.überwiesen", "alerts.🔥", "支付.已发送", "a-b_c.d:e"])
def test_printable_unicode_topics_are_fine(topic):
    assert validate_topic(topic) == topic
    assert validate_pattern(topic) == topic


def test_str_subclasses_become_plain_str():
    class Topic(str):
        pass

    assert type(validate_topic(Topic("x.sub"))) is str
    assert type(validate_pattern(Topic("x.*"))) is str
