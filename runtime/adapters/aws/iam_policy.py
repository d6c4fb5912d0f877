"""The MSK (IAM access control) policy of an identity: a pure function of its permissions.

One document serves both the identity's customer-managed IAM policy and the
session policy of its short-lived STS credentials. It grants:

- ``kafka-cluster:Connect`` and ``DescribeCluster`` on the cluster (plus
  ``WriteDataIdempotently`` when the identity may write anywhere: idempotent
  producers are the default in modern clients);
- for each owned namespace ``ns``: topics ``ns.*`` with DescribeTopic, ReadData,
  WriteData, and consumer groups ``ns.*`` with DescribeGroup, AlterGroup;
- for each grant: the topic (or the prefix's subtree) with DescribeTopic and
  ReadData (read) / WriteData (write) / both (readwrite).

Never granted to users: CreateTopic, DeleteTopic, AlterTopic and the like —
topic administration goes through the fabric, which checks ownership first.

Consumer groups: a reader's group ids must start with the reader's **own**
namespace (``<own-ns>.<anything>``); those are covered by the namespace
statement, so grants never need group rights and one identity cannot join or
reset another's groups.

Size: IAM counts a managed policy's characters without whitespace (limit
6,144). Statements are compressed — every resource needing the same actions
shares one statement, and grants already covered by a broader pattern with
at least the same actions are dropped — and the size is checked before IAM is
called, so an oversize policy is a clear :class:`LimitReached`, never a
half-applied change.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from runtime.domain.errors import LimitReached
from runtime.domain.models import Access
from runtime.domain.ports import Permissions, TopicAccess

# IAM: customer-managed policy document, characters excluding whitespace.
MANAGED_POLICY_MAX_CHARS = 6_144
# STS: session policies may be at most 2,048 characters in plain text, and the
# *packed* (compressed, binary) form together with session tags must fit a
# limit whose exact size STS does not publish ("PackedPolicySize" is only
# reported after the call). We cannot compute the packed size ourselves, so
# the heuristic is: keep the minified plain text within 2,048 characters
# (policies made of repetitive ARNs pack far below that) and translate STS's
# PackedPolicyTooLarge into the same clear LimitReached if it happens anyway.
SESSION_POLICY_MAX_CHARS = 2_048

CONNECT = "kafka-cluster:Connect"
DESCRIBE_CLUSTER = "kafka-cluster:DescribeCluster"
WRITE_IDEMPOTENTLY = "kafka-cluster:WriteDataIdempotently"
DESCRIBE_TOPIC = "kafka-cluster:DescribeTopic"
READ_DATA = "kafka-cluster:ReadData"
WRITE_DATA = "kafka-cluster:WriteData"
DESCRIBE_GROUP = "kafka-cluster:DescribeGroup"
ALTER_GROUP = "kafka-cluster:AlterGroup"

# A stable order for actions inside a statement (deterministic documents).
_ACTION_ORDER = (
    CONNECT,
    DESCRIBE_CLUSTER,
    WRITE_IDEMPOTENTLY,
    DESCRIBE_TOPIC,
    READ_DATA,
    WRITE_DATA,
    DESCRIBE_GROUP,
    ALTER_GROUP,
)

_TOPIC_ACTIONS: dict[Access, frozenset[str]] = {
    Access.READ: frozenset({DESCRIBE_TOPIC, READ_DATA}),
    Access.WRITE: frozenset({DESCRIBE_TOPIC, WRITE_DATA}),
    Access.READWRITE: frozenset({DESCRIBE_TOPIC, READ_DATA, WRITE_DATA}),
}
_OWNED_TOPIC_ACTIONS = _TOPIC_ACTIONS[Access.READWRITE]
_OWNED_GROUP_ACTIONS = frozenset({DESCRIBE_GROUP, ALTER_GROUP})

_CLUSTER_ARN = re.compile(
    r"^arn:(?P<partition>aws[a-z-]*):kafka:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):"
    r"cluster/(?P<name>[^/]+)/(?P<uuid>[^/]+)$"
)


@dataclass(frozen=True)
class ClusterRef:
    """The parts of an MSK cluster ARN that topic and group ARNs are built from."""

    partition: str
    region: str
    account: str
    name: str
    uuid: str

    @property
    def arn(self) -> str:
        return f"{self._prefix}:cluster/{self.name}/{self.uuid}"

    def topic_arn(self, pattern: str) -> str:
        return f"{self._prefix}:topic/{self.name}/{self.uuid}/{pattern}"

    def group_arn(self, pattern: str) -> str:
        return f"{self._prefix}:group/{self.name}/{self.uuid}/{pattern}"

    @property
    def _prefix(self) -> str:
        return f"arn:{self.partition}:kafka:{self.region}:{self.account}"


def parse_cluster_arn(arn: str) -> ClusterRef:
    """``arn:aws:kafka:REGION:ACCOUNT:cluster/NAME/UUID`` → its parts."""
    match = _CLUSTER_ARN.match(arn)
    if not match:
        raise ValueError(
            f"not an MSK cluster ARN: {arn!r} "
            "(expected arn:aws:kafka:REGION:ACCOUNT:cluster/NAME/UUID)"
        )
    return ClusterRef(**match.groupdict())


def grant_patterns(grant: TopicAccess) -> list[str]:
    """The IAM resource patterns (Kafka names, ``*`` wildcard) a grant covers.

    A prefix grant follows the fabric's channel rule (``prefix_covers``):
    ``ns.a.b`` covers ``ns.a.b`` and ``ns.a.b.*`` but not ``ns.a.bc``, so it
    becomes two patterns; a prefix ending in ``.`` is one ``prefix*`` pattern.
    """
    name = grant.kafka_name
    if not grant.is_prefix:
        return [name]
    if name.endswith("."):
        return [f"{name}*"]
    return [name, f"{name}.*"]


def _covers(wide: str, narrow: str) -> bool:
    """Whether pattern ``wide`` (``x*``) matches every name ``narrow`` matches."""
    return wide != narrow and wide.endswith("*") and narrow.startswith(wide[:-1])


def _compress(resources: dict[str, set[str]]) -> dict[frozenset[str], list[str]]:
    """Drop patterns covered by a wider one with at least their actions; group the rest."""
    kept = {
        pattern: actions
        for pattern, actions in resources.items()
        if not any(
            _covers(wide, pattern) and actions <= wide_actions
            for wide, wide_actions in resources.items()
        )
    }
    grouped: dict[frozenset[str], list[str]] = defaultdict(list)
    for pattern, actions in kept.items():
        grouped[frozenset(actions)].append(pattern)
    return grouped


def _ordered(actions: frozenset[str] | set[str]) -> list[str]:
    return [action for action in _ACTION_ORDER if action in actions]


def build_kafka_policy(cluster: ClusterRef, permissions: Permissions) -> dict[str, Any]:
    """The IAM policy document for ``permissions`` on ``cluster`` (deterministic)."""
    topics: dict[str, set[str]] = defaultdict(set)
    groups: dict[str, set[str]] = defaultdict(set)
    for namespace in permissions.owned_namespaces:
        if not namespace or "." in namespace or "*" in namespace:
            # "ns.*" must not also match another namespace's topics.
            raise ValueError(f"namespace {namespace!r} cannot be rendered as an IAM wildcard")
        topics[f"{namespace}.*"] |= _OWNED_TOPIC_ACTIONS
        groups[f"{namespace}.*"] |= _OWNED_GROUP_ACTIONS
    for grant in permissions.grants:
        for pattern in grant_patterns(grant):
            topics[pattern] |= _TOPIC_ACTIONS[grant.access]

    cluster_actions = {CONNECT, DESCRIBE_CLUSTER}
    if any(WRITE_DATA in actions for actions in topics.values()):
        cluster_actions.add(WRITE_IDEMPOTENTLY)
    statements: list[dict[str, Any]] = [
        {"Effect": "Allow", "Action": _ordered(cluster_actions), "Resource": [cluster.arn]}
    ]
    for make_arn, resources in ((cluster.topic_arn, topics), (cluster.group_arn, groups)):
        grouped = _compress(resources)
        # Widest action sets first, then by the sorted actions: a stable order.
        for actions in sorted(grouped, key=lambda a: (-len(a), _ordered(a))):
            statements.append(
                {
                    "Effect": "Allow",
                    "Action": _ordered(actions),
                    "Resource": [make_arn(p) for p in sorted(grouped[actions])],
                }
            )
    return {"Version": "2012-10-17", "Statement": statements}


def minified_json(document: dict[str, Any]) -> str:
    return json.dumps(document, separators=(",", ":"))


def policy_size(document: dict[str, Any]) -> int:
    """The size IAM checks: characters of the document, whitespace not counted."""
    return sum(1 for char in minified_json(document) if not char.isspace())


def ensure_managed_policy_fits(document: dict[str, Any]) -> str:
    """The minified document, or ``LimitReached`` if IAM would refuse its size."""
    size = policy_size(document)
    if size > MANAGED_POLICY_MAX_CHARS:
        raise LimitReached(
            f"policy would be {size:,} characters; IAM allows {MANAGED_POLICY_MAX_CHARS:,}: "
            "use prefix grants to cover several topics",
            details={"size": size, "limit": MANAGED_POLICY_MAX_CHARS},
        )
    return minified_json(document)


def ensure_session_policy_fits(document: dict[str, Any]) -> str:
    """The minified document, or ``LimitReached`` past the session-policy heuristic."""
    size = policy_size(document)
    if size > SESSION_POLICY_MAX_CHARS:
        raise LimitReached(
            f"session policy would be {size:,} characters; STS allows about "
            f"{SESSION_POLICY_MAX_CHARS:,}: use prefix grants to cover several topics, "
            "or use an access key (POST /v1/keys), whose policy may be larger",
            details={"size": size, "limit": SESSION_POLICY_MAX_CHARS},
        )
    return minified_json(document)
