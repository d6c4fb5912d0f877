"""Naming rules the client shares with the fabric: topic addresses, channel regexes, groups.

A topic is addressed as ``NS/TOPIC`` (``TOPIC`` alone means the caller's default
namespace). The slash is unambiguous because topic names are dotted hierarchies
(``a.b.c``) and namespaces may contain dots too, so the Kafka name ``ns.a.b`` alone
cannot be split reliably.
"""

from __future__ import annotations

from dataclasses import dataclass

# librdkafka's regex engine knows fewer escapes than Python's ``re.escape`` emits
# (it would escape '-'), so escape exactly the metacharacters and nothing else.
_REGEX_META = set("\\.^$*+?()[]{}|")


@dataclass(frozen=True)
class TopicRef:
    namespace: str
    topic: str

    @property
    def kafka_name(self) -> str:
        return kafka_topic_name(self.namespace, self.topic)

    def __str__(self) -> str:
        return f"{self.namespace}/{self.topic}"


def kafka_topic_name(namespace: str, topic: str) -> str:
    """Topics live in Kafka as ``{namespace}.{topic}``."""
    return f"{namespace}.{topic}"


def parse_topic_address(address: str, default_namespace: str | None) -> TopicRef:
    """``NS/TOPIC`` → (NS, TOPIC); ``TOPIC`` → (default namespace, TOPIC)."""
    namespace, slash, topic = address.partition("/")
    if slash:
        if not namespace or not topic or "/" in topic:
            raise ValueError(f"invalid topic address {address!r}: expected NS/TOPIC or TOPIC")
        return TopicRef(namespace, topic)
    if not address:
        raise ValueError("empty topic address")
    if default_namespace is None:
        raise ValueError(f"topic {address!r} has no namespace and no default namespace is known")
    return TopicRef(default_namespace, address)


def regex_escape(text: str) -> str:
    """Escape ``text`` for a librdkafka (POSIX-style) regular expression."""
    return "".join(f"\\{c}" if c in _REGEX_META else c for c in text)


def prefix_subscription_regex(namespace: str, prefix: str) -> str:
    """The regex subscription for a channel subtree, following the fabric's prefix rule.

    ``a.b`` covers ``a.b`` and ``a.b.*`` (not ``a.bc``); ``a.b.`` only the subtree
    below; ``""`` the whole namespace. confluent-kafka treats a topic starting
    with ``^`` as a regex.
    """
    base = regex_escape(f"{namespace}.")
    if prefix == "":
        return f"^{base}.+$"
    if prefix.endswith("."):
        return f"^{base}{regex_escape(prefix)}.+$"
    return f"^{base}{regex_escape(prefix)}(\\..+)?$"


def prefix_covers(prefix: str, topic: str) -> bool:
    """Python twin of :func:`prefix_subscription_regex`, for client-side checks."""
    if prefix == "":
        return True
    if prefix.endswith("."):
        return topic.startswith(prefix) and len(topic) > len(prefix)
    return topic == prefix or topic.startswith(prefix + ".")


def consumer_group_id(default_namespace: str, group: str) -> str:
    """Group ids are prefixed with the caller's namespace.

    On MSK the caller's IAM policy allows consumer groups by namespace wildcard
    (``group/CLUSTER/UUID/<ns>.*``), so a group outside that pattern would be
    refused by the broker; locally the same rule keeps groups of different users apart.
    """
    if group.startswith(f"{default_namespace}."):
        return group
    return f"{default_namespace}.{group}"
