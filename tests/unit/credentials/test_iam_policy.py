"""The pure IAM policy builder: ARNs from the cluster UUID, compression, size limits."""

from __future__ import annotations

import fnmatch
from typing import Any

import pytest

from runtime.adapters.aws.iam_policy import (
    MANAGED_POLICY_MAX_CHARS,
    SESSION_POLICY_MAX_CHARS,
    build_kafka_policy,
    ensure_managed_policy_fits,
    ensure_session_policy_fits,
    grant_patterns,
    parse_cluster_arn,
    policy_size,
)
from runtime.domain.errors import LimitReached
from runtime.domain.models import Access
from runtime.domain.ports import Permissions, TopicAccess

UUID = "5f2c9a1e-1b2c-4d3e-8f90-a1b2c3d4e5f6-2"
CLUSTER_ARN = f"arn:aws:kafka:us-east-1:123456789012:cluster/octopus-prod/{UUID}"
CLUSTER = parse_cluster_arn(CLUSTER_ARN)
TOPIC = f"arn:aws:kafka:us-east-1:123456789012:topic/octopus-prod/{UUID}/"
GROUP = f"arn:aws:kafka:us-east-1:123456789012:group/octopus-prod/{UUID}/"


def rights(document: dict[str, Any], arn_of_name: str) -> set[str]:
    """Actions the document allows on a concrete resource (IAM wildcard matching)."""
    allowed: set[str] = set()
    for statement in document["Statement"]:
        assert statement["Effect"] == "Allow"
        if any(fnmatch.fnmatchcase(arn_of_name, pattern) for pattern in statement["Resource"]):
            allowed |= set(statement["Action"])
    return allowed


def short(actions: set[str]) -> set[str]:
    return {a.removeprefix("kafka-cluster:") for a in actions}


def test_parse_cluster_arn() -> None:
    assert (CLUSTER.partition, CLUSTER.region, CLUSTER.account) == (
        "aws",
        "us-east-1",
        "123456789012",
    )
    assert (CLUSTER.name, CLUSTER.uuid) == (
        "octopus-prod",
        "5f2c9a1e-1b2c-4d3e-8f90-a1b2c3d4e5f6-2",
    )
    assert CLUSTER.arn == CLUSTER_ARN
    gov = parse_cluster_arn("arn:aws-us-gov:kafka:us-gov-west-1:123456789012:cluster/c/u-1")
    assert gov.topic_arn("x.*") == "arn:aws-us-gov:kafka:us-gov-west-1:123456789012:topic/c/u-1/x.*"
    for bad in ("", "arn:aws:kafka:us-east-1:123456789012:topic/c/u/t", "arn:aws:s3:::bucket"):
        with pytest.raises(ValueError, match="not an MSK cluster ARN"):
            parse_cluster_arn(bad)


def test_owned_namespace_rights() -> None:
    doc = build_kafka_policy(CLUSTER, Permissions(owned_namespaces=("ns-a",)))
    assert short(rights(doc, CLUSTER_ARN)) == {
        "Connect",
        "DescribeCluster",
        "WriteDataIdempotently",
    }
    assert short(rights(doc, TOPIC + "ns-a.sensors.temp")) == {
        "DescribeTopic",
        "ReadData",
        "WriteData",
    }
    assert short(rights(doc, GROUP + "ns-a.my-consumers")) == {"DescribeGroup", "AlterGroup"}
    # Nothing on another namespace, even one sharing the name's beginning.
    assert rights(doc, TOPIC + "ns-ab.t") == set()
    assert rights(doc, GROUP + "ns-b.g") == set()
    # Topic administration is never granted to users.
    every_action = {a for s in doc["Statement"] for a in s["Action"]}
    assert not {a for a in every_action if "Create" in a or "Delete" in a or "Alter" in a} - {
        "kafka-cluster:AlterGroup"
    }


def test_topic_and_prefix_grants() -> None:
    perms = Permissions(
        owned_namespaces=("ns-me",),
        grants=(
            TopicAccess(kafka_name="ns-x.readme", is_prefix=False, access=Access.READ),
            TopicAccess(kafka_name="ns-x.writeme", is_prefix=False, access=Access.WRITE),
            TopicAccess(kafka_name="ns-y.chan", is_prefix=True, access=Access.READWRITE),
            TopicAccess(kafka_name="ns-z.", is_prefix=True, access=Access.READ),
        ),
    )
    doc = build_kafka_policy(CLUSTER, perms)
    assert short(rights(doc, TOPIC + "ns-x.readme")) == {"DescribeTopic", "ReadData"}
    assert short(rights(doc, TOPIC + "ns-x.writeme")) == {"DescribeTopic", "WriteData"}
    assert rights(doc, TOPIC + "ns-x.other") == set()
    assert short(rights(doc, TOPIC + "ns-y.chan")) == {"DescribeTopic", "ReadData", "WriteData"}
    assert short(rights(doc, TOPIC + "ns-y.chan.sub.leaf")) == {
        "DescribeTopic",
        "ReadData",
        "WriteData",
    }
    assert rights(doc, TOPIC + "ns-y.channel") == set()  # the channel rule, not a raw prefix
    assert short(rights(doc, TOPIC + "ns-z.anything")) == {"DescribeTopic", "ReadData"}
    # Readers' groups live in their own namespace; grants add no group rights.
    assert rights(doc, GROUP + "ns-x.g") == set()
    assert short(rights(doc, GROUP + "ns-me.g")) == {"DescribeGroup", "AlterGroup"}


def test_grant_patterns() -> None:
    assert grant_patterns(TopicAccess(kafka_name="a.t", is_prefix=False, access=Access.READ)) == [
        "a.t"
    ]
    assert grant_patterns(TopicAccess(kafka_name="a.p", is_prefix=True, access=Access.READ)) == [
        "a.p",
        "a.p.*",
    ]
    assert grant_patterns(TopicAccess(kafka_name="a.", is_prefix=True, access=Access.READ)) == [
        "a.*"
    ]


def test_write_only_reader_gets_no_idempotent_write() -> None:
    perms = Permissions(
        grants=(TopicAccess(kafka_name="n.t", is_prefix=False, access=Access.READ),)
    )
    doc = build_kafka_policy(CLUSTER, perms)
    assert short(rights(doc, CLUSTER_ARN)) == {"Connect", "DescribeCluster"}


def test_statements_are_compressed_by_action_set() -> None:
    grants = (
        *(
            TopicAccess(kafka_name=f"ns-o.t{i}", is_prefix=False, access=Access.READ)
            for i in range(20)
        ),
        TopicAccess(kafka_name="ns-me.covered", is_prefix=False, access=Access.READ),
        TopicAccess(kafka_name="ns-o.t3", is_prefix=False, access=Access.READ),
    )
    doc = build_kafka_policy(
        CLUSTER, Permissions(owned_namespaces=("ns-me", "ns-me2"), grants=grants)
    )
    # cluster, owned topics (RW), read grants, owned groups
    assert len(doc["Statement"]) == 4
    read_stmt = next(s for s in doc["Statement"] if len(s["Resource"]) == 20)
    assert short(set(read_stmt["Action"])) == {"DescribeTopic", "ReadData"}
    all_resources = [r for s in doc["Statement"] for r in s["Resource"]]
    assert TOPIC + "ns-me.covered" not in all_resources  # inside ns-me.* already
    assert len(all_resources) == len(set(all_resources))


def test_same_permissions_give_identical_documents() -> None:
    grants = (
        TopicAccess(kafka_name="b.t", is_prefix=False, access=Access.WRITE),
        TopicAccess(kafka_name="a.t", is_prefix=False, access=Access.READ),
    )
    one = build_kafka_policy(CLUSTER, Permissions(owned_namespaces=("x", "y"), grants=grants))
    two = build_kafka_policy(CLUSTER, Permissions(owned_namespaces=("y", "x"), grants=grants[::-1]))
    assert one == two


@pytest.mark.parametrize("namespace", ["", "a.b", "a*"])
def test_namespace_that_cannot_be_a_wildcard_is_refused(namespace: str) -> None:
    with pytest.raises(ValueError):
        build_kafka_policy(CLUSTER, Permissions(owned_namespaces=(namespace,)))


def many_grants(count: int) -> Permissions:
    return Permissions(
        owned_namespaces=("ns-0123456789ab",),
        grants=tuple(
            TopicAccess(
                kafka_name=f"ns-ffffffffffff.topic-{i:04d}", is_prefix=False, access=Access.READ
            )
            for i in range(count)
        ),
    )


def test_size_counts_characters_without_whitespace() -> None:
    doc = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["a b"]}]}
    assert policy_size(doc) == len(
        '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["ab"]}]}'
    )


def test_managed_policy_size_limit_names_the_numbers() -> None:
    fits = build_kafka_policy(CLUSTER, many_grants(10))
    assert len(ensure_managed_policy_fits(fits)) <= MANAGED_POLICY_MAX_CHARS
    too_big = build_kafka_policy(CLUSTER, many_grants(80))
    size = policy_size(too_big)
    assert size > MANAGED_POLICY_MAX_CHARS
    with pytest.raises(LimitReached) as raised:
        ensure_managed_policy_fits(too_big)
    message = raised.value.message
    assert f"{size:,} characters" in message and "6,144" in message and "prefix grants" in message
    assert raised.value.status == 409


def test_session_policy_size_limit() -> None:
    assert ensure_session_policy_fits(build_kafka_policy(CLUSTER, many_grants(2)))
    with pytest.raises(LimitReached, match=r"STS allows about 2,048"):
        ensure_session_policy_fits(build_kafka_policy(CLUSTER, many_grants(20)))
    assert SESSION_POLICY_MAX_CHARS == 2048
