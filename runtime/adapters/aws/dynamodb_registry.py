"""The fabric's registry on AWS: one DynamoDB table (single-table design).

Table (fixed by the infrastructure): ``pk``/``sk`` (S), GSIs ``gsi1``
(``gsi1pk``/``gsi1sk``) and ``gsi2`` (``gsi2pk``/``gsi2sk``) projecting ALL,
TTL attribute ``ttl``. The item layout, and why the usage counters stay exact,
is in docs/registry.md.

Every quota-bound create is one ``TransactWriteItems``: the record's put and the
owner's counter bump (``u_topics < :limit``) commit together or not at all.
Records are stored as their pydantic JSON (``data``) beside the attributes we key
and condition on, so they read back exactly as written.
"""

from __future__ import annotations

import contextlib
import random
import re
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from decimal import Decimal
from typing import Any

import boto3
from botocore.exceptions import ClientError

from runtime.adapters.registry_codec import (
    QUOTA_GRANTS,
    QUOTA_KEYS,
    QUOTA_NAMESPACES,
    QUOTA_PARTITIONS,
    QUOTA_TOPICS,
    QUOTA_TRIGGERS,
    check_page_size,
    dump_record,
    epoch_seconds,
    load_record,
    merged,
    now_epoch,
    quota_exceeded,
    topics_after,
    topics_cursor,
    triggers_after,
    triggers_cursor,
)
from runtime.domain.errors import (
    AlreadyExists,
    BadRequest,
    Conflict,
    FabricError,
    NotFound,
    Unavailable,
)
from runtime.domain.models import (
    AccessKey,
    ConsumerInstance,
    Grant,
    GrantKind,
    IdempotencyRecord,
    Identity,
    Namespace,
    Page,
    Topic,
    Trigger,
    Usage,
    collision_key,
    kafka_topic_name,
)

Item = dict[str, Any]  # plain Python values (str, int, bool)
Key = dict[str, str]

DEFAULT_CONSUMER_IDLE_SECONDS = 86_400
# Grants deleted per transaction when purging a topic's or namespace's grants:
# each grant costs one action plus at most one granter counter update, plus the
# container's counter; TransactWriteItems takes at most 100 actions.
PURGE_CHUNK = 45
# Triggers given their topic-index entry per transaction by the one-off backfill:
# two actions each (check the trigger, put the entry), at most 100 actions.
INDEX_CHUNK = 45
# How often an operation re-reads and retries when a concurrent writer changed
# what it read (never on a real refusal such as a quota).
MAX_ATTEMPTS = 12

_USAGE_FIELDS = ("namespaces", "topics", "partitions", "keys", "grants", "triggers")
_NAME_TOKEN = re.compile(r"#(\w+)")
_CCF = "ConditionalCheckFailed"


# -- keys of every item kind (docs/registry.md) -----------------------------------------


def identity_key(sub: str) -> Key:
    return {"pk": f"IDENTITY#{sub}", "sk": "IDENTITY"}


def namespace_key(name: str) -> Key:
    return {"pk": f"NS#{name}", "sk": "NS"}


def topic_key(namespace: str, name: str) -> Key:
    return {"pk": f"NS#{namespace}", "sk": f"TOPIC#{name}"}


def collision_marker_key(namespace: str, name: str) -> Key:
    return {"pk": f"KAFKA#{collision_key(kafka_topic_name(namespace, name))}", "sk": "KAFKA"}


def grant_key(namespace: str, kind: GrantKind, target: str, grantee: str) -> Key:
    return {"pk": f"NS#{namespace}", "sk": f"GRANT#{kind.value}#{target}#{grantee}"}


def access_key_key(key_id: str) -> Key:
    return {"pk": f"KEY#{key_id}", "sk": "KEY"}


def key_name_key(owner: str, name: str) -> Key:
    return {"pk": f"IDENTITY#{owner}", "sk": f"KEYNAME#{name}"}


def trigger_key(trigger_id: str) -> Key:
    return {"pk": f"TRIGGER#{trigger_id}", "sk": "TRIGGER"}


def topic_triggers_pk(namespace: str, topic: str) -> str:
    """The partition indexing a topic's triggers, every owner's.

    Names cannot contain '#' (runtime.domain.names), so ``a.b`` and ``a.bc`` are
    different partitions, never one a prefix of the other.
    """
    return f"TOPIC#{namespace}#{topic}"


def topic_trigger_key(namespace: str, topic: str, trigger_id: str) -> Key:
    """A trigger's entry in its topic's index."""
    return {"pk": topic_triggers_pk(namespace, topic), "sk": f"TRIGGER#{trigger_id}"}


# Present once every trigger has its topic-index entry (see list_triggers_on_topic).
TOPIC_INDEX_MARKER: Key = {"pk": "META#TRIGGER_TOPIC_INDEX", "sk": "META"}


def idempotency_key(scope: str, key: str) -> Key:
    return {"pk": f"IDEM#{scope}", "sk": f"KEY#{key}"}


def consumer_key(group: str, instance_id: str) -> Key:
    return {"pk": f"GROUP#{group}", "sk": f"INSTANCE#{instance_id}"}


def trigger_gsi1sk(namespace: str, topic: str, trigger_id: str) -> str:
    return f"TRIGGER#{namespace}#{topic}#{trigger_id}"


# -- attribute values -----------------------------------------------------------------


def _av(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, int | float | Decimal):
        return {"N": str(value)}
    raise TypeError(f"cannot store {type(value).__name__}")


def _plain_value(value: dict[str, Any]) -> Any:
    if "S" in value:
        return value["S"]
    if "N" in value:
        number = Decimal(value["N"])
        return int(number) if number == number.to_integral_value() else float(number)
    if "BOOL" in value:
        return value["BOOL"]
    if "NULL" in value:
        return None
    raise TypeError(f"unexpected attribute value {value!r}")


def _plain(item: dict[str, Any]) -> Item:
    return {name: _plain_value(value) for name, value in item.items()}


def _encode(item: Item) -> dict[str, Any]:
    return {name: _av(value) for name, value in item.items()}


def _expression(
    params: dict[str, Any], expressions: list[str | None], values: dict[str, Any] | None
) -> dict[str, Any]:
    """Fill ExpressionAttributeNames (every ``#name`` used) and values."""
    names = {f"#{name}": name for text in expressions if text for name in _NAME_TOKEN.findall(text)}
    if names:
        params["ExpressionAttributeNames"] = names
    if values:
        params["ExpressionAttributeValues"] = {name: _av(v) for name, v in values.items()}
    return params


class _Table:
    """Builders for one table's transaction actions and single-item calls."""

    def __init__(self, name: str) -> None:
        self.name = name

    def put(self, item: Item, condition: str | None = None, **values: Any) -> dict[str, Any]:
        params: dict[str, Any] = {"TableName": self.name, "Item": _encode(item)}
        if condition:
            params["ConditionExpression"] = condition
        return _expression(params, [condition], _values(values))

    def update(
        self, key: Key, update: str, condition: str | None = None, **values: Any
    ) -> dict[str, Any]:
        params: dict[str, Any] = {
            "TableName": self.name,
            "Key": _encode(dict(key)),
            "UpdateExpression": update,
        }
        if condition:
            params["ConditionExpression"] = condition
        return _expression(params, [update, condition], _values(values))

    def delete(self, key: Key, condition: str | None = None, **values: Any) -> dict[str, Any]:
        params: dict[str, Any] = {"TableName": self.name, "Key": _encode(dict(key))}
        if condition:
            params["ConditionExpression"] = condition
        return _expression(params, [condition], _values(values))

    def check(self, key: Key, condition: str, **values: Any) -> dict[str, Any]:
        params: dict[str, Any] = {
            "TableName": self.name,
            "Key": _encode(dict(key)),
            "ConditionExpression": condition,
        }
        return _expression(params, [condition], _values(values))


def _values(values: dict[str, Any]) -> dict[str, Any]:
    # Python keyword names cannot start with ':'; callers write v_x for :x.
    return {f":{name}": value for name, value in values.items()}


class _Cancelled(Exception):
    """A transaction refused by a condition; ``codes[i]`` is action i's reason."""

    def __init__(self, codes: list[str]) -> None:
        super().__init__(", ".join(codes))
        self.codes = codes

    def failed(self, index: int) -> bool:
        return index < len(self.codes) and self.codes[index] == _CCF


class DynamoDbRegistry:
    """``Registry`` on one DynamoDB table."""

    def __init__(
        self,
        table_name: str,
        client: Any = None,
        *,
        consumer_idle_seconds: int = DEFAULT_CONSUMER_IDLE_SECONDS,
    ) -> None:
        self.table_name = table_name
        self._client: Any = client if client is not None else boto3.client("dynamodb")
        self._t = _Table(table_name)
        self.consumer_idle_seconds = consumer_idle_seconds

    # -- low-level calls -----------------------------------------------------------------

    def _get(self, key: Key) -> Item | None:
        response = self._client.get_item(
            TableName=self.table_name, Key=_encode(dict(key)), ConsistentRead=True
        )
        item = response.get("Item")
        return _plain(item) if item else None

    def _transact(self, actions: list[tuple[str, dict[str, Any]]]) -> None:
        """Commit ``actions`` atomically, or raise ``_Cancelled`` with each action's reason.

        Cancellations caused only by concurrent transactions on the same items
        (``TransactionConflict``) are retried here with jittered backoff.
        """
        if len(actions) > 100:
            raise ValueError(f"{len(actions)} actions do not fit one transaction")
        request = [{kind: params} for kind, params in actions]
        for attempt in range(MAX_ATTEMPTS):
            try:
                self._client.transact_write_items(TransactItems=request)
                return
            except ClientError as error:
                code = error.response.get("Error", {}).get("Code", "")
                if code == "TransactionCanceledException":
                    reasons = error.response.get("CancellationReasons") or []
                    codes = [str(reason.get("Code", "None")) for reason in reasons]
                    if _CCF in codes or not _only_contention(codes):
                        raise _Cancelled(codes) from error
                elif code not in ("TransactionConflictException", "TransactionInProgressException"):
                    raise
            _backoff(attempt)
        raise Unavailable("the registry is too busy with concurrent changes; retry shortly")

    def _conditional(self, call: Callable[..., Any], params: dict[str, Any]) -> bool:
        """Run a single-item conditional write; False if its condition failed."""
        try:
            call(**params)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def _query(self, **params: Any) -> Iterator[Item]:
        params["TableName"] = self.table_name
        while True:
            response = self._client.query(**params)
            for item in response.get("Items", []):
                yield _plain(item)
            last = response.get("LastEvaluatedKey")
            if not last:
                return
            params["ExclusiveStartKey"] = last

    def _query_partition(self, pk: str, sk_prefix: str) -> Iterator[Item]:
        return self._query(
            KeyConditionExpression="#pk = :pk AND begins_with(#sk, :prefix)",
            ExpressionAttributeNames={"#pk": "pk", "#sk": "sk"},
            ExpressionAttributeValues={":pk": _av(pk), ":prefix": _av(sk_prefix)},
            ConsistentRead=True,
        )

    def _query_index(
        self, index: str, pk: str, sk_prefix: str, start: Key | None = None, page: int = 0
    ) -> Iterator[Item]:
        condition = f"#{index}pk = :pk"
        values = {":pk": _av(pk)}
        if sk_prefix:  # DynamoDB refuses begins_with on an empty string
            condition += f" AND begins_with(#{index}sk, :prefix)"
            values[":prefix"] = _av(sk_prefix)
        params: dict[str, Any] = {
            "IndexName": index,
            "KeyConditionExpression": condition,
            "ExpressionAttributeNames": {
                f"#{name}": name for name in _NAME_TOKEN.findall(condition)
            },
            "ExpressionAttributeValues": values,
        }
        if start:
            params["ExclusiveStartKey"] = _encode(dict(start))
        if page:
            params["Limit"] = page
        return self._query(**params)

    def _fresh(self, items: list[Item]) -> list[Item]:
        """Re-read index results from the table with strong consistency.

        GSIs are eventually consistent: this drops items deleted since (a removed
        grant must never show up again) and returns their current contents, in
        the order given.
        """
        found: dict[tuple[str, str], Item] = {}
        keys = [{"pk": item["pk"], "sk": item["sk"]} for item in items]
        for start in range(0, len(keys), 100):
            pending: dict[str, Any] = {
                self.table_name: {
                    "Keys": [_encode(dict(key)) for key in keys[start : start + 100]],
                    "ConsistentRead": True,
                }
            }
            attempt = 0
            while pending:
                response = self._client.batch_get_item(RequestItems=pending)
                for raw in response.get("Responses", {}).get(self.table_name, []):
                    item = _plain(raw)
                    found[(item["pk"], item["sk"])] = item
                pending = response.get("UnprocessedKeys") or {}
                if pending:
                    _backoff(attempt)
                    attempt += 1
        return [found[key] for key in ((i["pk"], i["sk"]) for i in items) if key in found]

    # -- usage counters -------------------------------------------------------------------

    def _charge(self, owner: str, charges: list[tuple[str, int, int]]) -> dict[str, Any]:
        """An Update bumping the owner's counters only if every limit still holds.

        ``charges``: (usage field, amount, limit). The identity must exist.
        """
        sets: list[str] = []
        conditions = ["attribute_exists(#pk)"]
        values: dict[str, Any] = {}
        for field, amount, limit in charges:
            sets.append(f"#u_{field} = #u_{field} + :add_{field}")
            values[f"add_{field}"] = amount
            if amount > 0:
                # counter + amount <= limit, written without arithmetic on the left.
                conditions.append(f"#u_{field} <= :max_{field}")
                values[f"max_{field}"] = limit - amount
        return self._t.update(
            identity_key(owner), "SET " + ", ".join(sets), " AND ".join(conditions), **values
        )

    def _release(self, owner: str, amounts: dict[str, int]) -> dict[str, Any]:
        sets = [f"#u_{field} = #u_{field} - :sub_{field}" for field in amounts]
        values = {f"sub_{field}": amount for field, amount in amounts.items()}
        return self._t.update(identity_key(owner), "SET " + ", ".join(sets), None, **values)

    def _quota_error(
        self, owner: str, charges: list[tuple[str, int, int, str]]
    ) -> FabricError | None:
        """Why a charge failed: missing identity, or the first limit now exceeded.

        None when no limit is exceeded any more (a concurrent release): retry.
        """
        item = self._get(identity_key(owner))
        if item is None:
            return NotFound(f"identity {owner!r} is not registered")
        for field, amount, limit, quota in charges:
            if amount > 0 and int(item.get(f"u_{field}", 0)) + amount > limit:
                return quota_exceeded(quota, limit, owner, requested=amount)
        return None

    # -- identities -----------------------------------------------------------------------

    def ensure_identity(self, identity: Identity, default_namespace: Namespace) -> Identity:
        if default_namespace.owner != identity.sub or (
            default_namespace.name != identity.default_namespace
        ):
            raise BadRequest("the default namespace must be the identity's own and named by it")
        stored = self.get_identity(identity.sub)
        if stored is not None:
            return stored
        identity_item: Item = {
            **identity_key(identity.sub),
            "data": dump_record(identity),
            **{f"u_{field}": 0 for field in _USAGE_FIELDS},
            "u_namespaces": 1,
        }
        try:
            self._transact(
                [
                    ("Put", self._t.put(identity_item, "attribute_not_exists(#pk)")),
                    (
                        "Put",
                        self._t.put(
                            self._namespace_item(default_namespace), "attribute_not_exists(#pk)"
                        ),
                    ),
                ]
            )
        except _Cancelled as cancelled:
            stored = self.get_identity(identity.sub)
            if stored is not None:  # registered concurrently: the first one wins
                return stored
            if cancelled.failed(1):
                raise AlreadyExists(
                    f"namespace {default_namespace.name!r} is held by another identity"
                ) from None
            raise Conflict(f"identity {identity.sub!r} changed meanwhile; retry") from None
        return identity

    def get_identity(self, sub: str) -> Identity | None:
        item = self._get(identity_key(sub))
        return load_record(Identity, item["data"]) if item else None

    def get_usage(self, sub: str) -> Usage:
        item = self._get(identity_key(sub))
        if item is None:
            return Usage()
        return Usage(**{field: int(item.get(f"u_{field}", 0)) for field in _USAGE_FIELDS})

    # -- namespaces -----------------------------------------------------------------------

    @staticmethod
    def _namespace_item(namespace: Namespace) -> Item:
        return {
            **namespace_key(namespace.name),
            "data": dump_record(namespace),
            "owner": namespace.owner,
            # A new id per incarnation: a slow deleter of an old namespace of the
            # same name can never touch a new one.
            "uid": uuid.uuid4().hex,
            "topic_count": 0,
            "grant_count": 0,
            "gsi1pk": f"OWNER#{namespace.owner}",
            "gsi1sk": f"NS#{namespace.name}",
        }

    def create_namespace(self, namespace: Namespace, *, limit: int) -> None:
        charges = [("namespaces", 1, limit, QUOTA_NAMESPACES)]
        for _ in range(MAX_ATTEMPTS):
            try:
                self._transact(
                    [
                        (
                            "Put",
                            self._t.put(
                                self._namespace_item(namespace), "attribute_not_exists(#pk)"
                            ),
                        ),
                        ("Update", self._charge(namespace.owner, [c[:3] for c in charges])),
                    ]
                )
                return
            except _Cancelled as cancelled:
                if cancelled.failed(0):
                    raise AlreadyExists(f"namespace {namespace.name!r} already exists") from None
                error = self._quota_error(namespace.owner, charges)
                if error is not None:
                    raise error from None
        raise Unavailable("the registry is too busy with concurrent changes; retry shortly")

    def get_namespace(self, name: str) -> Namespace | None:
        item = self._get(namespace_key(name))
        return load_record(Namespace, item["data"]) if item else None

    def list_namespaces(self, owner: str) -> list[Namespace]:
        items = self._fresh(list(self._query_index("gsi1", f"OWNER#{owner}", "NS#")))
        namespaces = [load_record(Namespace, item["data"]) for item in items]
        return sorted((ns for ns in namespaces if ns.owner == owner), key=lambda ns: ns.name)

    def delete_namespace(self, name: str) -> None:
        for _ in range(MAX_ATTEMPTS):
            item = self._get(namespace_key(name))
            if item is None:
                raise NotFound(f"namespace {name!r} does not exist")
            if int(item["topic_count"]):
                raise Conflict(f"namespace {name!r} still has {item['topic_count']} topic(s)")
            if int(item["grant_count"]):
                # Prefix grants die with the namespace. Mark it first (only while it
                # has no topics) so no topic or grant can be added meanwhile.
                marked = self._conditional(
                    self._client.update_item,
                    self._t.update(
                        namespace_key(name),
                        "SET #purging = :yes",
                        "#uid = :uid AND #topic_count = :zero",
                        yes=True,
                        uid=item["uid"],
                        zero=0,
                    ),
                )
                if marked:
                    self._purge_grants(
                        namespace_key(name), item["uid"], f"GRANT#{GrantKind.PREFIX.value}#"
                    )
                continue
            try:
                self._transact(
                    [
                        (
                            "Delete",
                            self._t.delete(
                                namespace_key(name),
                                "#uid = :uid AND #topic_count = :zero AND #grant_count = :zero",
                                uid=item["uid"],
                                zero=0,
                            ),
                        ),
                        ("Update", self._release(item["owner"], {"namespaces": 1})),
                    ]
                )
                return
            except _Cancelled:
                continue  # changed meanwhile: look again
        raise Unavailable("the registry is too busy with concurrent changes; retry shortly")

    # -- grants: the purge shared by topic and namespace deletion ------------------------------

    def _purge_grants(self, container: Key, uid: str, sk_prefix: str) -> list[Grant]:
        """Delete every grant of a container (topic or namespace) marked ``purging``.

        Each chunk's deletes commit with the container's ``grant_count`` and each
        granter's usage, so counters stay exact whatever happens in between.
        Grants are gone before their container is: none is ever left visible
        pointing at a deleted topic.
        """
        removed: list[Grant] = []
        items = [
            item
            for item in self._query_partition(container["pk"], sk_prefix)
            if item.get("container_uid") == uid and _grant_in(container, item)
        ]
        for start in range(0, len(items), PURGE_CHUNK):
            chunk = items[start : start + PURGE_CHUNK]
            try:
                self._transact(self._grant_deletes(container, uid, chunk))
                removed += [load_record(Grant, item["data"]) for item in chunk]
            except _Cancelled:
                # Some grant changed meanwhile: go one by one, skipping the gone ones.
                for item in chunk:
                    try:
                        self._transact(self._grant_deletes(container, uid, [item]))
                        removed.append(load_record(Grant, item["data"]))
                    except _Cancelled:
                        continue
        return removed

    def _grant_deletes(
        self, container: Key, uid: str, items: list[Item]
    ) -> list[tuple[str, dict[str, Any]]]:
        per_granter: dict[str, int] = {}
        actions: list[tuple[str, dict[str, Any]]] = []
        for item in items:
            actions.append(
                (
                    "Delete",
                    self._t.delete(
                        {"pk": item["pk"], "sk": item["sk"]},
                        "#container_uid = :uid AND #granted_by = :granter",
                        uid=uid,
                        granter=item["granted_by"],
                    ),
                )
            )
            per_granter[item["granted_by"]] = per_granter.get(item["granted_by"], 0) + 1
        actions.append(
            (
                "Update",
                self._t.update(
                    container,
                    "SET #grant_count = #grant_count - :n",
                    "#uid = :uid",
                    n=len(items),
                    uid=uid,
                ),
            )
        )
        actions += [
            ("Update", self._release(granter, {"grants": count}))
            for granter, count in per_granter.items()
        ]
        return actions

    # -- topics -----------------------------------------------------------------------------

    def create_topic(self, topic: Topic, *, topic_limit: int, partition_limit: int) -> None:
        charges = [
            ("topics", 1, topic_limit, QUOTA_TOPICS),
            ("partitions", topic.partitions, partition_limit, QUOTA_PARTITIONS),
        ]
        item: Item = {
            **topic_key(topic.namespace, topic.name),
            "data": dump_record(topic),
            "owner": topic.owner,
            "partitions": topic.partitions,
            "version": topic.version,
            "uid": uuid.uuid4().hex,
            "grant_count": 0,
            "gsi2pk": "ALL#TOPIC",
            "gsi2sk": f"{topic.namespace}#{topic.name}",
        }
        marker: Item = {
            **collision_marker_key(topic.namespace, topic.name),
            "namespace": topic.namespace,
            "topic": topic.name,
        }
        for _ in range(MAX_ATTEMPTS):
            try:
                self._transact(
                    [
                        ("Put", self._t.put(item, "attribute_not_exists(#pk)")),
                        ("Put", self._t.put(marker, "attribute_not_exists(#pk)")),
                        (
                            "Update",
                            self._t.update(
                                namespace_key(topic.namespace),
                                "SET #topic_count = #topic_count + :one",
                                "attribute_exists(#pk) AND attribute_not_exists(#purging)",
                                one=1,
                            ),
                        ),
                        ("Update", self._charge(topic.owner, [c[:3] for c in charges])),
                    ]
                )
                return
            except _Cancelled as cancelled:
                if cancelled.failed(2):
                    raise NotFound(f"namespace {topic.namespace!r} does not exist") from None
                if cancelled.failed(0):
                    raise AlreadyExists(f"topic {topic.kafka_name!r} already exists") from None
                if cancelled.failed(1):
                    clash = self._get(collision_marker_key(topic.namespace, topic.name))
                    if clash is not None:
                        existing = kafka_topic_name(clash["namespace"], clash["topic"])
                        raise AlreadyExists(
                            f"topic {topic.kafka_name!r} collides with existing topic "
                            f"{existing!r} (Kafka treats '.' and '_' alike)"
                        ) from None
                    continue
                error = self._quota_error(topic.owner, charges)
                if error is not None:
                    raise error from None
        raise Unavailable("the registry is too busy with concurrent changes; retry shortly")

    def get_topic(self, namespace: str, name: str) -> Topic | None:
        item = self._get(topic_key(namespace, name))
        return load_record(Topic, item["data"]) if item else None

    def list_topics(
        self, namespace: str, *, prefix: str = "", cursor: str | None = None, limit: int = 100
    ) -> Page[Topic]:
        limit = check_page_size(limit)
        after = topics_after(cursor, namespace, prefix)
        params: dict[str, Any] = {
            "KeyConditionExpression": "#pk = :pk AND begins_with(#sk, :prefix)",
            "ExpressionAttributeNames": {"#pk": "pk", "#sk": "sk"},
            "ExpressionAttributeValues": {
                ":pk": _av(f"NS#{namespace}"),
                ":prefix": _av(f"TOPIC#{prefix}"),
            },
            "ConsistentRead": True,
            # One more than asked, to know whether another page exists.
            "Limit": limit + 1,
        }
        if after is not None:
            params["ExclusiveStartKey"] = _encode(dict(topic_key(namespace, after)))
        topics: list[Topic] = []
        for item in self._query(**params):
            topics.append(load_record(Topic, item["data"]))
            if len(topics) > limit:
                break
        next_cursor = None
        if len(topics) > limit:
            topics = topics[:limit]
            next_cursor = topics_cursor(namespace, prefix, topics[-1].name)
        return Page[Topic](items=topics, next_cursor=next_cursor)

    def iter_all_topics(self) -> Iterator[Topic]:
        batch: list[Item] = []
        for item in self._query_index("gsi2", "ALL#TOPIC", ""):
            batch.append(item)
            if len(batch) == 100:
                yield from (load_record(Topic, i["data"]) for i in self._fresh(batch))
                batch = []
        yield from (load_record(Topic, i["data"]) for i in self._fresh(batch))

    def update_topic(self, topic: Topic, *, expected_version: int, partition_limit: int) -> Topic:
        for _ in range(MAX_ATTEMPTS):
            item = self._get(topic_key(topic.namespace, topic.name))
            if item is None:
                raise NotFound(f"topic {topic.kafka_name!r} does not exist")
            if int(item["version"]) != expected_version:
                raise Conflict(
                    f"topic {topic.kafka_name!r} changed meanwhile (version {item['version']}, "
                    f"expected {expected_version}); read it again and retry"
                )
            if topic.owner != item["owner"]:
                raise BadRequest("a topic's owner cannot be changed")
            stored = merged(topic, version=expected_version + 1)
            delta = topic.partitions - int(item["partitions"])
            actions = [
                (
                    "Update",
                    self._t.update(
                        topic_key(topic.namespace, topic.name),
                        "SET #data = :data, #version = :next, #partitions = :partitions",
                        "#uid = :uid AND #version = :expected",
                        data=dump_record(stored),
                        next=stored.version,
                        partitions=stored.partitions,
                        uid=item["uid"],
                        expected=expected_version,
                    ),
                )
            ]
            charges = [("partitions", delta, partition_limit, QUOTA_PARTITIONS)]
            if delta:
                actions.append(("Update", self._charge(topic.owner, [c[:3] for c in charges])))
            try:
                self._transact(actions)
                return stored
            except _Cancelled as cancelled:
                if cancelled.failed(0):
                    continue  # re-read: gone, or another version now
                error = self._quota_error(topic.owner, charges)
                if error is not None:
                    raise error from None
        raise Unavailable("the registry is too busy with concurrent changes; retry shortly")

    def delete_topic(self, namespace: str, name: str) -> list[Grant]:
        key = topic_key(namespace, name)
        removed: list[Grant] = []
        uid: str | None = None
        for _ in range(MAX_ATTEMPTS):
            item = self._get(key)
            if item is None or (uid is not None and item["uid"] != uid):
                # Finished by a concurrent deleter after we removed some grants.
                if removed:
                    return removed
                raise NotFound(f"topic {kafka_topic_name(namespace, name)!r} does not exist")
            uid = item["uid"]
            if int(item["grant_count"]):
                # Too many grants may exist for one transaction: mark the topic so
                # no grant can be added, remove its grants in chunks, then the topic.
                if self._conditional(
                    self._client.update_item,
                    self._t.update(key, "SET #purging = :yes", "#uid = :uid", yes=True, uid=uid),
                ):
                    removed += self._purge_grants(
                        key, uid, f"GRANT#{GrantKind.TOPIC.value}#{name}#"
                    )
                continue
            try:
                self._transact(
                    [
                        (
                            "Delete",
                            self._t.delete(
                                key,
                                "#uid = :uid AND #version = :version AND #grant_count = :zero",
                                uid=uid,
                                version=item["version"],
                                zero=0,
                            ),
                        ),
                        (
                            "Delete",
                            self._t.delete(
                                collision_marker_key(namespace, name),
                                "#namespace = :namespace AND #topic = :topic",
                                namespace=namespace,
                                topic=name,
                            ),
                        ),
                        (
                            "Update",
                            self._t.update(
                                namespace_key(namespace),
                                "SET #topic_count = #topic_count - :one",
                                one=1,
                            ),
                        ),
                        (
                            "Update",
                            self._release(
                                item["owner"], {"topics": 1, "partitions": int(item["partitions"])}
                            ),
                        ),
                    ]
                )
                return removed
            except _Cancelled:
                continue  # a new grant, version or a concurrent delete: look again
        raise Unavailable("the registry is too busy with concurrent changes; retry shortly")

    # -- grants -----------------------------------------------------------------------------

    def _grant_container(self, grant: Grant) -> tuple[Key, Item | None]:
        if grant.kind is GrantKind.TOPIC:
            key = topic_key(grant.namespace, grant.target)
        else:
            key = namespace_key(grant.namespace)
        item = self._get(key)
        if item is not None and item.get("purging"):
            item = None  # being deleted: as good as gone
        return key, item

    def put_grant(self, grant: Grant, *, limit: int) -> Grant:
        key = grant_key(grant.namespace, grant.kind, grant.target, grant.grantee)
        charges = [("grants", 1, limit, QUOTA_GRANTS)]
        for _ in range(MAX_ATTEMPTS):
            container_key, container = self._grant_container(grant)
            if container is None:
                if grant.kind is GrantKind.TOPIC:
                    what = f"topic {kafka_topic_name(grant.namespace, grant.target)!r}"
                else:
                    what = f"namespace {grant.namespace!r}"
                raise NotFound(f"{what} does not exist")
            uid = container["uid"]
            existing = self._get(key)
            item: Item = {
                **key,
                "data": dump_record(grant),
                "granted_by": grant.granted_by,
                "container_uid": uid,
                "gsi1pk": f"GRANTEE#{grant.grantee}",
                "gsi1sk": f"GRANT#{grant.namespace}#{grant.kind.value}#{grant.target}",
            }
            container_ok = "#uid = :uid AND attribute_not_exists(#purging)"
            actions: list[tuple[str, dict[str, Any]]]
            if existing is None:
                actions = [
                    ("Put", self._t.put(item, "attribute_not_exists(#pk)")),
                    (
                        "Update",
                        self._t.update(
                            container_key,
                            "SET #grant_count = #grant_count + :one",
                            container_ok,
                            one=1,
                            uid=uid,
                        ),
                    ),
                    ("Update", self._charge(grant.granted_by, [c[:3] for c in charges])),
                ]
            else:
                same_grant = "#granted_by = :old_granter AND #container_uid = :uid"
                actions = [
                    (
                        "Put",
                        self._t.put(item, same_grant, old_granter=existing["granted_by"], uid=uid),
                    ),
                    ("ConditionCheck", self._t.check(container_key, container_ok, uid=uid)),
                ]
                if existing["granted_by"] != grant.granted_by:
                    # The grant moves to another granter's count.
                    actions += [
                        ("Update", self._charge(grant.granted_by, [c[:3] for c in charges])),
                        ("Update", self._release(existing["granted_by"], {"grants": 1})),
                    ]
            try:
                self._transact(actions)
                return grant
            except _Cancelled as cancelled:
                if cancelled.failed(0) or cancelled.failed(1):
                    continue  # the grant or its container changed: look again
                error = self._quota_error(grant.granted_by, charges)
                if error is not None:
                    raise error from None
        raise Unavailable("the registry is too busy with concurrent changes; retry shortly")

    def get_grant(self, namespace: str, kind: GrantKind, target: str, grantee: str) -> Grant | None:
        item = self._get(grant_key(namespace, kind, target, grantee))
        return load_record(Grant, item["data"]) if item else None

    def delete_grant(self, namespace: str, kind: GrantKind, target: str, grantee: str) -> bool:
        key = grant_key(namespace, kind, target, grantee)
        container = (
            topic_key(namespace, target) if kind is GrantKind.TOPIC else namespace_key(namespace)
        )
        for _ in range(MAX_ATTEMPTS):
            item = self._get(key)
            if item is None:
                return False
            try:
                self._transact(self._grant_deletes(container, item["container_uid"], [item]))
                return True
            except _Cancelled:
                continue
        raise Unavailable("the registry is too busy with concurrent changes; retry shortly")

    def list_grants(
        self, namespace: str, *, kind: GrantKind | None = None, target: str | None = None
    ) -> list[Grant]:
        prefix = "GRANT#"
        if kind is not None:
            prefix += f"{kind.value}#"
            if target is not None:
                prefix += f"{target}#"
        grants = [
            load_record(Grant, item["data"])
            for item in self._query_partition(f"NS#{namespace}", prefix)
        ]
        grants = [
            grant
            for grant in grants
            if (kind is None or grant.kind is kind) and (target is None or grant.target == target)
        ]
        return sorted(grants, key=lambda g: (g.kind.value, g.target, g.grantee))

    def list_grants_for_grantee(self, grantee: str) -> list[Grant]:
        items = self._fresh(list(self._query_index("gsi1", f"GRANTEE#{grantee}", "GRANT#")))
        grants = [load_record(Grant, item["data"]) for item in items]
        return sorted(
            (g for g in grants if g.grantee == grantee),
            key=lambda g: (g.namespace, g.kind.value, g.target),
        )

    # -- keys -------------------------------------------------------------------------------

    def create_key(self, key: AccessKey, *, limit: int) -> None:
        charges = [("keys", 1, limit, QUOTA_KEYS)]
        item: Item = {
            **access_key_key(key.key_id),
            "data": dump_record(key),
            "owner": key.owner,
            "gsi1pk": f"OWNER#{key.owner}",
            "gsi1sk": f"KEY#{key.key_id}",
        }
        name_marker: Item = {**key_name_key(key.owner, key.name), "key_id": key.key_id}
        for _ in range(MAX_ATTEMPTS):
            try:
                self._transact(
                    [
                        ("Put", self._t.put(item, "attribute_not_exists(#pk)")),
                        ("Put", self._t.put(name_marker, "attribute_not_exists(#pk)")),
                        ("Update", self._charge(key.owner, [c[:3] for c in charges])),
                    ]
                )
                return
            except _Cancelled as cancelled:
                if cancelled.failed(0):
                    raise AlreadyExists(f"key id {key.key_id!r} already exists") from None
                if cancelled.failed(1):
                    raise AlreadyExists(f"you already have a key named {key.name!r}") from None
                error = self._quota_error(key.owner, charges)
                if error is not None:
                    raise error from None
        raise Unavailable("the registry is too busy with concurrent changes; retry shortly")

    @staticmethod
    def _load_key(item: Item) -> AccessKey:
        key = load_record(AccessKey, item["data"])
        if item.get("last_used_at"):
            key = merged(key, last_used_at=item["last_used_at"])
        return key

    def get_key(self, key_id: str) -> AccessKey | None:
        item = self._get(access_key_key(key_id))
        return self._load_key(item) if item else None

    def list_keys(self, owner: str) -> list[AccessKey]:
        items = self._fresh(list(self._query_index("gsi1", f"OWNER#{owner}", "KEY#")))
        keys = [self._load_key(item) for item in items]
        return sorted(
            (key for key in keys if key.owner == owner),
            key=lambda key: (epoch_seconds(key.created_at), key.key_id),
        )

    def delete_key(self, owner: str, key_id: str) -> bool:
        key = self.get_key(key_id)
        if key is None or key.owner != owner:
            return False
        try:
            self._transact(
                [
                    (
                        "Delete",
                        self._t.delete(access_key_key(key_id), "#owner = :owner", owner=owner),
                    ),
                    ("Delete", self._t.delete(key_name_key(owner, key.name))),
                    ("Update", self._release(owner, {"keys": 1})),
                ]
            )
        except _Cancelled:
            return False  # deleted concurrently
        return True

    def touch_key(self, key_id: str, when: datetime) -> None:
        # Beside the record, so a touch never rewrites (or races) the record.
        self._conditional(
            self._client.update_item,
            self._t.update(
                access_key_key(key_id),
                "SET #last_used_at = :when",
                "attribute_exists(#pk)",
                when=when.isoformat(),
            ),
        )

    # -- triggers ---------------------------------------------------------------------------

    @staticmethod
    def _trigger_index(trigger: Trigger) -> Item:
        return {
            "gsi1pk": f"OWNER#{trigger.owner}",
            "gsi1sk": trigger_gsi1sk(trigger.namespace, trigger.topic, trigger.trigger_id),
            "gsi2pk": "ALL#TRIGGER",
            "gsi2sk": trigger.trigger_id,
        }

    @staticmethod
    def _topic_entry(trigger: Trigger) -> Item:
        return {
            **topic_trigger_key(trigger.namespace, trigger.topic, trigger.trigger_id),
            "trigger_id": trigger.trigger_id,
        }

    def create_trigger(self, trigger: Trigger, *, limit: int) -> None:
        charges = [("triggers", 1, limit, QUOTA_TRIGGERS)]
        item: Item = {
            **trigger_key(trigger.trigger_id),
            "data": dump_record(trigger),
            "owner": trigger.owner,
            "version": trigger.version,
            **self._trigger_index(trigger),
        }
        for _ in range(MAX_ATTEMPTS):
            try:
                self._transact(
                    [
                        ("Put", self._t.put(item, "attribute_not_exists(#pk)")),
                        ("Update", self._charge(trigger.owner, [c[:3] for c in charges])),
                        ("Put", self._t.put(self._topic_entry(trigger))),
                    ]
                )
                return
            except _Cancelled as cancelled:
                if cancelled.failed(0):
                    raise AlreadyExists(f"trigger {trigger.trigger_id!r} already exists") from None
                error = self._quota_error(trigger.owner, charges)
                if error is not None:
                    raise error from None
        raise Unavailable("the registry is too busy with concurrent changes; retry shortly")

    def get_trigger(self, trigger_id: str) -> Trigger | None:
        item = self._get(trigger_key(trigger_id))
        return load_record(Trigger, item["data"]) if item else None

    def list_triggers(
        self,
        owner: str,
        *,
        namespace: str | None = None,
        topic: str | None = None,
        cursor: str | None = None,
        limit: int = 100,
    ) -> Page[Trigger]:
        limit = check_page_size(limit)
        after = triggers_after(cursor, owner, namespace, topic)
        sk_prefix = "TRIGGER#"
        if namespace is not None:
            sk_prefix += f"{namespace}#"
            if topic is not None:
                sk_prefix += f"{topic}#"
        start: Key | None = None
        if after is not None:
            start = {
                **trigger_key(after["trigger_id"]),
                "gsi1pk": f"OWNER#{owner}",
                "gsi1sk": trigger_gsi1sk(after["namespace"], after["topic"], after["trigger_id"]),
            }
        matched: list[Item] = []
        for item in self._query_index("gsi1", f"OWNER#{owner}", sk_prefix, start, page=limit + 1):
            trigger = load_record(Trigger, item["data"])
            if (namespace is None or trigger.namespace == namespace) and (
                topic is None or trigger.topic == topic
            ):
                matched.append(item)
                if len(matched) > limit:
                    break
        more = len(matched) > limit
        triggers = [load_record(Trigger, item["data"]) for item in self._fresh(matched[:limit])]
        next_cursor = None
        if more:
            last = load_record(Trigger, matched[limit - 1]["data"])
            next_cursor = triggers_cursor(
                owner,
                namespace,
                topic,
                {"namespace": last.namespace, "topic": last.topic, "trigger_id": last.trigger_id},
            )
        return Page[Trigger](items=triggers, next_cursor=next_cursor)

    def list_triggers_on_topic(self, namespace: str, topic: str) -> list[Trigger]:
        if self._get(TOPIC_INDEX_MARKER) is None:
            return self._index_all_triggers(namespace, topic)
        entries = self._query_partition(topic_triggers_pk(namespace, topic), "TRIGGER#")
        keys: list[Item] = [trigger_key(entry["trigger_id"]) for entry in entries]
        triggers = [load_record(Trigger, item["data"]) for item in self._fresh(keys)]
        # The record decides: an older version of this code, still running during a
        # deploy, deletes a trigger without its entry.
        return sorted(
            (t for t in triggers if t.namespace == namespace and t.topic == topic),
            key=lambda t: t.trigger_id,
        )

    def _index_all_triggers(self, namespace: str, topic: str) -> list[Trigger]:
        """Answer from all triggers, giving each its topic-index entry, then set the marker.

        For a table written before the index existed: the first topic delete after the
        upgrade makes the pass every topic delete used to make, and later ones Query.
        Each entry is put together with a check that its trigger is still on that topic,
        so a trigger deleted or moved meanwhile gets no stale entry (one created meanwhile
        wrote its own). Deleting the marker item makes the next lookup run this again.
        """
        triggers = list(self.iter_all_triggers())
        for start in range(0, len(triggers), INDEX_CHUNK):
            chunk = triggers[start : start + INDEX_CHUNK]
            try:
                self._transact([action for t in chunk for action in self._index_actions(t)])
            except _Cancelled:
                # One of them was deleted or moved meanwhile: index the others one by one.
                for trigger in chunk:
                    with contextlib.suppress(_Cancelled):
                        self._transact(self._index_actions(trigger))
        marker: Item = {**TOPIC_INDEX_MARKER, "indexed_at": int(now_epoch())}
        self._client.put_item(**self._t.put(marker))
        return sorted(
            (t for t in triggers if t.namespace == namespace and t.topic == topic),
            key=lambda t: t.trigger_id,
        )

    def _index_actions(self, trigger: Trigger) -> list[tuple[str, dict[str, Any]]]:
        on_topic = trigger_gsi1sk(trigger.namespace, trigger.topic, trigger.trigger_id)
        return [
            (
                "ConditionCheck",
                self._t.check(
                    trigger_key(trigger.trigger_id), "#gsi1sk = :on_topic", on_topic=on_topic
                ),
            ),
            ("Put", self._t.put(self._topic_entry(trigger))),
        ]

    def iter_all_triggers(self) -> Iterator[Trigger]:
        batch: list[Item] = []
        for item in self._query_index("gsi2", "ALL#TRIGGER", ""):
            batch.append(item)
            if len(batch) == 100:
                yield from (load_record(Trigger, i["data"]) for i in self._fresh(batch))
                batch = []
        yield from (load_record(Trigger, i["data"]) for i in self._fresh(batch))

    def update_trigger(self, trigger: Trigger, *, expected_version: int) -> Trigger:
        stored = merged(trigger, version=expected_version + 1)
        index = self._trigger_index(stored)
        key = trigger_key(trigger.trigger_id)
        # The usual update leaves the trigger on its topic (gsi1sk unchanged): one
        # conditional write, and the topic index needs nothing.
        updated = self._conditional(
            self._client.update_item,
            self._t.update(
                key,
                "SET #data = :data, #version = :next",
                "attribute_exists(#pk) AND #version = :expected AND #owner = :owner"
                " AND #gsi1sk = :gsi1sk",
                data=dump_record(stored),
                next=stored.version,
                gsi1sk=index["gsi1sk"],
                expected=expected_version,
                owner=trigger.owner,
            ),
        )
        if updated:
            return stored
        item = self._updatable_trigger(trigger, expected_version, self._get(key))
        # The right version on another topic: move the record and its index entry together.
        before = load_record(Trigger, item["data"])
        actions: list[tuple[str, dict[str, Any]]] = [
            (
                "Update",
                self._t.update(
                    key,
                    "SET #data = :data, #version = :next, #gsi1sk = :gsi1sk",
                    "#version = :expected AND #owner = :owner AND #gsi1sk = :was",
                    data=dump_record(stored),
                    next=stored.version,
                    gsi1sk=index["gsi1sk"],
                    expected=expected_version,
                    owner=trigger.owner,
                    was=item["gsi1sk"],
                ),
            ),
            ("Put", self._t.put(self._topic_entry(stored))),
        ]
        old_entry = topic_trigger_key(before.namespace, before.topic, before.trigger_id)
        if old_entry != topic_trigger_key(stored.namespace, stored.topic, stored.trigger_id):
            actions.append(("Delete", self._t.delete(old_entry)))
        try:
            self._transact(actions)
        except _Cancelled:
            self._updatable_trigger(trigger, expected_version, self._get(key))
            raise Conflict(
                f"trigger {trigger.trigger_id!r} changed meanwhile; read it again and retry"
            ) from None
        return stored

    @staticmethod
    def _updatable_trigger(trigger: Trigger, expected_version: int, item: Item | None) -> Item:
        """The stored ``item`` if an update of ``trigger`` may apply to it; else why not."""
        if item is None:
            raise NotFound(f"trigger {trigger.trigger_id!r} does not exist")
        if item["owner"] != trigger.owner:
            raise BadRequest("a trigger's owner cannot be changed")
        if int(item["version"]) != expected_version:
            raise Conflict(
                f"trigger {trigger.trigger_id!r} changed meanwhile (version {item['version']}, "
                f"expected {expected_version}); read it again and retry"
            )
        return item

    def delete_trigger(self, trigger_id: str) -> bool:
        for _ in range(MAX_ATTEMPTS):
            item = self._get(trigger_key(trigger_id))
            if item is None:
                return False
            trigger = load_record(Trigger, item["data"])
            try:
                self._transact(
                    [
                        (
                            "Delete",
                            # Still on the topic read: the entry deleted with it is its own.
                            self._t.delete(
                                trigger_key(trigger_id), "#gsi1sk = :gsi1sk", gsi1sk=item["gsi1sk"]
                            ),
                        ),
                        ("Update", self._release(item["owner"], {"triggers": 1})),
                        (
                            "Delete",
                            self._t.delete(
                                topic_trigger_key(trigger.namespace, trigger.topic, trigger_id)
                            ),
                        ),
                    ]
                )
                return True
            except _Cancelled:
                continue  # deleted or moved meanwhile: look again
        raise Unavailable("the registry is too busy with concurrent changes; retry shortly")

    # -- idempotency ------------------------------------------------------------------------

    def get_idempotency(self, scope: str, key: str) -> IdempotencyRecord | None:
        item = self._get(idempotency_key(scope, key))
        # DynamoDB's TTL deletes late (up to days): expiry is decided here.
        if item is None or float(item["expires"]) <= now_epoch():
            return None
        return load_record(IdempotencyRecord, item["data"])

    def put_idempotency(self, record: IdempotencyRecord) -> bool:
        expires = epoch_seconds(record.expires_at)
        item: Item = {
            **idempotency_key(record.scope, record.key),
            "data": dump_record(record),
            "expires": Decimal(repr(expires)),
            "ttl": int(expires) + 1,
        }
        return self._conditional(
            self._client.put_item,
            self._t.put(item, "attribute_not_exists(#pk) OR #expires <= :now", now=_decimal_now()),
        )

    # -- REST consumer instances --------------------------------------------------------------

    def _consumer_item(self, instance: ConsumerInstance) -> Item:
        expires = epoch_seconds(instance.last_used_at) + self.consumer_idle_seconds
        return {
            **consumer_key(instance.group, instance.instance_id),
            "data": dump_record(instance),
            "version": instance.version,
            "expires": Decimal(repr(expires)),
            "ttl": int(expires) + 1,
        }

    def put_consumer_instance(self, instance: ConsumerInstance) -> None:
        created = self._conditional(
            self._client.put_item,
            self._t.put(
                self._consumer_item(instance),
                # An instance idle past its retention is gone, even before TTL deletes it.
                "attribute_not_exists(#pk) OR #expires <= :now",
                now=_decimal_now(),
            ),
        )
        if not created:
            raise AlreadyExists(
                f"consumer instance {instance.instance_id!r} already exists in group "
                f"{instance.group!r}"
            )

    def get_consumer_instance(self, group: str, instance_id: str) -> ConsumerInstance | None:
        item = self._get(consumer_key(group, instance_id))
        if item is None or float(item["expires"]) <= now_epoch():
            return None
        return load_record(ConsumerInstance, item["data"])

    def update_consumer_instance(
        self, instance: ConsumerInstance, *, expected_version: int
    ) -> ConsumerInstance:
        stored = merged(instance, version=expected_version + 1)
        item = self._consumer_item(stored)
        updated = self._conditional(
            self._client.update_item,
            self._t.update(
                consumer_key(instance.group, instance.instance_id),
                "SET #data = :data, #version = :next, #expires = :expires, #ttl = :ttl",
                "attribute_exists(#pk) AND #version = :expected AND #expires > :now",
                data=item["data"],
                next=stored.version,
                expires=item["expires"],
                ttl=item["ttl"],
                expected=expected_version,
                now=_decimal_now(),
            ),
        )
        if updated:
            return stored
        current = self.get_consumer_instance(instance.group, instance.instance_id)
        if current is None:
            raise NotFound(
                f"consumer instance {instance.instance_id!r} of group {instance.group!r} "
                "does not exist"
            )
        raise Conflict(
            f"consumer instance {instance.instance_id!r} changed meanwhile (version "
            f"{current.version}, expected {expected_version})"
        )

    def delete_consumer_instance(self, group: str, instance_id: str) -> bool:
        return self._conditional(
            self._client.delete_item,
            self._t.delete(
                consumer_key(group, instance_id),
                "attribute_exists(#pk) AND #expires > :now",
                now=_decimal_now(),
            ),
        )


def _grant_in(container: Key, item: Item) -> bool:
    """Whether a grant item found under a container's key prefix really belongs to it."""
    grant = load_record(Grant, item["data"])
    if container["sk"].startswith("TOPIC#"):
        return grant.kind is GrantKind.TOPIC and grant.target == container["sk"][len("TOPIC#") :]
    return grant.kind is GrantKind.PREFIX


def _only_contention(codes: list[str]) -> bool:
    """Cancelled only because other transactions held the items: worth a retry."""
    retryable = {"TransactionConflict", "None", "ThrottlingError", "ProvisionedThroughputExceeded"}
    return all(code in retryable for code in codes) and any(code != "None" for code in codes)


def _decimal_now() -> Decimal:
    return Decimal(repr(now_epoch()))


def _backoff(attempt: int) -> None:
    time.sleep(min(0.5, 0.005 * 2**attempt) * random.uniform(0.5, 1.0))
