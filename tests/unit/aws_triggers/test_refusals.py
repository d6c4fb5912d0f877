"""What config does not allow is refused before any AWS call, even if the core forgot."""

from __future__ import annotations

from typing import Any

import pytest

from runtime.adapters.aws.lambda_triggers import LambdaTriggerPlatform
from runtime.adapters.aws.trigger_naming import InvalidTriggerName
from runtime.config import RuntimeSettings
from runtime.domain.errors import FabricError, Unprocessable
from runtime.domain.models import Trigger
from runtime.domain.ports import TriggerPlatform
from tests.unit.aws_triggers.conftest import CLUSTER_ARN, PREFIX, ROLE_PATH
from tests.unit.aws_triggers.support import USER_CODE, function_trigger, webhook_trigger


class NoCallsAllowed:
    """A client that fails the test on any use: the refusal must come first."""

    def __init__(self, service: str) -> None:
        self.service = service

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"{self.service}.{name} was called before the refusal")


def settings(**overrides: Any) -> RuntimeSettings:
    fields: dict[str, Any] = {
        "stage": "test",
        "region": "us-east-1",
        "cluster_mode": "provisioned",
        "identity": "globus",
        "cluster_arn": CLUSTER_ARN,
        "trigger_function_prefix": PREFIX,
        "trigger_role_path": ROLE_PATH,
        "trigger_boundary_arn": "arn:aws:iam::123456789012:policy/boundary",
        "trigger_template_bucket": "bucket",
        "trigger_template_key": "key.zip",
    }
    fields.update(overrides)
    return RuntimeSettings(**fields)


def untouchable(config: RuntimeSettings | None = None) -> LambdaTriggerPlatform:
    return LambdaTriggerPlatform(
        config or settings(),
        lambda_client=NoCallsAllowed("lambda"),
        iam_client=NoCallsAllowed("iam"),
        logs_client=NoCallsAllowed("logs"),
        secrets_client=NoCallsAllowed("secretsmanager"),
        sqs_client=NoCallsAllowed("sqs"),
        sleep=lambda _: pytest.fail("no waiting before a refusal"),
    )


def with_function(trigger: Trigger, **changes: Any) -> Trigger:
    spec = dict(trigger.spec)
    spec["function"] = {**spec["function"], **changes}
    return trigger.model_copy(update={"spec": spec})


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"runtime": "python2.7"}, "function.runtime"),
        ({"runtime": "provided.al2023"}, "function.runtime"),
        ({"role": "arn:aws:iam::123456789012:role/admin"}, "function.role"),
        ({"layers": ["arn:aws:lambda:us-east-1:1:layer:evil:1"]}, "function.layers"),
        ({"vpc_config": {"SubnetIds": ["subnet-1"]}}, "function.vpc_config"),
        ({"memory_mb": 10_240}, "function.memory_mb"),
        ({"timeout_seconds": 900}, "function.timeout_seconds"),
        ({"environment": {"AWS_LAMBDA_EXEC_WRAPPER": "/tmp/x"}}, "function.environment"),
        ({"environment": {"OCTOPUS_DLQ_URL": "https://x"}}, "function.environment"),
        ({"environment": {"_HANDLER": "y"}}, "function.environment"),
        ({"environment": {"LD_PRELOAD": "/tmp/x.so"}}, "function.environment"),
        ({"handler": "../../etc/passwd"}, "function.handler"),
    ],
)
def test_function_settings_outside_config_are_refused_before_any_call(
    changes: dict[str, Any], field: str
) -> None:
    trigger = with_function(function_trigger(), **changes)

    with pytest.raises(Unprocessable) as raised:
        untouchable().deploy(trigger, secret=None, code=USER_CODE)

    assert raised.value.message.startswith(field)


def test_role_or_layers_at_the_top_of_the_spec_are_refused() -> None:
    trigger = webhook_trigger()
    for extra in ({"role": "arn:aws:iam::1:role/admin"}, {"layers": ["x"]}):
        bad = trigger.model_copy(update={"spec": {**trigger.spec, **extra}})
        with pytest.raises(Unprocessable):
            untouchable().deploy(bad, secret="k", code=None)


def test_code_that_is_not_the_validated_code_is_refused() -> None:
    with pytest.raises(Unprocessable, match="digest"):
        untouchable().deploy(function_trigger(), secret=None, code=b"PK-something-else")


def test_batching_above_the_limits_and_bad_filters_are_refused() -> None:
    with pytest.raises(Unprocessable, match="batch_size"):
        untouchable().deploy(webhook_trigger(batch_size=100_000), secret="k", code=None)
    with pytest.raises(Unprocessable, match="filters"):
        untouchable().deploy(
            webhook_trigger(filters=['{"key":{"a":["b"]}}']), secret="k", code=None
        )


def test_private_webhook_urls_are_refused_on_aws() -> None:
    trigger = webhook_trigger()
    spec = {**trigger.spec, "webhook": {"url": "http://169.254.169.254/latest", "headers": {}}}
    with pytest.raises(Unprocessable, match="webhook"):
        untouchable().deploy(trigger.model_copy(update={"spec": spec}), secret="k", code=None)


def test_no_boundary_configured_means_no_deploy() -> None:
    with pytest.raises(FabricError, match="boundary"):
        untouchable(settings(trigger_boundary_arn="")).deploy(
            webhook_trigger(), secret="k", code=None
        )


def test_names_come_from_the_id_and_must_fit_aws_limits() -> None:
    with pytest.raises(InvalidTriggerName):
        untouchable().deploy(webhook_trigger(trigger_id="../admin"), secret="k", code=None)
    long_prefix = settings(trigger_function_prefix="p" * 50)
    with pytest.raises(InvalidTriggerName, match="64"):
        untouchable(long_prefix).deploy(webhook_trigger(), secret="k", code=None)


def test_it_is_a_trigger_platform_and_constructs_without_calling_aws() -> None:
    # wiring.py builds it at start-up with settings only: clients are made on first use.
    platform: TriggerPlatform = LambdaTriggerPlatform(settings())
    assert isinstance(platform, LambdaTriggerPlatform)
