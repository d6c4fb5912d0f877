"""``Fabric``: typed access to every v1 route of an Octopus Event Fabric."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel

from octopus_client._http import BearerToken, HeaderProviderAuth, RetryPolicy, Transport
from octopus_client.errors import UnavailableError, ValidationError
from octopus_client.kafka import (
    FabricConsumer,
    FabricProducer,
    KafkaCredentials,
    connection_config,
)
from octopus_client.kafka import wait_until_ready as kafka_wait_until_ready
from octopus_client.models import (
    Access,
    BatchResult,
    Credentials,
    DeadLetter,
    FabricInfo,
    Grant,
    Health,
    Key,
    KeyCreated,
    Me,
    Namespace,
    Page,
    ReconcileReport,
    RecordMetadata,
    Topic,
    TopicConfigured,
    TopicDetail,
    Trigger,
    TriggerLogEntry,
)
from octopus_client.names import TopicRef, parse_topic_address
from octopus_client.records import Headers, record_body

if TYPE_CHECKING:
    from globus_sdk import GlobusApp

M = TypeVar("M", bound=BaseModel)


def _seg(value: str) -> str:
    """One path segment, escaped (identities and names never change the route)."""
    return quote(value, safe="")


class Fabric:
    """A connection to one fabric (local or on AWS).

    ``token`` is a bearer token (a development token locally, or a Globus access
    token); ``app`` a globus-sdk ``GlobusApp`` whose tokens are refreshed as needed.
    """

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        app: GlobusApp | None = None,
        resource_server: str | None = None,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        kafka_credentials: KafkaCredentials | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        auth: httpx.Auth | None = None
        if token is not None and app is not None:
            raise ValueError("pass either token or app, not both")
        if token is not None:
            auth = BearerToken(token)
        elif app is not None:
            # Lazy: auth imports globus-sdk, which is slow to import and unused with tokens.
            from octopus_client.auth import authorization_header_provider

            auth = HeaderProviderAuth(authorization_header_provider(app, resource_server))
        kwargs: dict[str, Any] = {"sleep": sleep} if sleep is not None else {}
        self.url = url.rstrip("/")
        self.token = token
        self._http = Transport(self.url, auth=auth, timeout=timeout, retry=retry, **kwargs)
        self._kafka_credentials = kafka_credentials
        self._lock = threading.Lock()
        self._info: FabricInfo | None = None
        self._me: Me | None = None

    # -- lifecycle ---------------------------------------------------------------------
    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Fabric:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing ----------------------------------------------------------------------
    def _call(self, method: str, path: str, model: type[M], **kwargs: Any) -> M:
        return model.model_validate(self._http.request(method, path, **kwargs))

    def _page(self, path: str, model: type[M], params: Mapping[str, Any]) -> Page[M]:
        body = self._http.request("GET", path, params=params)
        return Page[model].model_validate(body)  # type: ignore[valid-type]

    def _iterate(self, fetch: Callable[[str | None], Page[M]]) -> Iterator[M]:
        cursor: str | None = None
        while True:
            page = fetch(cursor)
            yield from page.items
            if not page.next_cursor or page.next_cursor == cursor:
                return
            cursor = page.next_cursor

    @staticmethod
    def _topic_path(namespace: str, topic: str) -> str:
        return f"/v1/namespaces/{_seg(namespace)}/topics/{_seg(topic)}"

    def topic_ref(self, address: str) -> TopicRef:
        """Resolve ``NS/TOPIC`` or ``TOPIC`` (in the caller's default namespace)."""
        default = None if "/" in address else self.default_namespace
        return parse_topic_address(address, default)

    # -- service -----------------------------------------------------------------------
    def health(self) -> Health:
        return self._call("GET", "/v1/health", Health)

    def me(self, *, refresh: bool = False) -> Me:
        with self._lock:
            if self._me is None or refresh:
                self._me = self._call("GET", "/v1/me", Me)
            return self._me

    @property
    def default_namespace(self) -> str:
        return self.me().default_namespace

    def fabric_info(self, *, refresh: bool = False) -> FabricInfo:
        """Connection facts for Kafka clients (cached: they do not change while running)."""
        with self._lock:
            if self._info is None or refresh:
                self._info = self._call("GET", "/v1/fabric", FabricInfo)
            return self._info

    # -- keys and credentials ----------------------------------------------------------
    def create_key(self, name: str) -> KeyCreated:
        """A new named key; its ``secret`` is shown only in this reply."""
        return self._call("POST", "/v1/keys", KeyCreated, json={"name": name})

    def list_keys(self) -> list[Key]:
        return self._page("/v1/keys", Key, {}).items

    def delete_key(self, key_id: str) -> None:
        self._http.request("DELETE", f"/v1/keys/{_seg(key_id)}")

    def create_credentials(self, duration_seconds: int | None = None) -> Credentials:
        body = {} if duration_seconds is None else {"duration_seconds": duration_seconds}
        return self._call("POST", "/v1/credentials", Credentials, json=body)

    # -- namespaces --------------------------------------------------------------------
    def create_namespace(self, name: str) -> Namespace:
        return self._call("POST", "/v1/namespaces", Namespace, json={"name": name})

    def list_namespaces(self) -> list[Namespace]:
        return list(
            self._iterate(
                lambda cursor: self._page("/v1/namespaces", Namespace, {"cursor": cursor})
            )
        )

    def delete_namespace(self, name: str, *, force: bool = False) -> None:
        params = {"force": "true"} if force else None
        self._http.request("DELETE", f"/v1/namespaces/{_seg(name)}", params=params)

    # -- topics ------------------------------------------------------------------------
    def create_topic(
        self,
        namespace: str,
        name: str,
        *,
        partitions: int | None = None,
        configs: Mapping[str, str] | None = None,
    ) -> Topic:
        body: dict[str, Any] = {"name": name, "configs": dict(configs or {})}
        if partitions is not None:
            body["partitions"] = partitions
        return self._call("POST", f"/v1/namespaces/{_seg(namespace)}/topics", Topic, json=body)

    def list_topics(
        self,
        namespace: str,
        *,
        prefix: str | None = None,
        cursor: str | None = None,
        limit: int | None = None,
    ) -> Page[Topic]:
        """One page of topics; see :meth:`iter_topics` for all of them."""
        params = {"prefix": prefix, "cursor": cursor, "limit": limit}
        return self._page(f"/v1/namespaces/{_seg(namespace)}/topics", Topic, params)

    def iter_topics(
        self, namespace: str, *, prefix: str | None = None, page_size: int | None = None
    ) -> Iterator[Topic]:
        return self._iterate(
            lambda cursor: self.list_topics(
                namespace, prefix=prefix, cursor=cursor, limit=page_size
            )
        )

    def get_topic(self, namespace: str, topic: str) -> TopicDetail:
        return self._call("GET", self._topic_path(namespace, topic), TopicDetail)

    def configure_topic(
        self, namespace: str, topic: str, configs: Mapping[str, str | None]
    ) -> TopicConfigured:
        """Change allowed configs; a ``None`` value resets the key to the broker default."""
        return self._call(
            "PATCH",
            self._topic_path(namespace, topic),
            TopicConfigured,
            json={"configs": dict(configs)},
        )

    def increase_partitions(self, namespace: str, topic: str, count: int) -> Topic:
        """Raise the partition count (locally a ``ConflictError``: the embedded broker cannot)."""
        return self._call(
            "POST", f"{self._topic_path(namespace, topic)}/partitions", Topic, json={"count": count}
        )

    def recreate_topic(self, namespace: str, topic: str) -> Topic:
        """Drop every record: the topic comes back empty with the same settings."""
        return self._call("POST", f"{self._topic_path(namespace, topic)}/recreate", Topic)

    def delete_topic(self, namespace: str, topic: str) -> None:
        self._http.request("DELETE", self._topic_path(namespace, topic))

    # -- grants ------------------------------------------------------------------------
    def list_topic_grants(self, namespace: str, topic: str) -> list[Grant]:
        return self._page(f"{self._topic_path(namespace, topic)}/grants", Grant, {}).items

    def list_grants(self, namespace: str) -> list[Grant]:
        """Topic and prefix grants of a namespace."""
        return self._page(f"/v1/namespaces/{_seg(namespace)}/grants", Grant, {}).items

    def grant(self, namespace: str, topic: str, identity: str, access: Access) -> Grant:
        return self._call(
            "PUT",
            f"{self._topic_path(namespace, topic)}/grants/{_seg(identity)}",
            Grant,
            json={"access": access},
        )

    def revoke(self, namespace: str, topic: str, identity: str) -> None:
        self._http.request(
            "DELETE", f"{self._topic_path(namespace, topic)}/grants/{_seg(identity)}"
        )

    def grant_prefix(self, namespace: str, prefix: str, identity: str, access: Access) -> Grant:
        """Access to a channel subtree (``a.b`` covers ``a.b`` and ``a.b.*``, later ones too)."""
        return self._call(
            "PUT",
            f"/v1/namespaces/{_seg(namespace)}/grants/{_seg(identity)}",
            Grant,
            json={"prefix": prefix, "access": access},
        )

    def revoke_prefix(self, namespace: str, prefix: str, identity: str) -> None:
        self._http.request(
            "DELETE",
            f"/v1/namespaces/{_seg(namespace)}/grants/{_seg(identity)}",
            params={"prefix": prefix},
        )

    # -- records over HTTP -------------------------------------------------------------
    def produce(
        self,
        namespace: str,
        topic: str,
        value: Any = None,
        *,
        key: Any = None,
        headers: Headers | None = None,
        partition: int | None = None,
        timestamp: datetime | None = None,
        idempotency_key: str | bool = True,
    ) -> RecordMetadata:
        """Produce one record over HTTP (answers after acks=all). bytes go as BINARY, else JSON.

        For volume use :meth:`producer` (Kafka protocol) instead.
        """
        body = record_body(
            value, key=key, headers=headers, partition=partition, timestamp=timestamp
        )
        return self._call(
            "POST",
            f"{self._topic_path(namespace, topic)}/records",
            RecordMetadata,
            json=body,
            idempotency_key=idempotency_key,
        )

    def produce_batch(
        self, namespace: str, topic: str, entries: Sequence[Mapping[str, Any]]
    ) -> BatchResult:
        """Produce up to 500 records; each entry ``{id, value, key?, headers?, partition?}``.

        The reply lists per-entry successes and failures (HTTP 207).
        """
        wire = []
        for index, entry in enumerate(entries):
            body = record_body(
                entry.get("value"),
                key=entry.get("key"),
                headers=entry.get("headers"),
                partition=entry.get("partition"),
                timestamp=entry.get("timestamp"),
            )
            body["id"] = str(entry.get("id", index))
            wire.append(body)
        return self._call(
            "POST",
            f"{self._topic_path(namespace, topic)}/records:batch",
            BatchResult,
            json={"entries": wire},
        )

    # -- triggers ----------------------------------------------------------------------
    def upload_trigger_code(self, zip_path: str | Path) -> str:
        """Upload a function's zip for ``function.code_upload_id``; returns the upload id.

        For code too large to send inline. On AWS the zip goes straight to the fabric's
        code bucket with a presigned form (our token is never sent there); locally it is
        PUT to the fabric itself.
        """
        source = Path(zip_path)
        size = source.stat().st_size
        ticket = self._http.request("POST", "/v1/triggers/code-uploads")
        if size > int(ticket["max_bytes"]):
            raise ValidationError(
                f"{source} is {size} bytes; this fabric takes uploads of at most "
                f"{ticket['max_bytes']} bytes",
                status=413,
                code="payload_too_large",
            )
        headers = {"Content-Type": "application/zip", **ticket.get("headers", {})}
        with source.open("rb") as stream:
            if ticket["method"] == "PUT":
                url = str(ticket["url"])
                if not url.startswith(self._http.base_url + "/"):
                    raise ValidationError(
                        f"the fabric asked for an upload to {url}, not to itself: refused "
                        "(the token is sent only to the fabric)",
                        code="unexpected_upload_url",
                    )
                self._http.upload(url[len(self._http.base_url) :], stream, headers)
            else:
                reply = httpx.post(
                    ticket["url"],
                    data=ticket.get("fields", {}),
                    files={"file": (source.name, stream, "application/zip")},
                    timeout=300,
                )
                if reply.status_code >= 300:
                    raise UnavailableError(
                        f"the code upload was refused ({reply.status_code}): {reply.text[:200]}",
                        status=reply.status_code,
                        code="upload_failed",
                    )
        return str(ticket["upload_id"])

    def create_trigger(self, spec: Mapping[str, Any] | None = None, **fields: Any) -> Trigger:
        """Create a trigger from the body of ``POST /v1/triggers`` (a mapping or keywords)."""
        body = {**(spec or {}), **fields}
        return self._call("POST", "/v1/triggers", Trigger, json=body)

    def list_triggers(
        self,
        *,
        namespace: str | None = None,
        topic: str | None = None,
        cursor: str | None = None,
        limit: int | None = None,
    ) -> Page[Trigger]:
        params = {"namespace": namespace, "topic": topic, "cursor": cursor, "limit": limit}
        return self._page("/v1/triggers", Trigger, params)

    def iter_triggers(
        self, *, namespace: str | None = None, topic: str | None = None
    ) -> Iterator[Trigger]:
        return self._iterate(
            lambda cursor: self.list_triggers(namespace=namespace, topic=topic, cursor=cursor)
        )

    def get_trigger(self, trigger_id: str) -> Trigger:
        return self._call("GET", f"/v1/triggers/{_seg(trigger_id)}", Trigger)

    def update_trigger(self, trigger_id: str, **changes: Any) -> Trigger:
        """Change filters, batching, enabled, max_retries or the function code."""
        return self._call("PATCH", f"/v1/triggers/{_seg(trigger_id)}", Trigger, json=changes)

    def enable_trigger(self, trigger_id: str) -> Trigger:
        return self.update_trigger(trigger_id, enabled=True)

    def disable_trigger(self, trigger_id: str) -> Trigger:
        return self.update_trigger(trigger_id, enabled=False)

    def delete_trigger(self, trigger_id: str) -> None:
        self._http.request("DELETE", f"/v1/triggers/{_seg(trigger_id)}")

    def trigger_logs(
        self,
        trigger_id: str,
        *,
        since: datetime | str | None = None,
        cursor: str | None = None,
        limit: int | None = None,
    ) -> Page[TriggerLogEntry]:
        since_param = since.isoformat() if isinstance(since, datetime) else since
        params = {"since": since_param, "cursor": cursor, "limit": limit}
        return self._page(f"/v1/triggers/{_seg(trigger_id)}/logs", TriggerLogEntry, params)

    def iter_trigger_logs(
        self, trigger_id: str, *, since: datetime | str | None = None
    ) -> Iterator[TriggerLogEntry]:
        return self._iterate(
            lambda cursor: self.trigger_logs(trigger_id, since=since, cursor=cursor)
        )

    def dead_letters(
        self, trigger_id: str, *, cursor: str | None = None, limit: int | None = None
    ) -> Page[DeadLetter]:
        params = {"cursor": cursor, "limit": limit}
        return self._page(f"/v1/triggers/{_seg(trigger_id)}/dead-letters", DeadLetter, params)

    def iter_dead_letters(self, trigger_id: str) -> Iterator[DeadLetter]:
        return self._iterate(lambda cursor: self.dead_letters(trigger_id, cursor=cursor))

    # -- admin -------------------------------------------------------------------------
    def reconcile(self, *, repair: bool = False) -> ReconcileReport:
        """Drift between registry, broker and IAM (admins only); ``repair`` fixes it."""
        return self._call(
            "POST",
            "/v1/admin/reconcile",
            ReconcileReport,
            params={"repair": "true" if repair else "false"},
        )

    # -- Kafka clients -----------------------------------------------------------------
    def use_kafka_credentials(self, credentials: KafkaCredentials | KeyCreated) -> None:
        """Use these credentials (a created IAM key, or AWS credentials) for Kafka clients."""
        if isinstance(credentials, KeyCreated):
            credentials = KafkaCredentials.from_key(credentials)
        self._kafka_credentials = credentials

    def kafka_config(self, **overrides: Any) -> dict[str, Any]:
        """The librdkafka settings to reach this fabric's brokers (no role-specific defaults)."""
        return connection_config(self, overrides)

    def producer(self, **overrides: Any) -> FabricProducer:
        """A Kafka producer (at-least-once defaults) that refuses topics the fabric lacks."""
        return FabricProducer(self, **overrides)

    def consumer(self, group: str | None = None, **overrides: Any) -> FabricConsumer:
        """A Kafka consumer in group ``<default_ns>.<group>`` (manual commits)."""
        return FabricConsumer(self, group=group, **overrides)

    def wait_until_ready(self, timeout: float = 60.0) -> float:
        """Block until the broker accepts this caller's credentials; return seconds waited."""
        return kafka_wait_until_ready(self, timeout)
