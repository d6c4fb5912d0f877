"""The stage configuration model: every cdk.json stage parses; mistakes give one clear message."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runtime.config import RuntimeSettings
from stacks.config import StageConfigError, load_stage_config, parse_stage

pytestmark = pytest.mark.infra

STAGES = json.loads((Path(__file__).resolve().parents[2] / "cdk.json").read_text())["context"][
    "stages"
]


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_every_stage_in_cdk_json_parses(stage: str) -> None:
    config = parse_stage(stage, STAGES[stage])
    settings = config.runtime_settings(
        cluster_arn="arn:aws:kafka:eu-west-1:123456789012:cluster/x/y"
    )
    assert settings.cluster_mode == config.cluster.mode
    assert settings.registry == "dynamodb" and settings.credentials == "iam"
    assert settings.identity == "apigw-authorizer"
    # The settings survive the trip through the function environment.
    assert RuntimeSettings.from_env(settings.to_env()) == settings


def test_the_stages_cover_both_cluster_modes_and_public_access() -> None:
    modes = {parse_stage(s, b).cluster.mode for s, b in STAGES.items()}
    assert modes == {"provisioned", "serverless"}
    assert any(parse_stage(s, b).cluster.public_access for s, b in STAGES.items())
    assert parse_stage("prod", STAGES["prod"]).retain


@pytest.mark.parametrize(
    ("block", "expected"),
    [
        (
            {"cluster": {"mode": "kraft"}},
            "stages.dev.cluster.mode = 'kraft': Input should be 'provisioned' or 'serverless'",
        ),
        (
            {"cluster": {"mode": "serverless", "public_access": True}},
            "stages.dev.cluster.public_access = True: public access needs mode 'provisioned'",
        ),
        (
            {"cluster": {"brokr_count": 3}},
            "stages.dev.cluster.brokr_count = 3: unknown key; allowed keys here: broker_count,",
        ),
        (
            {"logs": {"retention_days": 10}},
            "stages.dev.logs.retention_days = 10: must be one of the CloudWatch Logs retention",
        ),
        (
            {"api": {"authorizer_cache_seconds": 600}},
            "stages.dev.api.authorizer_cache_seconds = 600: Input should be less than or equal",
        ),
        (
            {"api": {"cors_origins": ["*"]}},
            "stages.dev.api.cors_origins = ['*']: '*' is not an origin",
        ),
        (
            {"cluster": {"mode": "provisioned", "broker_count": 3}},
            "stages.dev.cluster.broker_count = 3: must be a multiple of network.max_azs (2)",
        ),
        (
            {"cluster": {"min_insync_replicas": 3, "default_replication_factor": 2}},
            "stages.dev.cluster.min_insync_replicas = 3: must not exceed default_replication",
        ),
        (
            {"quotas": {"topics_per_identity": 0}},
            "stages.dev.quotas.topics_per_identity = 0: Input should be greater than or equal to 1",
        ),
        (
            {"trigger_limits": {"max_memory_mb": 64}},
            "stages.dev.trigger_limits.max_memory_mb = 64: Input should be greater than or equal",
        ),
        (
            {"globus": {"client_id": "not-a-uuid"}},
            "stages.dev.globus.client_id = 'not-a-uuid': must be a Globus client id",
        ),
        (
            {"network": {"vpc_id": "vpc-0123456789abcdef0"}},
            "stages.dev.network.vpc_id = 'vpc-0123456789abcdef0': an existing VPC is looked up",
        ),
        (
            {"removal_policy": "keep"},
            "stages.dev.removal_policy = 'keep': Input should be 'retain' or 'destroy'",
        ),
        (
            {"events": {"enabled": True, "allowed_cidrs": ["192.0.2.0/24"]}},
            "stages.dev.events.certificate_arn = None: events.enabled needs an ACM certificate",
        ),
        (
            {"events": {"idle_timeout_seconds": 30}},
            "stages.dev.events.idle_timeout_seconds = 30: Input should be greater than or equal",
        ),
        (
            {"events": {"cpu": 512, "memory_mib": 512}},
            "stages.dev.events.memory_mib = 512: Fargate with cpu 512 takes 1024-4096 MiB",
        ),
        (
            {"events": {"certificate_arn": "arn:aws:iam::123456789012:server-certificate/x"}},
            "stages.dev.events.certificate_arn = 'arn:aws:iam::123456789012:server-certificate/x': "
            "must be an ACM certificate ARN",
        ),
        (
            {"events": {"allowed_cidrs": ["10.0.0.1/8"]}},
            "stages.dev.events.allowed_cidrs = ['10.0.0.1/8']: '10.0.0.1/8' is not a network",
        ),
        (
            {"storage_events": [{"bucket": "data", "topic": "ns.t", "events": ["copied"]}]},
            "stages.dev.storage_events.0.events.0 = 'copied': Input should be 'created', 'removed'",
        ),
        (
            {"storage_events": [{"bucket": "data", "topic": "no-namespace"}]},
            "stages.dev.storage_events.0.topic = 'no-namespace': must be a Kafka topic name",
        ),
        (
            {
                "storage_events": [
                    {"bucket": "data", "topic": "ns.a", "events": ["created"]},
                    {"bucket": "data", "topic": "ns.b", "prefix": "raw/", "events": ["created"]},
                ]
            },
            "stages.dev.storage_events.1.prefix = 'raw/': overlaps prefix '' of another route",
        ),
        (
            {"topics": {"default_replication_factor": 2}},
            "stages.dev.topics.default_replication_factor = 2: not settable here",
        ),
    ],
)
def test_a_wrong_value_fails_with_one_message_naming_key_value_and_rule(
    block: dict[str, object], expected: str
) -> None:
    with pytest.raises(StageConfigError) as caught:
        parse_stage("dev", block)
    message = str(caught.value)
    assert message.startswith("Invalid stage configuration in cdk.json: ")
    assert expected in message
    assert "\n" not in message  # one problem, one line: no pydantic dump


def test_several_mistakes_are_listed_together() -> None:
    with pytest.raises(StageConfigError) as caught:
        parse_stage("dev", {"cluster": {"mode": "x"}, "api": {"waf_rate_limit": 1}})
    lines = str(caught.value).splitlines()
    assert lines[0] == "Invalid stage configuration in cdk.json (2 problems):"
    assert any("stages.dev.cluster.mode = 'x'" in line for line in lines)
    assert any("stages.dev.api.waf_rate_limit = 1" in line for line in lines)


def test_an_unknown_stage_names_the_defined_ones() -> None:
    with pytest.raises(StageConfigError, match=r"stage 'qa' .* defined stages: dev, prod, staging"):
        load_stage_config({"stage": "qa", "stages": STAGES})


def test_default_stage_is_dev() -> None:
    assert load_stage_config({"stages": STAGES}).stage == "dev"
