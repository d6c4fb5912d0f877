"""Function code from the code bucket: presigned POSTs, reading uploads back, S3 deploys."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.stub import ANY

from runtime.adapters.aws.code_uploads import S3CodeUploads
from runtime.adapters.aws.lambda_triggers import LambdaTriggerPlatform
from runtime.domain.code_uploads import upload_key
from runtime.domain.errors import NotFound, PayloadTooLarge, Unprocessable
from runtime.domain.models import TriggerState
from runtime.domain.ports import UploadedCode
from runtime.domain.triggers import check_zip
from tests.unit.aws_triggers.conftest import PREFIX, REGION, AwsWorld, zip_of
from tests.unit.aws_triggers.support import OWNER, USER_CODE, function_trigger, mapping_reply
from tests.unit.aws_triggers.test_deploy import assert_nothing_left, expect_create_mapping

CODE_BUCKET = "octopus-trigger-code-test"
UPLOAD_ID = "0123456789abcdef0123456789abcdef"
OTHER = "9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a"
BIG_CODE = zip_of(
    {"app.py": "def handler(event, context):\n    return {}\n", "data.txt": "x" * 200_000}
)


@pytest.fixture
def code_world(aws: AwsWorld) -> tuple[AwsWorld, LambdaTriggerPlatform, Any, list[dict[str, Any]]]:
    """The moto world plus the code bucket; create_function/update_function_code recorded."""
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=CODE_BUCKET)
    settings = aws.settings.model_copy(update={"trigger_code_bucket": CODE_BUCKET})
    calls: list[dict[str, Any]] = []
    router = aws.lambda_
    real_create = router.create_function
    real_update = router.moto.update_function_code

    def create_function(**kwargs: Any) -> Any:
        calls.append({"op": "create_function", **kwargs})
        return real_create(**kwargs)

    def update_function_code(**kwargs: Any) -> Any:
        calls.append({"op": "update_function_code", **kwargs})
        return real_update(**kwargs)

    router.create_function = create_function  # type: ignore[method-assign]
    router.update_function_code = update_function_code  # type: ignore[attr-defined]
    platform = LambdaTriggerPlatform(
        settings,
        lambda_client=router,
        iam_client=aws.iam,
        logs_client=aws.logs,
        secrets_client=aws.secrets,
        sqs_client=aws.sqs,
        sleep=lambda _s: None,
        clock=lambda: aws.now[0],
    )
    return aws, platform, s3, calls


def uploads(s3: Any, aws: AwsWorld, max_bytes: int = 1024 * 1024) -> S3CodeUploads:
    settings = aws.settings.model_copy(
        update={"trigger_code_bucket": CODE_BUCKET, "trigger_code_max_bytes": max_bytes}
    )
    return S3CodeUploads(settings, s3_client=s3)


def uploaded(s3: Any, body: bytes, owner: str = OWNER) -> UploadedCode:
    key = upload_key(owner, UPLOAD_ID)
    s3.put_object(Bucket=CODE_BUCKET, Key=key, Body=body)
    return UploadedCode(key=key, sha256=hashlib.sha256(body).hexdigest(), size=len(body))


def test_the_presigned_post_is_for_the_callers_key_size_range_and_15_minutes(
    code_world: tuple[AwsWorld, LambdaTriggerPlatform, Any, list[dict[str, Any]]],
) -> None:
    aws, _, s3, _ = code_world
    before = datetime.now(UTC)
    ticket = uploads(s3, aws, max_bytes=5_000_000).start(OWNER, UPLOAD_ID)

    assert ticket.method == "POST"
    assert CODE_BUCKET in ticket.url
    assert ticket.fields["key"] == f"uploads/{OWNER}/{UPLOAD_ID}.zip"
    assert ticket.fields["Content-Type"] == "application/zip"
    assert ticket.max_bytes == 5_000_000
    policy = json.loads(base64.b64decode(ticket.fields["policy"]))
    conditions = policy["conditions"]
    assert ["content-length-range", 1, 5_000_000] in conditions
    assert {"bucket": CODE_BUCKET} in conditions
    assert {"key": f"uploads/{OWNER}/{UPLOAD_ID}.zip"} in conditions
    assert {"Content-Type": "application/zip"} in conditions
    expiration = datetime.fromisoformat(policy["expiration"].replace("Z", "+00:00"))
    assert 14 * 60 <= (expiration - before).total_seconds() <= 15 * 60 + 5
    assert 14 * 60 <= (ticket.expires_at - before).total_seconds() <= 15 * 60 + 5


def test_reading_an_upload_back_is_per_owner_and_capped(
    code_world: tuple[AwsWorld, LambdaTriggerPlatform, Any, list[dict[str, Any]]],
) -> None:
    aws, _, s3, _ = code_world
    store = uploads(s3, aws, max_bytes=300_000)
    uploaded(s3, BIG_CODE)
    with store.open(OWNER, UPLOAD_ID) as handle:
        check_zip(handle, "app.handler")
        handle.seek(0)
        assert hashlib.sha256(handle.read()).hexdigest() == hashlib.sha256(BIG_CODE).hexdigest()
    with pytest.raises(NotFound), store.open(OTHER, UPLOAD_ID):
        pass
    with pytest.raises(NotFound), store.open(OWNER, "f" * 32):
        pass
    with pytest.raises(NotFound), store.open(OWNER, "../other"):
        pass
    with pytest.raises(PayloadTooLarge), uploads(s3, aws, max_bytes=100_000).open(OWNER, UPLOAD_ID):
        pass


def test_function_deploy_from_an_upload_passes_the_bucket_and_key_to_lambda(
    code_world: tuple[AwsWorld, LambdaTriggerPlatform, Any, list[dict[str, Any]]],
) -> None:
    aws, platform, s3, calls = code_world
    code = uploaded(s3, BIG_CODE)
    trigger = function_trigger(code=BIG_CODE)
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

    platform.deploy(trigger, secret=None, code=code)

    aws.stubber.assert_no_pending_responses()
    (created,) = [c for c in calls if c["op"] == "create_function"]
    assert created["Code"] == {"S3Bucket": CODE_BUCKET, "S3Key": f"uploads/{OWNER}/{UPLOAD_ID}.zip"}
    config = aws.lambda_.moto.get_function_configuration(
        FunctionName=f"{PREFIX}{trigger.trigger_id}"
    )
    assert config["CodeSha256"] == base64.b64encode(hashlib.sha256(BIG_CODE).digest()).decode()


def test_an_upload_replaced_after_the_check_is_refused_and_rolled_back(
    code_world: tuple[AwsWorld, LambdaTriggerPlatform, Any, list[dict[str, Any]]],
) -> None:
    aws, platform, s3, _ = code_world
    checked = uploaded(s3, BIG_CODE)
    uploaded(s3, zip_of({"app.py": "def handler(e, c):\n    raise SystemExit\n"}))  # swapped
    trigger = function_trigger(code=BIG_CODE)

    with pytest.raises(Unprocessable) as refused:
        platform.deploy(trigger, secret=None, code=checked)

    assert refused.value.details["field"] == "function.code_upload_id"
    assert "changed after it was checked" in refused.value.message
    assert_nothing_left(aws, trigger)


def test_uploads_outside_the_prefix_or_with_another_digest_are_refused_before_aws(
    code_world: tuple[AwsWorld, LambdaTriggerPlatform, Any, list[dict[str, Any]]],
) -> None:
    aws, platform, _, calls = code_world
    trigger = function_trigger(code=BIG_CODE)
    digest = hashlib.sha256(BIG_CODE).hexdigest()
    for code in (
        UploadedCode(key="runtime-bundle.zip", sha256=digest, size=1),
        UploadedCode(key=f"uploads/{OWNER}/../../x.zip", sha256=digest, size=1),
        UploadedCode(key=upload_key(OWNER, UPLOAD_ID), sha256="0" * 64, size=1),
    ):
        with pytest.raises(Unprocessable) as refused:
            platform.deploy(trigger, secret=None, code=code)
        assert refused.value.details["field"] == "function.code_upload_id"
    assert calls == []
    assert aws.lambda_.moto.list_functions()["Functions"] == []


def test_update_from_an_upload_uses_update_function_code_with_the_bucket_and_key(
    code_world: tuple[AwsWorld, LambdaTriggerPlatform, Any, list[dict[str, Any]]],
) -> None:
    aws, platform, s3, calls = code_world
    original = function_trigger()
    expect_create_mapping(
        aws,
        original,
        StartingPosition="AT_TIMESTAMP",
        StartingPositionTimestamp=ANY,
        BatchSize=10,
        MaximumBatchingWindowInSeconds=0,
        FilterCriteria=None,
        MaximumRetryAttempts=1,
    )
    platform.deploy(original, secret=None, code=USER_CODE)
    code = uploaded(s3, BIG_CODE)
    changed = function_trigger(code=BIG_CODE)
    aws.stubber.add_response(
        "list_event_source_mappings",
        {"EventSourceMappings": [mapping_reply(original, "Enabled")]},
        {"FunctionName": f"{PREFIX}{original.trigger_id}"},
    )
    aws.stubber.add_response(
        "update_event_source_mapping", mapping_reply(original, "Enabled"), None
    )

    status = platform.update(changed, code=code)

    (update,) = [c for c in calls if c["op"] == "update_function_code"]
    assert update == {
        "op": "update_function_code",
        "FunctionName": f"{PREFIX}{original.trigger_id}",
        "S3Bucket": CODE_BUCKET,
        "S3Key": f"uploads/{OWNER}/{UPLOAD_ID}.zip",
    }
    assert status.state == TriggerState.ACTIVE.value
