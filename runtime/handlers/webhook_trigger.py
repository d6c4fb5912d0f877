"""Template Lambda function for webhook triggers (no user code).

Fed by the trigger's MSK event source mapping (which has already applied the trigger's
filters), it POSTs the batch's records to the trigger's URL, signed, and answers with a
partial batch response (Powertools ``BatchProcessor(EventType.Kafka)``):

- delivered records: done;
- permanent failures (4xx, refused URL): sent to the dead-letter queue with the reason, then
  *not* reported as failed, so the offset moves on;
- retryable failures (5xx, timeouts, connection errors after the retry budget), and records
  whose dead letter could not be written: reported as failed, Lambda delivers them again.

Configuration, all environment variables set by the control plane:

``OCTOPUS_WEBHOOK_URL``            the URL (required)
``OCTOPUS_WEBHOOK_HEADERS``        JSON object of static headers (optional)
``OCTOPUS_WEBHOOK_SECRET_ARN``     Secrets Manager ARN whose SecretString is the HMAC key
``OCTOPUS_DLQ_URL``                SQS queue URL for dead letters
``OCTOPUS_TRIGGER_ID``             the trigger's id (goes into dead letters)
``OCTOPUS_WEBHOOK_MODE``           ``record`` (one POST per record, default) or ``batch``
``OCTOPUS_WEBHOOK_MAX_ATTEMPTS``   default 5; ``..._BASE_DELAY_S`` 0.2, ``..._MAX_DELAY_S`` 5,
                                   ``..._MAX_TOTAL_S`` 30, ``..._TIMEOUT_S`` 10
``OCTOPUS_WEBHOOK_ALLOW_PRIVATE``  ``true`` only in local mode (loopback/private URLs)
``OCTOPUS_WEBHOOK_SECRET_MAX_AGE_S`` how long the fetched secret is cached, default 900 s (one
                                   fetch per container in practice; rotation is seen within it)
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, cast

import boto3
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.kafka_event import KafkaEventRecord
from aws_lambda_powertools.utilities.parameters import SecretsProvider

from runtime.domain.errors import BadRequest
from runtime.triggers.batch import (
    BatchOutcome,
    FailureKind,
    RecordFailure,
    dead_letter_for,
    process_batch,
    process_records,
)
from runtime.triggers.event_shape import parse_msk_event
from runtime.triggers.webhook import (
    RetryPolicy,
    WebhookConfig,
    WebhookDeliverer,
    validate_static_headers,
    validate_webhook_url,
)

logger = logging.getLogger("octopus.webhook_trigger")

ENV_URL = "OCTOPUS_WEBHOOK_URL"
ENV_HEADERS = "OCTOPUS_WEBHOOK_HEADERS"
ENV_SECRET_ARN = "OCTOPUS_WEBHOOK_SECRET_ARN"  # noqa: S105 - a variable name
ENV_DLQ_URL = "OCTOPUS_DLQ_URL"
ENV_TRIGGER_ID = "OCTOPUS_TRIGGER_ID"
ENV_MODE = "OCTOPUS_WEBHOOK_MODE"
ENV_ALLOW_PRIVATE = "OCTOPUS_WEBHOOK_ALLOW_PRIVATE"
ENV_SECRET_MAX_AGE = "OCTOPUS_WEBHOOK_SECRET_MAX_AGE_S"  # noqa: S105
ENV_PREFIX_RETRY = "OCTOPUS_WEBHOOK_"
# Time kept back at the end of an invocation so the response is returned before the timeout.
INVOCATION_MARGIN_S = 2.0

DeliveryMode = Literal["record", "batch"]


class InvalidTriggerConfig(BadRequest):
    code = "invalid_trigger_config"


def _float_env(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise InvalidTriggerConfig(f"{name} must be a number, got {raw!r}") from exc


@dataclass(frozen=True)
class WebhookTriggerSettings:
    url: str
    static_headers: dict[str, str] = field(default_factory=dict)
    secret_arn: str = ""
    dlq_url: str = ""
    trigger_id: str = ""
    mode: DeliveryMode = "record"
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    allow_private: bool = False
    secret_max_age_s: int = 900

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> WebhookTriggerSettings:
        url = env.get(ENV_URL, "")
        if not url:
            raise InvalidTriggerConfig(f"{ENV_URL} is not set")
        try:
            headers = json.loads(env.get(ENV_HEADERS) or "{}")
        except ValueError as exc:
            raise InvalidTriggerConfig(f"{ENV_HEADERS} is not valid JSON: {exc}") from exc
        if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
            raise InvalidTriggerConfig(f"{ENV_HEADERS} must be a JSON object of strings")
        validate_static_headers(headers)
        mode = env.get(ENV_MODE, "record") or "record"
        if mode not in ("record", "batch"):
            raise InvalidTriggerConfig(f"{ENV_MODE} must be 'record' or 'batch', got {mode!r}")
        allow_private = env.get(ENV_ALLOW_PRIVATE, "false").lower() in ("1", "true", "yes")
        validate_webhook_url(url, allow_private=allow_private, resolve=False)
        retry = RetryPolicy(
            max_attempts=int(_float_env(env, f"{ENV_PREFIX_RETRY}MAX_ATTEMPTS", 5)),
            base_delay_s=_float_env(env, f"{ENV_PREFIX_RETRY}BASE_DELAY_S", 0.2),
            max_delay_s=_float_env(env, f"{ENV_PREFIX_RETRY}MAX_DELAY_S", 5.0),
            max_total_s=_float_env(env, f"{ENV_PREFIX_RETRY}MAX_TOTAL_S", 30.0),
            timeout_s=_float_env(env, f"{ENV_PREFIX_RETRY}TIMEOUT_S", 10.0),
        )
        return cls(
            url=url,
            static_headers=headers,
            secret_arn=env.get(ENV_SECRET_ARN, ""),
            dlq_url=env.get(ENV_DLQ_URL, ""),
            trigger_id=env.get(ENV_TRIGGER_ID, ""),
            mode=cast(DeliveryMode, mode),
            retry=retry,
            allow_private=allow_private,
            secret_max_age_s=int(_float_env(env, ENV_SECRET_MAX_AGE, 900)),
        )


class WebhookTriggerApp:
    """One container's worth of state: settings, HTTP client, AWS clients, cached secret."""

    def __init__(
        self,
        settings: WebhookTriggerSettings,
        *,
        sqs_client: Any = None,
        secrets_client: Any = None,
    ) -> None:
        self.settings = settings
        self._sqs = sqs_client
        self._secrets = (
            SecretsProvider(boto3_client=secrets_client) if settings.secret_arn else None
        )
        self._deliverer: WebhookDeliverer | None = None
        self._secret: str | None = None

    def _sqs_client(self) -> Any:
        if self._sqs is None:
            self._sqs = boto3.client("sqs")
        return self._sqs

    def _current_deliverer(self) -> WebhookDeliverer:
        secret: str | None = None
        if self._secrets is not None:
            fetched = self._secrets.get(
                self.settings.secret_arn, max_age=self.settings.secret_max_age_s
            )
            secret = fetched.decode() if isinstance(fetched, bytes) else str(fetched)
        if self._deliverer is None or secret != self._secret:
            if self._deliverer is not None:
                self._deliverer.close()
            self._secret = secret
            self._deliverer = WebhookDeliverer(
                WebhookConfig(
                    url=self.settings.url,
                    secret=secret,
                    static_headers=self.settings.static_headers,
                    retry=self.settings.retry,
                    allow_private=self.settings.allow_private,
                    trigger_id=self.settings.trigger_id,
                )
            )
        return self._deliverer

    def _dead_letter(self, failure: RecordFailure) -> bool:
        """Write one dead letter; False if it could not be written (then retry the record)."""
        if not self.settings.dlq_url:
            logger.error("no dead-letter queue configured; %s stays failed", failure.reason)
            return False
        letter = dead_letter_for(failure, trigger_id=self.settings.trigger_id)
        try:
            self._sqs_client().send_message(
                QueueUrl=self.settings.dlq_url,
                MessageBody=letter.to_json(),
                MessageAttributes={
                    "trigger_id": {"DataType": "String", "StringValue": letter.trigger_id or "-"},
                    "failure": {"DataType": "String", "StringValue": "webhook-permanent"},
                },
            )
        except Exception:  # SQS down or denied: not settled, the record must come back
            logger.exception("could not write dead letter for %s", failure.record.partition_key)
            return False
        return True

    def deliver(
        self, event: Mapping[str, Any], context: Any = None
    ) -> tuple[BatchOutcome, set[tuple[str, int, int]]]:
        """Deliver the event's records; return the outcome and the ids still unsettled."""
        records = parse_msk_event(event)
        deliverer = self._current_deliverer()
        if self.settings.mode == "batch":
            outcome = process_batch(records, deliverer.deliver)
        else:
            outcome = process_records(
                records,
                deliverer.deliver_one,
                keep_going=_time_left(
                    context, self.settings.retry.max_total_s + INVOCATION_MARGIN_S
                ),
            )
        unsettled: set[tuple[str, int, int]] = set()
        for failure in outcome.failures:
            r = failure.record
            if failure.kind is FailureKind.PERMANENT and self._dead_letter(failure):
                logger.warning(
                    "dead-lettered %s/%d/%d: %s", r.topic, r.partition, r.offset, failure.reason
                )
                continue
            unsettled.add((r.topic, r.partition, r.offset))
        return outcome, unsettled

    def handle(self, event: dict[str, Any], context: Any = None) -> dict[str, Any]:
        _, unsettled = self.deliver(event, context)

        def report(record: KafkaEventRecord) -> None:
            if (record.topic, record.partition, record.offset) in unsettled:
                raise RuntimeError("delivery must be retried")

        processor = BatchProcessor(event_type=EventType.Kafka, raise_on_entire_batch_failure=False)
        return dict(
            process_partial_response(
                event=event, record_handler=report, processor=processor, context=context
            )
        )


def _time_left(context: Any, needed_s: float) -> Callable[[], bool]:
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if remaining is None:
        return lambda: True
    return lambda: remaining() / 1000.0 > needed_s


_APP: WebhookTriggerApp | None = None


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Lambda entry point."""
    global _APP  # noqa: PLW0603 - one app per container, built on the first invocation
    if _APP is None:
        _APP = WebhookTriggerApp(WebhookTriggerSettings.from_env(os.environ))
    return _APP.handle(event, context)
