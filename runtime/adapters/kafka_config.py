"""confluent-kafka client configurations for the two brokers the fabric runs on.

- ``local_client_config``: the embedded broker on loopback, PLAINTEXT, with the client
  settings it needs (measured, see docs/local-broker.md) applied only here.
- ``msk_iam_client_config``: Amazon MSK with IAM auth (SASL_SSL + OAUTHBEARER, tokens
  signed by aws-msk-iam-sasl-signer).

Both return a connection config for one client role; merge ``producer_defaults()`` /
``consumer_defaults()`` on top for at-least-once delivery.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from aws_msk_iam_sasl_signer import MSKAuthTokenProvider

ClientRole = Literal["admin", "producer", "consumer"]

# The embedded broker delays every group join by half the session timeout (the 45 s
# default means ~23 s before the first record), so keep it short; fetch wait 200 ms
# (100 ms stalls consumers on partitions with ~200k one-record batches).
EMBEDDED_BROKER_CONSUMER_SETTINGS: dict[str, Any] = {
    "session.timeout.ms": 3000,
    "heartbeat.interval.ms": 500,
    "fetch.wait.max.ms": 200,
}
# Records per batch is the main lever for consumer speed on the embedded broker
# (it lists every stored batch on every fetch), so let producers batch a little.
EMBEDDED_BROKER_PRODUCER_SETTINGS: dict[str, Any] = {
    "linger.ms": 5,
}

_ROLE_SETTINGS: dict[ClientRole, dict[str, Any]] = {
    "admin": {},
    "producer": EMBEDDED_BROKER_PRODUCER_SETTINGS,
    "consumer": EMBEDDED_BROKER_CONSUMER_SETTINGS,
}


def local_client_config(bootstrap: str, role: ClientRole = "admin") -> dict[str, Any]:
    """Config for the embedded broker (no auth: it binds to loopback, the fabric guards access)."""
    return {
        "bootstrap.servers": bootstrap,
        "security.protocol": "PLAINTEXT",
        **_ROLE_SETTINGS[role],
    }


def msk_oauth_callback(region: str) -> Callable[[str | None], tuple[str, float]]:
    """An ``oauth_cb`` that signs an MSK IAM token with the default AWS credentials chain."""

    def oauth_cb(_oauth_config: str | None) -> tuple[str, float]:
        token, expiry_ms = MSKAuthTokenProvider.generate_auth_token(region)
        # librdkafka wants the absolute expiry in seconds since the epoch.
        return token, expiry_ms / 1000.0

    return oauth_cb


def msk_iam_client_config(bootstrap: str, region: str) -> dict[str, Any]:
    """Config for Amazon MSK with IAM access control (any client role)."""
    return {
        "bootstrap.servers": bootstrap,
        "security.protocol": "SASL_SSL",
        "sasl.mechanisms": "OAUTHBEARER",
        "oauth_cb": msk_oauth_callback(region),
    }


def producer_defaults() -> dict[str, Any]:
    """At-least-once producer: every record acknowledged by all in-sync replicas, no duplicates
    from internal retries."""
    return {"acks": "all", "enable.idempotence": True}


def consumer_defaults() -> dict[str, Any]:
    """At-least-once consumer: offsets are committed by the application after processing."""
    return {"enable.auto.commit": False}
