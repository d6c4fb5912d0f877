"""Webhook delivery: POST a batch of records as JSON, signed, with bounded retries.

Request::

    POST <url>
    Content-Type: application/json
    X-Octopus-Timestamp: <unix seconds>
    X-Octopus-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>." + body)>
    X-Octopus-Delivery-Id: <topic>/<partition>/<first offset>-<last offset>
    <static headers of the trigger>

    {"records": [{"topic", "partition", "offset", "timestamp", "timestamp_type",
                  "key", "key_encoding", "value", "value_encoding",
                  "headers": [{"name", "value", "encoding"}]}]}

``*_encoding`` says how to read the field: ``json`` (the bytes were valid JSON, given parsed),
``text`` (valid UTF-8, given as a string), ``base64`` (anything else), or ``null`` (no bytes).

Verifying, as a receiver (same recipe as Stripe / GitHub webhooks): read the raw body bytes
before parsing; compute ``HMAC-SHA256(secret, timestamp + "." + body)``; compare with the hex in
``X-Octopus-Signature`` in constant time; refuse timestamps older than your tolerance (replay).
:func:`verify_signature` does exactly that. Delivery is at least once: deduplicate on
``X-Octopus-Delivery-Id`` or on (topic, partition, offset).

Where it connects: the host is resolved when a connection is opened, every address it resolves
to is checked (``checked_addresses``) and the socket goes to one of those addresses
(``pinned_transport``); the name is never resolved a second time, so a DNS answer that changes
after the check (rebinding) cannot point the request at an internal address. Host header, TLS
SNI and certificate verification use the URL's host name. No proxy, no redirects.

Outcome: 2xx is success. 5xx, 408, 429, timeouts and connection errors are retried with
exponential backoff and full jitter, bounded by attempts and total time; when the budget runs
out the failure is *retryable* (the batch comes back later). Other 4xx, 3xx (redirects are not
followed: they could point anywhere) and refused URLs are *permanent* failures whose reason
carries the status and the start of the reply body.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import random
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlsplit

import httpx

from runtime.domain.errors import BadRequest, Unavailable
from runtime.triggers.event_shape import KafkaRecord
from runtime.triggers.pinned_transport import Address, PinnedTransport

SIGNATURE_HEADER: Final = "X-Octopus-Signature"
TIMESTAMP_HEADER: Final = "X-Octopus-Timestamp"
DELIVERY_ID_HEADER: Final = "X-Octopus-Delivery-Id"
USER_AGENT: Final = "octopus-event-fabric-webhook/1"
# Headers the fabric sets itself; a trigger's static headers may not replace them.
RESERVED_HEADERS: Final = frozenset(
    h.lower()
    for h in (
        SIGNATURE_HEADER,
        TIMESTAMP_HEADER,
        DELIVERY_ID_HEADER,
        "Host",
        "Content-Type",
        "Content-Length",
        "Content-Encoding",
        "Transfer-Encoding",
        "Connection",
        "User-Agent",
    )
)
REPLY_SNIPPET_CHARS: Final = 300
_RETRYABLE_4XX: Final = frozenset({408, 429})
# Instance metadata endpoints (IPv4 and the Nitro IPv6 one), refused in every mode.
_METADATA_ADDRESSES: Final = frozenset(
    {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
)


class InvalidWebhook(BadRequest):
    """A webhook URL or header set the fabric refuses to call."""

    code = "invalid_webhook"


class WebhookDnsUnavailable(Unavailable):
    """The resolver could not answer now (``EAI_AGAIN``): not a verdict on the host, so a
    create answers 503 and a delivery retries, instead of refusing it for good."""

    code = "dns_unavailable"


# ------------------------------------------------------------------------------ validation


def _address_refusal(address: Address, allow_private: bool) -> str | None:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address in _METADATA_ADDRESSES:
        return "is an instance metadata address"
    if address.is_link_local:
        return "is link-local"
    if address.is_loopback:  # checked before "reserved": ::1 lies in the reserved ::/8
        return None if allow_private else "is a loopback address"
    if address.is_multicast or address.is_unspecified or address.is_reserved:
        return "is not a unicast address"
    if allow_private:
        return None
    if address.is_private or not address.is_global:
        return "is a private address"
    return None


def _resolve(host: str, port: int) -> list[Address]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        if exc.errno == socket.EAI_AGAIN:
            raise WebhookDnsUnavailable(
                f"webhook host {host!r} could not be resolved right now ({exc}); try again"
            ) from exc
        raise InvalidWebhook(f"webhook host {host!r} does not resolve: {exc}") from exc
    return [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]


def _ip_literal(host: str) -> Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def checked_addresses(host: str, port: int, *, allow_private: bool) -> list[Address]:
    """The addresses ``host`` stands for, once each, in resolver order; all must be allowed.

    One lookup: the caller connects to what this returned and never resolves ``host`` again
    (``pinned_transport``), so a changed DNS answer cannot reach an address not checked here.
    If any address is refused the whole host is: which one a later lookup or a client's
    fallback would pick is not ours to know.
    """
    literal = _ip_literal(host)
    addresses = [literal] if literal is not None else _resolve(host, port)
    for address in addresses:
        refusal = _address_refusal(address, allow_private)
        if refusal:
            raise InvalidWebhook(f"webhook host {host!r} resolves to {address}, which {refusal}")
    return list(dict.fromkeys(addresses))


def validate_webhook_url(url: str, *, allow_private: bool, resolve: bool = True) -> None:
    """Refuse URLs a trigger must not call (SSRF guard); return ``None`` if acceptable.

    Only ``http``/``https``. With ``allow_private=False`` (AWS) any address that is not
    public is refused: loopback, RFC 1918 / unique-local, link-local, and the instance
    metadata endpoint. With ``allow_private=True`` (local mode) loopback and private
    addresses are allowed; link-local and metadata addresses never are. Host names are
    resolved and every address checked (``resolve=False`` checks only IP literals).

    This answers for the moment of the lookup only; delivery does not rely on it but checks
    again, at connect time, the very addresses it connects to (``checked_addresses``).
    """
    if not isinstance(url, str) or len(url) > 2048:
        raise InvalidWebhook("webhook URL must be a string of at most 2048 characters")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise InvalidWebhook(
            f"webhook URL must use http or https, not {parts.scheme or '(none)'!r}"
        )
    if not parts.hostname:
        raise InvalidWebhook("webhook URL has no host")
    if parts.username is not None or parts.password is not None:
        raise InvalidWebhook("webhook URL must not carry credentials; use static headers")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise InvalidWebhook(f"webhook URL has an invalid port: {exc}") from exc
    host = parts.hostname
    if resolve or _ip_literal(host) is not None:
        checked_addresses(host, port, allow_private=allow_private)


def validate_static_headers(headers: Mapping[str, str]) -> None:
    """Refuse header names the fabric sets itself, and malformed names or values."""
    for name, value in headers.items():
        if not isinstance(name, str) or not name or not all(33 <= ord(c) < 127 for c in name):
            raise InvalidWebhook(f"header name {name!r} is not a valid HTTP token")
        if name.lower() in RESERVED_HEADERS:
            raise InvalidWebhook(f"header {name!r} is set by the fabric and cannot be overridden")
        if not isinstance(value, str) or any(c in value for c in "\r\n\0"):
            raise InvalidWebhook(f"header {name!r} has an invalid value")


# ------------------------------------------------------------------------------- signature


def _secret_bytes(secret: str | bytes) -> bytes:
    return secret.encode() if isinstance(secret, str) else secret


def sign(secret: str | bytes, timestamp: int | str, body: bytes) -> str:
    """The ``X-Octopus-Signature`` value: ``sha256=`` + hex HMAC of ``"<ts>." + body``."""
    mac = hmac.new(_secret_bytes(secret), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify_signature(
    secret: str | bytes,
    timestamp: int | str,
    body: bytes,
    signature: str,
    tolerance_s: float = 300,
    *,
    now: float | None = None,
) -> bool:
    """For receivers: whether a delivery is authentic and fresh (within ``tolerance_s``)."""
    try:
        sent_at = int(timestamp)
    except (TypeError, ValueError):
        return False
    current = time.time() if now is None else now
    if abs(current - sent_at) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, sent_at, body), signature.strip())


# ------------------------------------------------------------------------------------ body


def decode_bytes(data: bytes | None) -> tuple[Any, str | None]:
    """(decoded, encoding): JSON if valid JSON, else UTF-8 text, else base64."""
    if data is None:
        return None, None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return base64.b64encode(data).decode("ascii"), "base64"
    try:
        return json.loads(text), "json"
    except ValueError:
        return text, "text"


def record_to_json(record: KafkaRecord) -> dict[str, Any]:
    key, key_encoding = decode_bytes(record.key)
    value, value_encoding = decode_bytes(record.value)
    headers = []
    for name, raw in record.headers:
        header_value, encoding = decode_bytes(raw)
        headers.append({"name": name, "value": header_value, "encoding": encoding})
    return {
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "timestamp": record.timestamp_ms,
        "timestamp_type": record.timestamp_type,
        "key": key,
        "key_encoding": key_encoding,
        "value": value,
        "value_encoding": value_encoding,
        "headers": headers,
    }


def build_body(records: Sequence[KafkaRecord]) -> bytes:
    return json.dumps(
        {"records": [record_to_json(r) for r in records]}, separators=(",", ":"), allow_nan=False
    ).encode()


def delivery_id(records: Sequence[KafkaRecord]) -> str:
    """Stable id of a delivery, the same on every retry and redelivery of these records."""
    first, last = records[0], records[-1]
    if len(records) == 1:
        return f"{first.topic}/{first.partition}/{first.offset}"
    if all(r.topic == first.topic and r.partition == first.partition for r in records):
        return f"{first.topic}/{first.partition}/{first.offset}-{last.offset}"
    digest = hashlib.sha256(
        "\n".join(f"{r.topic}/{r.partition}/{r.offset}" for r in records).encode()
    ).hexdigest()
    return f"batch/{digest[:32]}"


# ---------------------------------------------------------------------------------- policy


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try one delivery before handing it back as retryable."""

    max_attempts: int = 5
    base_delay_s: float = 0.2
    max_delay_s: float = 5.0
    max_total_s: float = 30.0
    timeout_s: float = 10.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if min(self.base_delay_s, self.max_delay_s, self.max_total_s) < 0 or self.timeout_s <= 0:
            raise ValueError("delays must be non-negative and the timeout positive")

    def backoff(self, attempt: int, rng: Callable[[], float]) -> float:
        """Full-jitter exponential backoff before attempt ``attempt + 1``."""
        ceiling = min(self.max_delay_s, self.base_delay_s * (2 ** (attempt - 1)))
        return float(rng() * ceiling)


@dataclass(frozen=True)
class WebhookConfig:
    url: str
    secret: str | bytes | None = None
    static_headers: Mapping[str, str] = field(default_factory=dict)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    allow_private: bool = False
    trigger_id: str = ""


@dataclass(frozen=True)
class DeliveryResult:
    """What happened to one POST (after retries)."""

    ok: bool
    permanent: bool
    attempts: int
    status: int | None
    reason: str

    @property
    def retryable(self) -> bool:
        return not self.ok and not self.permanent


def _snippet(response: httpx.Response) -> str:
    try:
        text = response.text
    except (UnicodeDecodeError, LookupError):
        text = repr(response.content[:REPLY_SNIPPET_CHARS])
    text = " ".join(text.split())
    return text[:REPLY_SNIPPET_CHARS] + ("…" if len(text) > REPLY_SNIPPET_CHARS else "")


class WebhookDeliverer:
    """Delivers batches to one webhook; keeps one HTTP client (connection reuse).

    The client is always built here, never passed in: every connection it opens goes through
    the address check (``PinnedTransport``), which an injected client could skip.
    """

    def __init__(
        self,
        config: WebhookConfig,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        rng: Callable[[], float] = random.random,
    ) -> None:
        validate_static_headers(config.static_headers)
        self.config = config
        allow_private = config.allow_private

        def check(host: str, port: int) -> list[Address]:
            return checked_addresses(host, port, allow_private=allow_private)

        self._client = httpx.Client(
            transport=PinnedTransport(check),
            timeout=httpx.Timeout(config.retry.timeout_s),
            # A redirect could point anywhere; it is reported, not followed.
            follow_redirects=False,
            trust_env=False,  # never route webhook calls through an ambient proxy
        )
        self._sleep, self._clock, self._wall_clock, self._rng = sleep, clock, wall_clock, rng

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> WebhookDeliverer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _headers(self, body: bytes, records: Sequence[KafkaRecord]) -> dict[str, str]:
        headers = dict(self.config.static_headers)
        headers["Content-Type"] = "application/json"
        headers["User-Agent"] = USER_AGENT
        headers[DELIVERY_ID_HEADER] = delivery_id(records)
        if self.config.secret:
            timestamp = int(self._wall_clock())
            headers[TIMESTAMP_HEADER] = str(timestamp)
            headers[SIGNATURE_HEADER] = sign(self.config.secret, timestamp, body)
        return headers

    def _attempt(self, body: bytes, records: Sequence[KafkaRecord]) -> tuple[bool, int | None, str]:
        """One POST: (permanent?, status, reason); reason empty on success."""
        try:
            # The URL's form only (no lookup): the host's addresses are checked when a
            # connection is opened, on the very lookup that connection uses.
            validate_webhook_url(
                self.config.url, allow_private=self.config.allow_private, resolve=False
            )
            response = self._client.post(
                self.config.url, content=body, headers=self._headers(body, records)
            )
        except InvalidWebhook as exc:
            return True, None, f"refused: {exc.message}"
        except WebhookDnsUnavailable as exc:
            return False, None, f"dns: {exc.message}"
        except httpx.TimeoutException as exc:
            return False, None, f"timeout: {type(exc).__name__}"
        except httpx.TransportError as exc:
            return False, None, f"connection error: {type(exc).__name__}: {exc}"
        status = response.status_code
        if 200 <= status < 300:
            return False, status, ""
        reason = f"HTTP {status}: {_snippet(response)}"
        if status >= 500 or status in _RETRYABLE_4XX:
            return False, status, reason
        if 300 <= status < 400:
            return True, status, f"HTTP {status}: redirects are not followed"
        return True, status, reason

    def deliver(self, records: Sequence[KafkaRecord]) -> DeliveryResult:
        """POST these records as one request, retrying what may succeed later."""
        if not records:
            return DeliveryResult(ok=True, permanent=False, attempts=0, status=None, reason="")
        body = build_body(records)
        policy = self.config.retry
        started = self._clock()
        attempt = 0
        while True:
            attempt += 1
            permanent, status, reason = self._attempt(body, records)
            if not reason:
                return DeliveryResult(True, False, attempt, status, "")
            if permanent:
                return DeliveryResult(False, True, attempt, status, reason)
            if attempt >= policy.max_attempts:
                return DeliveryResult(
                    False, False, attempt, status, f"{reason} (gave up after {attempt} attempts)"
                )
            delay = policy.backoff(attempt, self._rng)
            if self._clock() - started + delay + policy.timeout_s > policy.max_total_s:
                return DeliveryResult(
                    False,
                    False,
                    attempt,
                    status,
                    f"{reason} (gave up after {attempt} attempts: time budget "
                    f"{policy.max_total_s:g}s)",
                )
            self._sleep(delay)

    def deliver_one(self, record: KafkaRecord) -> DeliveryResult:
        return self.deliver([record])
