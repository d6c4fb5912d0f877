"""Where a new trigger starts reading: LATEST, TRIM_HORIZON, AT_TIMESTAMP."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from tests.integration.triggers.conftest import (
    RunnerProcess,
    TriggerFabric,
    received_values,
    wait_for,
)
from tests.integration.triggers_delivery.conftest import WebhookReceiver


def test_starting_positions(
    trigger_fabric: TriggerFabric, runner: RunnerProcess, webhook_server: WebhookReceiver
) -> None:
    fabric = trigger_fabric
    topic = fabric.create_topic()
    fabric.produce(topic, [{"phase": "old", "n": n} for n in range(5)])
    time.sleep(0.2)
    boundary = datetime.now(UTC)
    time.sleep(0.2)
    fabric.produce(topic, [{"phase": "middle", "n": n} for n in range(3)])

    def create(position: str, tag: str, **extra: Any) -> str:
        created = fabric.create_trigger(
            name=position.lower(),
            namespace=fabric.owner.namespace,
            topic=topic,
            kind="webhook",
            starting_position=position,
            webhook={"url": f"{webhook_server.url}?{tag}"},
            **extra,
        )
        trigger_id = str(created["trigger_id"])
        fabric.wait_state(trigger_id, "active")
        return trigger_id

    create("LATEST", "latest")
    create("TRIM_HORIZON", "trim")
    create("AT_TIMESTAMP", "at", starting_timestamp=boundary.isoformat())
    fabric.produce(topic, [{"phase": "new", "n": n} for n in range(2)])

    def phases(tag: str) -> list[str]:
        return sorted(
            record["value"]["phase"]
            for request in webhook_server.successful()
            if request.path.endswith(f"?{tag}")
            for record in request.json()["records"]
        )

    wait_for(lambda: len(received_values(webhook_server)) >= 2 + 10 + 5, 60, "deliveries")
    time.sleep(1.0)
    assert phases("latest") == ["new"] * 2
    assert phases("trim") == ["middle"] * 3 + ["new"] * 2 + ["old"] * 5
    assert phases("at") == ["middle"] * 3 + ["new"] * 2
