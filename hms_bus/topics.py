"""Topics and patterns, with the token rules of NATS subjects.

A topic is a dot-separated list of tokens: ``payments.sent``. A pattern may
use two wildcards, each a whole token: ``*`` matches exactly one token and
``>`` matches one or more trailing tokens (only as the last token). So
``payments.*`` matches ``payments.sent`` but not ``payments.sent.eu``, which
``payments.>`` does match. Matching by whole tokens, as real brokers do, is
what lets an index find the subscribers of a topic without trying every
pattern.

Tokens are printable text in any script (``alerts.🔥``), with no whitespace
of any kind and no NUL, control or other invisible characters. Topics and
patterns may have any number of tokens: nothing here recurses per token.
"""

from __future__ import annotations

from typing import Generic, TypeVar

__all__ = ["validate_topic", "validate_pattern", "matches", "TopicIndex"]

T = TypeVar("T")


def _describe(ch: str) -> str:
    """``ch`` as a reader can see it: its repr, code point and Unicode name."""
    import unicodedata  # only on the error path

    name = unicodedata.name(ch, "")
    return f"{ch!r} (U+{ord(ch):04X}{' ' + name if name else ''})"


def _tokens(text: object, what: str) -> list[str]:
    if not isinstance(text, str):
        raise TypeError(
            f"{what} must be a str such as 'payments.sent', got {text!r} "
            f"of type {type(text).__name__}"
        )
    if not text:
        raise ValueError(f"{what} is empty; use dotted tokens such as 'payments.sent'")
    # NATS subjects may hold no whitespace; control and other invisible
    # characters (NUL, zero-width space...) would make topics that look equal differ.
    if " " in text or not text.isprintable():
        bad = next(ch for ch in text if ch == " " or not ch.isprintable())
        if bad.isspace():
            words = (tok for part in text.split() for tok in part.split("."))
            fixed = ".".join(tok for tok in words if tok) or "payments.sent"
            raise ValueError(
                f"{what} {text!r} contains whitespace {_describe(bad)}; use dots "
                f"between tokens, e.g. {fixed!r}"
            )
        raise ValueError(
            f"{what} {text!r} contains {_describe(bad)}, which is not a printable "
            f"character; topics are printable text such as 'payments.sent': remove it"
        )
    tokens = text.split(".")
    if "" in tokens:
        fixed = ".".join(t for t in tokens if t) or "payments"
        hint = repr(fixed)
        if what == "pattern" and tokens[-1] == "":
            hint = f"{fixed + '.*'!r} (one more token) or {fixed + '.>'!r} (the rest)"
        raise ValueError(
            f"{what} {text!r} has an empty token (a leading, trailing or double dot); use {hint}"
        )
    return tokens


_topic_cache: dict[str, str] = {}


def validate_topic(topic: object) -> str:
    """Return ``topic`` if it is a valid topic to publish on, else raise.

    Published topics name one subject, so they may not hold wildcards. A
    topic is printable text without whitespace: ``TypeError`` for a non-str,
    ``ValueError`` naming the bad character or token otherwise.
    """
    try:  # the hot path: a topic seen before
        return _topic_cache[topic]  # type: ignore[index]
    except (KeyError, TypeError):  # TypeError: unhashable, checked below
        pass
    tokens = _tokens(topic, "topic")
    for tok in tokens:
        if "*" in tok or ">" in tok:
            raise ValueError(
                f"topic {topic!r} has a wildcard ({tok!r}); publish to a concrete "
                f"topic such as 'payments.sent' and use wildcards only in "
                f"subscribe() patterns"
            )
    topic = str(topic)  # a str subclass becomes a plain str
    if len(_topic_cache) > 10_000:
        _topic_cache.clear()
    _topic_cache[topic] = topic
    return topic


def validate_pattern(pattern: object) -> str:
    """Return ``pattern`` if it is a valid subscription pattern, else raise."""
    tokens = _tokens(pattern, "pattern")
    for i, tok in enumerate(tokens):
        if tok in ("*", ">"):
            if tok == ">" and i != len(tokens) - 1:
                fixed = ".".join(tokens[: i + 1])
                raise ValueError(
                    f"pattern {pattern!r} has '>' before the last token; '>' "
                    f"matches the rest of the topic, so use {fixed!r}"
                )
            continue
        if "*" in tok or ">" in tok:
            # With no literal token before it, build the example on the stem:
            # 'pay*' -> 'pay.*', which shows that wildcards stand for tokens.
            stem = tok.replace("*", "").replace(">", "") or "payments"
            prefix = ".".join(tokens[:i]) or stem
            one, rest = f"{prefix}.*", f"{prefix}.>"
            raise ValueError(
                f"pattern {pattern!r} has a wildcard inside the token {tok!r}; "
                f"wildcards are whole tokens: use {one!r} (one token) or "
                f"{rest!r} (the rest)"
            )
    return str(pattern)


def matches(pattern: str, topic: str) -> bool:
    """Tell whether ``topic`` matches ``pattern`` (both assumed valid)."""
    pt = pattern.split(".")
    tt = topic.split(".")
    for i, p in enumerate(pt):
        if p == ">":
            return len(tt) > i
        if i >= len(tt) or (p != "*" and p != tt[i]):
            return False
    return len(pt) == len(tt)


class _Node:
    __slots__ = ("children", "here", "rest")

    def __init__(self) -> None:
        self.children: dict[str, _Node] = {}
        self.here: dict[int, object] = {}  # subscriptions ending at this node
        self.rest: dict[int, object] = {}  # subscriptions ending in '>' here


class TopicIndex(Generic[T]):
    """Finds the items subscribed to a topic, in the order they were added.

    A tree keyed by token (``*`` is a key like any other) answers a lookup in
    time that depends on the topic's length, not on how many patterns exist;
    answers are cached per topic until the next add or remove.
    """

    def __init__(self) -> None:
        self._root = _Node()
        self._order = 0
        self._cache: dict[str, tuple[T, ...]] = {}
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def add(self, pattern: str, item: T) -> int:
        """Index ``item`` under ``pattern``; return a key for :meth:`remove`."""
        node = self._root
        tokens = pattern.split(".")
        for tok in tokens[:-1]:
            node = node.children.setdefault(tok, _Node())
        self._order += 1
        if tokens[-1] == ">":
            node.rest[self._order] = item
        else:
            node = node.children.setdefault(tokens[-1], _Node())
            node.here[self._order] = item
        self._cache.clear()
        self._count += 1
        return self._order

    def remove(self, pattern: str, key: int) -> None:
        """Drop the item added under ``pattern`` with ``key`` (idempotent)."""
        path = [self._root]
        tokens = pattern.split(".")
        for tok in tokens[:-1] if tokens[-1] == ">" else tokens:
            nxt = path[-1].children.get(tok)
            if nxt is None:
                return
            path.append(nxt)
        store = path[-1].rest if tokens[-1] == ">" else path[-1].here
        if store.pop(key, None) is None:
            return
        self._count -= 1
        self._cache.clear()
        # Prune empty branches so that churn does not grow the tree.
        for depth in range(len(path) - 1, 0, -1):
            node = path[depth]
            if node.children or node.here or node.rest:
                break
            del path[depth - 1].children[tokens[depth - 1]]

    def lookup(self, topic: str) -> tuple[T, ...]:
        """The items whose pattern matches ``topic``, oldest first."""
        try:
            return self._cache[topic]
        except KeyError:
            pass
        tokens = topic.split(".")
        end = len(tokens)
        found: dict[int, T] = {}
        # Depth first with an explicit stack, not recursion: a topic or pattern
        # of any length is looked up without touching the recursion limit.
        stack = [(self._root, 0)]
        while stack:
            node, i = stack.pop()
            if i == end:
                found.update(node.here)  # type: ignore[arg-type]
                continue
            if node.rest:
                found.update(node.rest)  # type: ignore[arg-type]
            children = node.children
            if children:
                for key in (tokens[i], "*"):
                    child = children.get(key)
                    if child is not None:
                        stack.append((child, i + 1))
        result = tuple(found[k] for k in sorted(found))
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[topic] = result
        return result
