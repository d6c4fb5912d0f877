"""remove, update and status against moto (functions, IAM, ...) and the Stubber (mappings)."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import pytest
from botocore.exceptions import ClientError
from botocore.stub import ANY

from runtime.adapters.aws.lambda_triggers import LambdaTriggerPlatform, TriggerDeployFailed
from runtime.adapters.aws.waiters import WaitTimedOut
from runtime.domain.models import Trigger, TriggerState
from tests.unit.aws_triggers.conftest import PREFIX, AwsWorld, zip_of
from tests.unit.aws_triggers.support import (
    FILTER,
    USER_CODE,
    function_trigger,
    mapping_reply,
    mapping_uuid,
    webhook_trigger,
)
from tests.unit.aws_triggers.test_deploy import (
    assert_nothing_left,
    expect_create_mapping,
    queue_arn,
)


def deployed(aws: AwsWorld, trigger: Trigger, code: bytes | None = None) -> None:
    if trigger.kind == "function":
        expect_create_mapping(
            aws,
            trigger,
            StartingPosition="AT_TIMESTAMP",
            StartingPositionTimestamp=ANY,
            BatchSize=10,
            MaximumBatchingWindowInSeconds=0,
            FilterCriteria=None,
            MaximumRetryAttempts=1,
        )
    else:
        expect_create_mapping(aws, trigger)
    aws.platform.deploy(trigger, secret="k" if trigger.kind == "webhook" else None, code=code)
    aws.stubber.assert_no_pending_responses()


def expect_listing(aws: AwsWorld, trigger: Trigger, *mappings: dict[str, Any]) -> None:
    aws.stubber.add_response(
        "list_event_source_mappings",
        {"EventSourceMappings": list(mappings)},
        {"FunctionName": f"{PREFIX}{trigger.trigger_id}"},
    )


def not_found(aws: AwsWorld, operation: str) -> None:
    aws.stubber.add_client_error(
        operation,
        service_error_code="ResourceNotFoundException",
        service_message="The resource you requested does not exist.",
        http_status_code=404,
    )


def test_remove_deletes_every_piece_and_waits_for_the_mapping(aws: AwsWorld) -> None:
    trigger = webhook_trigger()
    deployed(aws, trigger)
    uuid = mapping_uuid(trigger)
    expect_listing(aws, trigger, mapping_reply(trigger, "Enabled"))
    aws.stubber.add_response(
        "delete_event_source_mapping", mapping_reply(trigger, "Deleting"), {"UUID": uuid}
    )
    aws.stubber.add_response(
        "get_event_source_mapping", mapping_reply(trigger, "Deleting"), {"UUID": uuid}
    )
    not_found(aws, "get_event_source_mapping")

    aws.platform.remove(trigger)

    aws.stubber.assert_no_pending_responses()
    assert aws.sleeps == [0.5]  # one wait while the mapping was still Deleting
    assert_nothing_left(aws, trigger)
    # The secret is gone for good (no recovery window that would block a new trigger).
    with pytest.raises(ClientError, match="ResourceNotFoundException"):
        aws.secrets.describe_secret(SecretId=f"octopus/triggers/test/{trigger.trigger_id}")


def test_remove_is_idempotent_when_pieces_are_missing(aws: AwsWorld) -> None:
    trigger = function_trigger()
    expect_listing(aws, trigger)  # no mapping at all

    aws.platform.remove(trigger)  # nothing exists: nothing to complain about

    aws.stubber.assert_no_pending_responses()
    assert_nothing_left(aws, trigger)


def test_remove_reports_a_mapping_that_never_goes_away(aws: AwsWorld) -> None:
    trigger = webhook_trigger()
    uuid = mapping_uuid(trigger)
    expect_listing(aws, trigger, mapping_reply(trigger, "Enabled"))
    aws.stubber.add_response(
        "delete_event_source_mapping", mapping_reply(trigger, "Deleting"), {"UUID": uuid}
    )
    for _ in range(20):
        aws.stubber.add_response(
            "get_event_source_mapping", mapping_reply(trigger, "Deleting"), {"UUID": uuid}
        )

    with pytest.raises(WaitTimedOut, match="to be deleted"):
        aws.platform.remove(trigger)

    assert sum(aws.sleeps) <= 20.0


def test_update_changes_filters_batching_and_enabled_on_the_mapping(aws: AwsWorld) -> None:
    trigger = webhook_trigger()
    changed_spec = {**trigger.spec, "filters": [], "batch_size": 7, "batching_window_seconds": 0}
    changed = trigger.model_copy(update={"spec": changed_spec, "enabled": False})
    expect_listing(aws, trigger, mapping_reply(trigger, "Enabled"))
    aws.stubber.add_response(
        "update_event_source_mapping",
        mapping_reply(trigger, "Updating"),
        {
            "UUID": mapping_uuid(trigger),
            "FunctionName": f"{PREFIX}{trigger.trigger_id}",
            "Enabled": False,
            "BatchSize": 7,
            "MaximumBatchingWindowInSeconds": 0,
            "FilterCriteria": {"Filters": []},  # clears the filters
            "MaximumRetryAttempts": 3,
            "DestinationConfig": {"OnFailure": {"Destination": queue_arn(trigger)}},
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
        },
    )

    status = aws.platform.update(changed, code=None)

    aws.stubber.assert_no_pending_responses()
    assert status.state == TriggerState.DISABLED.value


def test_update_with_code_replaces_the_zip_and_waits(aws: AwsWorld) -> None:
    original = function_trigger()
    deployed(aws, original, code=USER_CODE)
    new_code = zip_of({"app.py": "def handler(event, context):\n    return {'v': 2}\n"})
    spec = dict(original.spec)
    spec["function"] = {
        **spec["function"],
        "code_sha256": hashlib.sha256(new_code).hexdigest(),
        "code_size": len(new_code),
    }
    changed = original.model_copy(update={"spec": spec})
    expect_listing(aws, original, mapping_reply(original, "Enabled"))
    aws.stubber.add_response(
        "update_event_source_mapping", mapping_reply(original, "Enabled"), None
    )

    status = aws.platform.update(changed, code=new_code)

    config = aws.lambda_.moto.get_function_configuration(
        FunctionName=f"{PREFIX}{original.trigger_id}"
    )
    assert config["CodeSha256"] == base64.b64encode(hashlib.sha256(new_code).digest()).decode()
    assert status.state == TriggerState.ACTIVE.value


def test_update_of_a_trigger_without_its_mapping_fails_visibly(aws: AwsWorld) -> None:
    trigger = webhook_trigger()
    expect_listing(aws, trigger)
    with pytest.raises(TriggerDeployFailed, match=r"mapping .* is missing"):
        aws.platform.update(trigger, code=None)


@pytest.mark.parametrize(
    ("mapping", "enabled", "state", "error"),
    [
        ({"State": "Creating"}, True, "creating", None),
        ({"State": "Enabling"}, True, "creating", None),
        ({"State": "Enabled", "LastProcessingResult": "OK"}, True, "active", None),
        (
            {"State": "Enabled", "LastProcessingResult": "No records processed"},
            True,
            "active",
            None,
        ),
        (
            {"State": "Enabled", "LastProcessingResult": "PROBLEM: Connection error."},
            True,
            "failing",
            "PROBLEM: Connection error.",
        ),
        ({"State": "Disabled", "StateTransitionReason": "USER_INITIATED"}, False, "disabled", None),
        (
            {"State": "Disabled", "StateTransitionReason": "Lambda lost access to the cluster"},
            True,
            "failing",
            "Lambda lost access to the cluster",
        ),
        (
            {"State": "Disabling", "StateTransitionReason": "USER_INITIATED"},
            False,
            "disabled",
            None,
        ),
        ({"State": "Updating"}, True, "active", None),
        ({"State": "Updating"}, False, "disabled", None),
        ({"State": "Deleting"}, True, "deleting", None),
        ({"State": "Exploding"}, True, "failing", "unexpected event source mapping state"),
    ],
)
def test_mapping_states_become_trigger_states(
    mapping: dict[str, Any], enabled: bool, state: str, error: str | None
) -> None:
    trigger = webhook_trigger().model_copy(update={"enabled": enabled})
    status = LambdaTriggerPlatform._status_from(mapping, trigger)
    assert status.state == state
    if error is None:
        assert status.last_error is None
    else:
        assert status.last_error is not None and error in status.last_error


def test_status_reads_function_and_mapping(aws: AwsWorld) -> None:
    trigger = webhook_trigger()
    assert aws.platform.status(trigger).model_dump() == {
        "state": "failing",
        "last_error": "the function is missing",
    }
    deployed(aws, trigger)
    expect_listing(aws, trigger, mapping_reply(trigger, "Enabled", LastProcessingResult="OK"))
    assert aws.platform.status(trigger).state == "active"
    expect_listing(aws, trigger)
    assert aws.platform.status(trigger).model_dump() == {
        "state": "failing",
        "last_error": "the event source mapping is missing",
    }


def test_filters_reach_the_mapping_as_lambda_patterns(aws: AwsWorld) -> None:
    trigger = webhook_trigger(filters=[FILTER, '{"value":[{"prefix":"ERR"}]}'])
    expect_create_mapping(
        aws,
        trigger,
        FilterCriteria={
            "Filters": [{"Pattern": FILTER}, {"Pattern": '{"value":[{"prefix":"ERR"}]}'}]
        },
    )
    aws.platform.deploy(trigger, secret="k", code=None)
    aws.stubber.assert_no_pending_responses()
