"""Function triggers run user code locally in a subprocess; logs come back through the API."""

from __future__ import annotations

import base64
import json
from typing import Any

from tests.integration.triggers.conftest import (
    RunnerProcess,
    TriggerFabric,
    wait_for,
    zip_base64,
)

HANDLER = """
import base64, json, os

def handler(event, context):
    assert event["eventSource"] == "aws:kafka"
    for key, records in sorted(event["records"].items()):
        for record in records:
            value = json.loads(base64.b64decode(record["value"]))
            print(f"{os.environ['GREETING']} {key} offset={record['offset']} n={value['n']}")
    print("remaining_ms_positive", context.get_remaining_time_in_millis() > 0)
    return {"batchItemFailures": []}
"""

SLOW_HANDLER = """
import time

def handler(event, context):
    print("starting a long job")
    time.sleep(30)
"""

GREEDY_HANDLER = """
def handler(event, context):
    hog = bytearray(400 * 1024 * 1024)
    print("allocated", len(hog))
"""


def function_trigger(
    fabric: TriggerFabric, topic: str, code: str, **function: Any
) -> dict[str, Any]:
    return fabric.create_trigger(
        name="fn",
        namespace=fabric.owner.namespace,
        topic=topic,
        kind="function",
        starting_position="TRIM_HORIZON",
        max_retries=0,
        function={
            "runtime": "python3.13",
            "handler": "app.handler",
            "code_base64": zip_base64({"app.py": code}),
            **function,
        },
    )


def log_messages(fabric: TriggerFabric, trigger_id: str) -> list[str]:
    return [line["message"] for line in fabric.all_pages(f"/v1/triggers/{trigger_id}/logs")]


def test_function_runs_user_code_and_its_logs_are_readable(
    trigger_fabric: TriggerFabric, runner: RunnerProcess
) -> None:
    topic = trigger_fabric.create_topic()
    created = function_trigger(
        trigger_fabric, topic, HANDLER, environment={"GREETING": "hello"}, timeout_seconds=10
    )
    assert created["webhook_secret"] is None
    trigger_id = created["trigger_id"]
    trigger_fabric.wait_state(trigger_id, "active")
    trigger_fabric.produce(topic, [{"n": n} for n in range(5)])

    def all_seen() -> bool:
        return sum("hello " in m for m in log_messages(trigger_fabric, trigger_id)) >= 5

    wait_for(all_seen, 60, "the function's output in its logs")
    messages = log_messages(trigger_fabric, trigger_id)
    numbers = sorted(int(m.rsplit("n=", 1)[1]) for m in messages if m.startswith("hello "))
    assert numbers == [0, 1, 2, 3, 4]
    assert any(m.startswith("START RequestId: ") for m in messages)
    assert any(m.startswith("END RequestId: ") for m in messages)
    assert any(m.startswith("REPORT RequestId: ") and "Memory Size: 128 MB" in m for m in messages)
    assert "remaining_ms_positive True" in messages
    assert trigger_fabric.all_pages(f"/v1/triggers/{trigger_id}/dead-letters") == []

    # ?since= in the future: nothing; pagination walks every line exactly once.
    future = trigger_fabric.client.get(
        f"/v1/triggers/{trigger_id}/logs",
        params={"since": "2999-01-01T00:00:00Z"},
        headers=trigger_fabric.owner.headers,
    )
    assert future.status_code == 200 and future.json()["items"] == []
    page = trigger_fabric.client.get(
        f"/v1/triggers/{trigger_id}/logs", params={"limit": 2}, headers=trigger_fabric.owner.headers
    ).json()
    assert len(page["items"]) == 2 and page["next_cursor"]


def test_function_past_its_timeout_is_reported(
    trigger_fabric: TriggerFabric, runner: RunnerProcess
) -> None:
    topic = trigger_fabric.create_topic()
    created = function_trigger(trigger_fabric, topic, SLOW_HANDLER, timeout_seconds=1)
    trigger_id = created["trigger_id"]
    trigger_fabric.wait_state(trigger_id, "active")
    trigger_fabric.produce(topic, [{"n": 1}])

    path = f"/v1/triggers/{trigger_id}/dead-letters"
    wait_for(lambda: bool(trigger_fabric.all_pages(path)), 60, "the timed-out event's dead letter")
    letter = trigger_fabric.all_pages(path)[0]
    assert "Task timed out after 1.00 seconds" in letter["reason"]
    assert json.loads(base64.b64decode(letter["value"])) == {"n": 1}
    messages = log_messages(trigger_fabric, trigger_id)
    assert "starting a long job" in messages
    assert any("Task timed out after 1.00 seconds" in m for m in messages)
    found = trigger_fabric.get_trigger(trigger_id)
    assert "Task timed out" in (found["last_error"] or "")


def test_function_over_its_memory_cap_fails(
    trigger_fabric: TriggerFabric, runner: RunnerProcess
) -> None:
    topic = trigger_fabric.create_topic()
    created = function_trigger(trigger_fabric, topic, GREEDY_HANDLER, memory_mb=128)
    trigger_id = created["trigger_id"]
    trigger_fabric.wait_state(trigger_id, "active")
    trigger_fabric.produce(topic, [{"n": 1}])

    path = f"/v1/triggers/{trigger_id}/dead-letters"
    wait_for(lambda: bool(trigger_fabric.all_pages(path)), 60, "the dead letter")
    assert "memory limit of 128 MB exceeded" in trigger_fabric.all_pages(path)[0]["reason"]
    assert not any(m.startswith("allocated") for m in log_messages(trigger_fabric, trigger_id))


def test_code_update_takes_effect(trigger_fabric: TriggerFabric, runner: RunnerProcess) -> None:
    topic = trigger_fabric.create_topic()
    created = function_trigger(
        trigger_fabric, topic, "def handler(e, c):\n    print('version one')\n"
    )
    trigger_id = created["trigger_id"]
    trigger_fabric.wait_state(trigger_id, "active")
    reply = trigger_fabric.client.patch(
        f"/v1/triggers/{trigger_id}",
        json={
            "function": {
                "code_base64": zip_base64(
                    {"app.py": "def handler(e, c):\n    print('version two')\n"}
                )
            }
        },
        headers=trigger_fabric.owner.headers,
    )
    assert reply.status_code == 200, reply.text
    assert reply.json()["function"]["code_sha256"] != created["function"]["code_sha256"]
    trigger_fabric.wait_state(trigger_id, "active")
    trigger_fabric.produce(topic, [{"n": 1}])
    wait_for(
        lambda: "version two" in log_messages(trigger_fabric, trigger_id), 60, "the new code's log"
    )
    assert "version one" not in log_messages(trigger_fabric, trigger_id)
