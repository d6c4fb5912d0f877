"""Triggers as the core stores them, and the mapping replies Lambda gives."""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime
from typing import Any

from runtime.domain.models import Trigger
from runtime.domain.triggers import FunctionSpec, TriggerSpec, WebhookSpec
from tests.unit.aws_triggers.conftest import ACCOUNT, CLUSTER_ARN, PREFIX, REGION, zip_of

OWNER = "b2f0e1c4-8d7a-4c0e-9f3a-2a1b3c4d5e6f"
OWNER_NAMESPACE = "ns-2a1b3c4d5e6f"
NAMESPACE = "beamline"
TOPIC = "detector.frames"
KAFKA_TOPIC = f"{NAMESPACE}.{TOPIC}"
USER_CODE = zip_of({"app.py": "def handler(event, context):\n    return {}\n"})
FILTER = '{"value":{"status":["done"]}}'


def webhook_trigger(trigger_id: str = "0a1b2c3d4e5f60718293", **spec: Any) -> Trigger:
    fields: dict[str, Any] = {
        "name": "frames",
        "filters": [FILTER],
        "batch_size": 50,
        "batching_window_seconds": 2,
        "starting_position": "LATEST",
        "max_retries": 3,
        "consumer_group": f"{OWNER_NAMESPACE}.trigger-{trigger_id}",
        "webhook": WebhookSpec(url="https://hooks.example.org/in", headers={"X-Team": "a"}),
    }
    fields.update(spec)
    return Trigger(
        trigger_id=trigger_id,
        owner=OWNER,
        namespace=NAMESPACE,
        topic=TOPIC,
        kind="webhook",
        spec=TriggerSpec(**fields).model_dump(mode="json"),
    )


def function_trigger(
    trigger_id: str = "f0e1d2c3b4a596877869", code: bytes = USER_CODE, **function: Any
) -> Trigger:
    settings: dict[str, Any] = {
        "runtime": "python3.13",
        "handler": "app.handler",
        "memory_mb": 256,
        "timeout_seconds": 30,
        "environment": {"MODE": "fast"},
        "code_sha256": hashlib.sha256(code).hexdigest(),
        "code_size": len(code),
    }
    settings.update(function)
    spec = TriggerSpec(
        name="fn",
        filters=[],
        batch_size=10,
        batching_window_seconds=0,
        starting_position="AT_TIMESTAMP",
        starting_timestamp=datetime(2026, 1, 2, 3, 4, 5),
        max_retries=1,
        consumer_group=f"{OWNER_NAMESPACE}.trigger-{trigger_id}",
        function=FunctionSpec.model_construct(**settings),
    )
    return Trigger(
        trigger_id=trigger_id,
        owner=OWNER,
        namespace=NAMESPACE,
        topic=TOPIC,
        kind="function",
        spec=spec.model_dump(mode="json"),
    )


def mapping_uuid(trigger: Trigger) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, trigger.trigger_id))


def mapping_reply(trigger: Trigger, state: str = "Creating", **extra: Any) -> dict[str, Any]:
    reply: dict[str, Any] = {
        "UUID": mapping_uuid(trigger),
        "EventSourceArn": CLUSTER_ARN,
        "FunctionArn": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{PREFIX}{trigger.trigger_id}",
        "State": state,
        "StateTransitionReason": "USER_INITIATED",
        "Topics": [KAFKA_TOPIC],
    }
    reply.update(extra)
    return reply
