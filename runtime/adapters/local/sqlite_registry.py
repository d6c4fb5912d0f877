"""The local fabric's registry: one SQLite file is the whole state.

Safe under uvicorn's thread pool: each thread has its own connection, the file
is in WAL mode (readers never block the writer), and every write runs inside
``BEGIN IMMEDIATE`` so check-then-write sequences (quotas, versions, uniqueness)
are serialized against every other writer, in this process or another.
Records are stored as their pydantic JSON next to the columns we query on, so
they read back exactly as written. See docs/registry.md.
"""

from __future__ import annotations

import sqlite3
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

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
from runtime.domain.errors import AlreadyExists, BadRequest, Conflict, NotFound
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

# Schema migrations, applied in order; the file records how far it got in
# ``schema_version``. Append new steps, never edit applied ones.
MIGRATIONS: list[tuple[int, tuple[str, ...]]] = [
    (
        1,
        (
            """CREATE TABLE identities (
                sub TEXT PRIMARY KEY,
                data TEXT NOT NULL,
                u_namespaces INTEGER NOT NULL DEFAULT 0,
                u_topics INTEGER NOT NULL DEFAULT 0,
                u_partitions INTEGER NOT NULL DEFAULT 0,
                u_keys INTEGER NOT NULL DEFAULT 0,
                u_grants INTEGER NOT NULL DEFAULT 0,
                u_triggers INTEGER NOT NULL DEFAULT 0
            )""",
            """CREATE TABLE namespaces (
                name TEXT PRIMARY KEY,
                owner TEXT NOT NULL,
                data TEXT NOT NULL
            )""",
            "CREATE INDEX namespaces_by_owner ON namespaces (owner, name)",
            """CREATE TABLE topics (
                namespace TEXT NOT NULL,
                name TEXT NOT NULL,
                owner TEXT NOT NULL,
                partitions INTEGER NOT NULL,
                collision_key TEXT NOT NULL UNIQUE,
                version INTEGER NOT NULL,
                data TEXT NOT NULL,
                PRIMARY KEY (namespace, name)
            )""",
            """CREATE TABLE grants (
                namespace TEXT NOT NULL,
                kind TEXT NOT NULL,
                target TEXT NOT NULL,
                grantee TEXT NOT NULL,
                granted_by TEXT NOT NULL,
                data TEXT NOT NULL,
                PRIMARY KEY (namespace, kind, target, grantee)
            )""",
            "CREATE INDEX grants_by_grantee ON grants (grantee, namespace, kind, target)",
            """CREATE TABLE access_keys (
                key_id TEXT PRIMARY KEY,
                owner TEXT NOT NULL,
                name TEXT NOT NULL,
                last_used_at TEXT,
                data TEXT NOT NULL,
                UNIQUE (owner, name)
            )""",
            """CREATE TABLE triggers (
                trigger_id TEXT PRIMARY KEY,
                owner TEXT NOT NULL,
                namespace TEXT NOT NULL,
                topic TEXT NOT NULL,
                version INTEGER NOT NULL,
                data TEXT NOT NULL
            )""",
            "CREATE INDEX triggers_by_owner ON triggers (owner, namespace, topic, trigger_id)",
            """CREATE TABLE idempotency (
                scope TEXT NOT NULL,
                key TEXT NOT NULL,
                expires REAL NOT NULL,
                data TEXT NOT NULL,
                PRIMARY KEY (scope, key)
            )""",
            """CREATE TABLE consumer_instances (
                group_name TEXT NOT NULL,
                instance_id TEXT NOT NULL,
                version INTEGER NOT NULL,
                expires REAL NOT NULL,
                data TEXT NOT NULL,
                PRIMARY KEY (group_name, instance_id)
            )""",
        ),
    ),
    (
        2,
        # Deleting a topic looks up its triggers of every owner (list_triggers_on_topic).
        ("CREATE INDEX triggers_by_topic ON triggers (namespace, topic, trigger_id)",),
    ),
]
SCHEMA_VERSION = MIGRATIONS[-1][0]

DEFAULT_CONSUMER_IDLE_SECONDS = 86_400

_USAGE_COLUMNS = ("u_namespaces", "u_topics", "u_partitions", "u_keys", "u_grants", "u_triggers")


class _ThreadConnection:
    """One thread's connection; closed when the thread (and so this holder) goes away."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self.connection = connection

    def __del__(self) -> None:
        self.connection.close()


class SqliteRegistry:
    """``Registry`` on a SQLite file (local mode)."""

    def __init__(
        self,
        path: str | Path,
        *,
        consumer_idle_seconds: int = DEFAULT_CONSUMER_IDLE_SECONDS,
        busy_timeout_seconds: float = 30.0,
    ) -> None:
        self.path = Path(path)
        self.consumer_idle_seconds = consumer_idle_seconds
        self._busy_timeout = busy_timeout_seconds
        self._local = threading.local()
        # Weak: a thread's connection closes when the thread ends (thread pools churn).
        self._connections: weakref.WeakSet[_ThreadConnection] = weakref.WeakSet()
        self._connections_lock = threading.Lock()
        self._migrate()

    # -- connections and transactions -------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        holder: _ThreadConnection | None = getattr(self._local, "holder", None)
        if holder is None:
            # isolation_level=None: we issue BEGIN/COMMIT ourselves.
            connection = sqlite3.connect(
                self.path,
                timeout=self._busy_timeout,
                isolation_level=None,
                check_same_thread=False,
            )
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            holder = _ThreadConnection(connection)
            self._local.holder = holder
            with self._connections_lock:
                self._connections.add(holder)
        return holder.connection

    def open_connections(self) -> int:
        """How many threads hold a connection now (for tests and diagnostics)."""
        with self._connections_lock:
            return len(self._connections)

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One serialized write transaction (the write lock is taken up front)."""
        connection = self._connection()
        connection.execute("BEGIN IMMEDIATE")
        try:
            yield connection
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")

    def _read_one(self, sql: str, params: tuple[Any, ...]) -> tuple[Any, ...] | None:
        row: tuple[Any, ...] | None = self._connection().execute(sql, params).fetchone()
        return row

    def _read_all(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        return self._connection().execute(sql, params).fetchall()

    def close(self) -> None:
        with self._connections_lock:
            for holder in list(self._connections):
                holder.connection.close()
            self._connections = weakref.WeakSet()
        self._local = threading.local()

    def _migrate(self) -> None:
        with self._write() as db:
            db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = db.execute("SELECT MAX(version) FROM schema_version").fetchone()
            current = row[0] or 0
            if current > SCHEMA_VERSION:
                raise RuntimeError(
                    f"{self.path} has registry schema {current}; this code knows up to "
                    f"{SCHEMA_VERSION} (upgrade the fabric)"
                )
            for version, statements in MIGRATIONS:
                if version > current:
                    for statement in statements:
                        db.execute(statement)
                    db.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))

    def schema_version(self) -> int:
        row = self._read_one("SELECT MAX(version) FROM schema_version", ())
        return int(row[0]) if row else 0

    # -- usage counters -----------------------------------------------------------------

    @staticmethod
    def _usage_row(db: sqlite3.Connection, owner: str) -> dict[str, int]:
        row = db.execute(
            f"SELECT {', '.join(_USAGE_COLUMNS)} FROM identities WHERE sub = ?",  # noqa: S608
            (owner,),
        ).fetchone()
        if row is None:
            raise NotFound(f"identity {owner!r} is not registered")
        return dict(zip(_USAGE_COLUMNS, row, strict=True))

    def _take(
        self,
        db: sqlite3.Connection,
        owner: str,
        charges: list[tuple[str, int, str, int]],
    ) -> None:
        """Add to the owner's counters, refusing to go past a limit.

        ``charges``: (column, amount, quota name, limit); checked in order.
        """
        usage = self._usage_row(db, owner)
        for column, amount, quota, limit in charges:
            if amount > 0 and usage[column] + amount > limit:
                raise quota_exceeded(quota, limit, owner, requested=amount)
        for column, amount, _, _ in charges:
            self._add(db, owner, column, amount)

    @staticmethod
    def _add(db: sqlite3.Connection, owner: str, column: str, amount: int) -> None:
        if column not in _USAGE_COLUMNS:  # never build SQL from anything else
            raise ValueError(column)
        db.execute(
            f"UPDATE identities SET {column} = {column} + ? WHERE sub = ?",  # noqa: S608
            (amount, owner),
        )

    # -- identities ---------------------------------------------------------------------

    def ensure_identity(self, identity: Identity, default_namespace: Namespace) -> Identity:
        if default_namespace.owner != identity.sub or (
            default_namespace.name != identity.default_namespace
        ):
            raise BadRequest("the default namespace must be the identity's own and named by it")
        with self._write() as db:
            row = db.execute(
                "SELECT data FROM identities WHERE sub = ?", (identity.sub,)
            ).fetchone()
            if row is not None:
                return load_record(Identity, row[0])
            taken = db.execute(
                "SELECT owner FROM namespaces WHERE name = ?", (default_namespace.name,)
            ).fetchone()
            if taken is not None:
                raise AlreadyExists(
                    f"namespace {default_namespace.name!r} is held by another identity"
                )
            db.execute(
                "INSERT INTO identities (sub, data, u_namespaces) VALUES (?, ?, 1)",
                (identity.sub, dump_record(identity)),
            )
            db.execute(
                "INSERT INTO namespaces (name, owner, data) VALUES (?, ?, ?)",
                (default_namespace.name, identity.sub, dump_record(default_namespace)),
            )
        return identity

    def get_identity(self, sub: str) -> Identity | None:
        row = self._read_one("SELECT data FROM identities WHERE sub = ?", (sub,))
        return load_record(Identity, row[0]) if row else None

    def get_usage(self, sub: str) -> Usage:
        row = self._read_one(
            f"SELECT {', '.join(_USAGE_COLUMNS)} FROM identities WHERE sub = ?",  # noqa: S608
            (sub,),
        )
        if row is None:
            return Usage()
        return Usage(
            **{column[2:]: value for column, value in zip(_USAGE_COLUMNS, row, strict=True)}
        )

    # -- namespaces ---------------------------------------------------------------------

    def create_namespace(self, namespace: Namespace, *, limit: int) -> None:
        with self._write() as db:
            if db.execute("SELECT 1 FROM namespaces WHERE name = ?", (namespace.name,)).fetchone():
                raise AlreadyExists(f"namespace {namespace.name!r} already exists")
            self._take(db, namespace.owner, [("u_namespaces", 1, QUOTA_NAMESPACES, limit)])
            db.execute(
                "INSERT INTO namespaces (name, owner, data) VALUES (?, ?, ?)",
                (namespace.name, namespace.owner, dump_record(namespace)),
            )

    def get_namespace(self, name: str) -> Namespace | None:
        row = self._read_one("SELECT data FROM namespaces WHERE name = ?", (name,))
        return load_record(Namespace, row[0]) if row else None

    def list_namespaces(self, owner: str) -> list[Namespace]:
        rows = self._read_all("SELECT data FROM namespaces WHERE owner = ? ORDER BY name", (owner,))
        return [load_record(Namespace, row[0]) for row in rows]

    def delete_namespace(self, name: str) -> None:
        with self._write() as db:
            row = db.execute("SELECT owner FROM namespaces WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise NotFound(f"namespace {name!r} does not exist")
            (topics,) = db.execute(
                "SELECT COUNT(*) FROM topics WHERE namespace = ?", (name,)
            ).fetchone()
            if topics:
                raise Conflict(f"namespace {name!r} still has {topics} topic(s)")
            # Prefix grants die with their namespace (topic grants died with their topics).
            for _, granted_by in self._grant_rows(db, name, GrantKind.PREFIX, None):
                self._add(db, granted_by, "u_grants", -1)
            db.execute("DELETE FROM grants WHERE namespace = ?", (name,))
            db.execute("DELETE FROM namespaces WHERE name = ?", (name,))
            self._add(db, row[0], "u_namespaces", -1)

    # -- topics -------------------------------------------------------------------------

    def create_topic(self, topic: Topic, *, topic_limit: int, partition_limit: int) -> None:
        collision = collision_key(kafka_topic_name(topic.namespace, topic.name))
        with self._write() as db:
            if not db.execute(
                "SELECT 1 FROM namespaces WHERE name = ?", (topic.namespace,)
            ).fetchone():
                raise NotFound(f"namespace {topic.namespace!r} does not exist")
            if db.execute(
                "SELECT 1 FROM topics WHERE namespace = ? AND name = ?",
                (topic.namespace, topic.name),
            ).fetchone():
                raise AlreadyExists(f"topic {topic.kafka_name!r} already exists")
            clash = db.execute(
                "SELECT namespace, name FROM topics WHERE collision_key = ?", (collision,)
            ).fetchone()
            if clash:
                raise AlreadyExists(
                    f"topic {topic.kafka_name!r} collides with existing topic "
                    f"{kafka_topic_name(*clash)!r} (Kafka treats '.' and '_' alike)"
                )
            self._take(
                db,
                topic.owner,
                [
                    ("u_topics", 1, QUOTA_TOPICS, topic_limit),
                    ("u_partitions", topic.partitions, QUOTA_PARTITIONS, partition_limit),
                ],
            )
            db.execute(
                "INSERT INTO topics (namespace, name, owner, partitions, collision_key, version,"
                " data) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    topic.namespace,
                    topic.name,
                    topic.owner,
                    topic.partitions,
                    collision,
                    topic.version,
                    dump_record(topic),
                ),
            )

    def get_topic(self, namespace: str, name: str) -> Topic | None:
        row = self._read_one(
            "SELECT data FROM topics WHERE namespace = ? AND name = ?", (namespace, name)
        )
        return load_record(Topic, row[0]) if row else None

    def list_topics(
        self, namespace: str, *, prefix: str = "", cursor: str | None = None, limit: int = 100
    ) -> Page[Topic]:
        limit = check_page_size(limit)
        after = topics_after(cursor, namespace, prefix) or ""
        # substr() rather than LIKE: a prefix may contain '%' or '_'.
        rows = self._read_all(
            "SELECT data FROM topics WHERE namespace = ? AND substr(name, 1, ?) = ?"
            " AND name > ? ORDER BY name LIMIT ?",
            (namespace, len(prefix), prefix, after, limit + 1),
        )
        topics = [load_record(Topic, row[0]) for row in rows]
        next_cursor = None
        if len(topics) > limit:
            topics = topics[:limit]
            next_cursor = topics_cursor(namespace, prefix, topics[-1].name)
        return Page[Topic](items=topics, next_cursor=next_cursor)

    def iter_all_topics(self) -> Iterator[Topic]:
        rows = self._read_all("SELECT data FROM topics ORDER BY namespace, name", ())
        for row in rows:
            yield load_record(Topic, row[0])

    def update_topic(self, topic: Topic, *, expected_version: int, partition_limit: int) -> Topic:
        with self._write() as db:
            row = db.execute(
                "SELECT owner, partitions, version FROM topics WHERE namespace = ? AND name = ?",
                (topic.namespace, topic.name),
            ).fetchone()
            if row is None:
                raise NotFound(f"topic {topic.kafka_name!r} does not exist")
            owner, partitions, version = row
            if version != expected_version:
                raise Conflict(
                    f"topic {topic.kafka_name!r} changed meanwhile (version {version}, "
                    f"expected {expected_version}); read it again and retry"
                )
            if topic.owner != owner:
                raise BadRequest("a topic's owner cannot be changed")
            delta = topic.partitions - partitions
            if delta:
                self._take(db, owner, [("u_partitions", delta, QUOTA_PARTITIONS, partition_limit)])
            stored = merged(topic, version=expected_version + 1)
            db.execute(
                "UPDATE topics SET partitions = ?, version = ?, data = ?"
                " WHERE namespace = ? AND name = ?",
                (
                    stored.partitions,
                    stored.version,
                    dump_record(stored),
                    topic.namespace,
                    topic.name,
                ),
            )
        return stored

    def delete_topic(self, namespace: str, name: str) -> list[Grant]:
        with self._write() as db:
            row = db.execute(
                "SELECT owner, partitions FROM topics WHERE namespace = ? AND name = ?",
                (namespace, name),
            ).fetchone()
            if row is None:
                raise NotFound(f"topic {kafka_topic_name(namespace, name)!r} does not exist")
            owner, partitions = row
            removed = [
                load_record(Grant, data)
                for data, _ in self._grant_rows(db, namespace, GrantKind.TOPIC, name)
            ]
            for grant in removed:
                self._add(db, grant.granted_by, "u_grants", -1)
            db.execute(
                "DELETE FROM grants WHERE namespace = ? AND kind = ? AND target = ?",
                (namespace, GrantKind.TOPIC.value, name),
            )
            db.execute("DELETE FROM topics WHERE namespace = ? AND name = ?", (namespace, name))
            self._add(db, owner, "u_topics", -1)
            self._add(db, owner, "u_partitions", -partitions)
        return removed

    # -- grants -------------------------------------------------------------------------

    @staticmethod
    def _grant_rows(
        db: sqlite3.Connection, namespace: str, kind: GrantKind | None, target: str | None
    ) -> list[tuple[str, str]]:
        sql = "SELECT data, granted_by FROM grants WHERE namespace = ?"
        params: list[Any] = [namespace]
        if kind is not None:
            sql += " AND kind = ?"
            params.append(kind.value)
        if target is not None:
            sql += " AND target = ?"
            params.append(target)
        sql += " ORDER BY kind, target, grantee"
        return db.execute(sql, params).fetchall()

    def put_grant(self, grant: Grant, *, limit: int) -> Grant:
        with self._write() as db:
            if grant.kind is GrantKind.TOPIC:
                if not db.execute(
                    "SELECT 1 FROM topics WHERE namespace = ? AND name = ?",
                    (grant.namespace, grant.target),
                ).fetchone():
                    raise NotFound(
                        f"topic {kafka_topic_name(grant.namespace, grant.target)!r} does not exist"
                    )
            elif not db.execute(
                "SELECT 1 FROM namespaces WHERE name = ?", (grant.namespace,)
            ).fetchone():
                raise NotFound(f"namespace {grant.namespace!r} does not exist")
            key = (grant.namespace, grant.kind.value, grant.target, grant.grantee)
            existing = db.execute(
                "SELECT granted_by FROM grants WHERE namespace = ? AND kind = ? AND target = ?"
                " AND grantee = ?",
                key,
            ).fetchone()
            if existing is None or existing[0] != grant.granted_by:
                # A new grant, or one moving to another granter: it counts for the new one.
                self._take(db, grant.granted_by, [("u_grants", 1, QUOTA_GRANTS, limit)])
                if existing is not None:
                    self._add(db, existing[0], "u_grants", -1)
            db.execute(
                "INSERT OR REPLACE INTO grants (namespace, kind, target, grantee, granted_by, data)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (*key, grant.granted_by, dump_record(grant)),
            )
        return grant

    def get_grant(self, namespace: str, kind: GrantKind, target: str, grantee: str) -> Grant | None:
        row = self._read_one(
            "SELECT data FROM grants WHERE namespace = ? AND kind = ? AND target = ?"
            " AND grantee = ?",
            (namespace, kind.value, target, grantee),
        )
        return load_record(Grant, row[0]) if row else None

    def delete_grant(self, namespace: str, kind: GrantKind, target: str, grantee: str) -> bool:
        key = (namespace, kind.value, target, grantee)
        with self._write() as db:
            row = db.execute(
                "SELECT granted_by FROM grants WHERE namespace = ? AND kind = ? AND target = ?"
                " AND grantee = ?",
                key,
            ).fetchone()
            if row is None:
                return False
            db.execute(
                "DELETE FROM grants WHERE namespace = ? AND kind = ? AND target = ?"
                " AND grantee = ?",
                key,
            )
            self._add(db, row[0], "u_grants", -1)
        return True

    def list_grants(
        self, namespace: str, *, kind: GrantKind | None = None, target: str | None = None
    ) -> list[Grant]:
        rows = self._grant_rows(self._connection(), namespace, kind, target)
        return [load_record(Grant, data) for data, _ in rows]

    def list_grants_for_grantee(self, grantee: str) -> list[Grant]:
        rows = self._read_all(
            "SELECT data FROM grants WHERE grantee = ? ORDER BY namespace, kind, target",
            (grantee,),
        )
        return [load_record(Grant, row[0]) for row in rows]

    # -- keys ---------------------------------------------------------------------------

    def create_key(self, key: AccessKey, *, limit: int) -> None:
        with self._write() as db:
            if db.execute("SELECT 1 FROM access_keys WHERE key_id = ?", (key.key_id,)).fetchone():
                raise AlreadyExists(f"key id {key.key_id!r} already exists")
            if db.execute(
                "SELECT 1 FROM access_keys WHERE owner = ? AND name = ?", (key.owner, key.name)
            ).fetchone():
                raise AlreadyExists(f"you already have a key named {key.name!r}")
            self._take(db, key.owner, [("u_keys", 1, QUOTA_KEYS, limit)])
            db.execute(
                "INSERT INTO access_keys (key_id, owner, name, data) VALUES (?, ?, ?, ?)",
                (key.key_id, key.owner, key.name, dump_record(key)),
            )

    @staticmethod
    def _load_key(data: str, last_used_at: str | None) -> AccessKey:
        key = load_record(AccessKey, data)
        if last_used_at is not None:
            key = merged(key, last_used_at=last_used_at)
        return key

    def get_key(self, key_id: str) -> AccessKey | None:
        row = self._read_one(
            "SELECT data, last_used_at FROM access_keys WHERE key_id = ?", (key_id,)
        )
        return self._load_key(row[0], row[1]) if row else None

    def list_keys(self, owner: str) -> list[AccessKey]:
        rows = self._read_all(
            "SELECT data, last_used_at FROM access_keys WHERE owner = ?", (owner,)
        )
        keys = [self._load_key(data, last_used) for data, last_used in rows]
        return sorted(keys, key=lambda key: (epoch_seconds(key.created_at), key.key_id))

    def delete_key(self, owner: str, key_id: str) -> bool:
        with self._write() as db:
            deleted = db.execute(
                "DELETE FROM access_keys WHERE key_id = ? AND owner = ?", (key_id, owner)
            ).rowcount
            if deleted:
                self._add(db, owner, "u_keys", -1)
        return bool(deleted)

    def touch_key(self, key_id: str, when: datetime) -> None:
        # Kept beside the record so a touch never rewrites (or races) the record.
        with self._write() as db:
            db.execute(
                "UPDATE access_keys SET last_used_at = ? WHERE key_id = ?",
                (when.isoformat(), key_id),
            )

    # -- triggers -----------------------------------------------------------------------

    def create_trigger(self, trigger: Trigger, *, limit: int) -> None:
        with self._write() as db:
            if db.execute(
                "SELECT 1 FROM triggers WHERE trigger_id = ?", (trigger.trigger_id,)
            ).fetchone():
                raise AlreadyExists(f"trigger {trigger.trigger_id!r} already exists")
            self._take(db, trigger.owner, [("u_triggers", 1, QUOTA_TRIGGERS, limit)])
            db.execute(
                "INSERT INTO triggers (trigger_id, owner, namespace, topic, version, data)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (
                    trigger.trigger_id,
                    trigger.owner,
                    trigger.namespace,
                    trigger.topic,
                    trigger.version,
                    dump_record(trigger),
                ),
            )

    def get_trigger(self, trigger_id: str) -> Trigger | None:
        row = self._read_one("SELECT data FROM triggers WHERE trigger_id = ?", (trigger_id,))
        return load_record(Trigger, row[0]) if row else None

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
        sql = "SELECT data FROM triggers WHERE owner = ?"
        params: list[Any] = [owner]
        if namespace is not None:
            sql += " AND namespace = ?"
            params.append(namespace)
        if topic is not None:
            sql += " AND topic = ?"
            params.append(topic)
        if after is not None:
            sql += " AND (namespace, topic, trigger_id) > (?, ?, ?)"
            params += [after["namespace"], after["topic"], after["trigger_id"]]
        sql += " ORDER BY namespace, topic, trigger_id LIMIT ?"
        params.append(limit + 1)
        triggers = [load_record(Trigger, row[0]) for row in self._read_all(sql, tuple(params))]
        next_cursor = None
        if len(triggers) > limit:
            triggers = triggers[:limit]
            last = triggers[-1]
            next_cursor = triggers_cursor(
                owner,
                namespace,
                topic,
                {"namespace": last.namespace, "topic": last.topic, "trigger_id": last.trigger_id},
            )
        return Page[Trigger](items=triggers, next_cursor=next_cursor)

    def list_triggers_on_topic(self, namespace: str, topic: str) -> list[Trigger]:
        rows = self._read_all(
            "SELECT data FROM triggers WHERE namespace = ? AND topic = ? ORDER BY trigger_id",
            (namespace, topic),
        )
        return [load_record(Trigger, row[0]) for row in rows]

    def iter_all_triggers(self) -> Iterator[Trigger]:
        rows = self._read_all("SELECT data FROM triggers ORDER BY trigger_id", ())
        for row in rows:
            yield load_record(Trigger, row[0])

    def update_trigger(self, trigger: Trigger, *, expected_version: int) -> Trigger:
        with self._write() as db:
            row = db.execute(
                "SELECT owner, version FROM triggers WHERE trigger_id = ?", (trigger.trigger_id,)
            ).fetchone()
            if row is None:
                raise NotFound(f"trigger {trigger.trigger_id!r} does not exist")
            if row[1] != expected_version:
                raise Conflict(
                    f"trigger {trigger.trigger_id!r} changed meanwhile (version {row[1]}, "
                    f"expected {expected_version}); read it again and retry"
                )
            if row[0] != trigger.owner:
                raise BadRequest("a trigger's owner cannot be changed")
            stored = merged(trigger, version=expected_version + 1)
            db.execute(
                "UPDATE triggers SET namespace = ?, topic = ?, version = ?, data = ?"
                " WHERE trigger_id = ?",
                (
                    stored.namespace,
                    stored.topic,
                    stored.version,
                    dump_record(stored),
                    stored.trigger_id,
                ),
            )
        return stored

    def delete_trigger(self, trigger_id: str) -> bool:
        with self._write() as db:
            row = db.execute(
                "SELECT owner FROM triggers WHERE trigger_id = ?", (trigger_id,)
            ).fetchone()
            if row is None:
                return False
            db.execute("DELETE FROM triggers WHERE trigger_id = ?", (trigger_id,))
            self._add(db, row[0], "u_triggers", -1)
        return True

    # -- idempotency --------------------------------------------------------------------

    def get_idempotency(self, scope: str, key: str) -> IdempotencyRecord | None:
        row = self._read_one(
            "SELECT data FROM idempotency WHERE scope = ? AND key = ? AND expires > ?",
            (scope, key, now_epoch()),
        )
        return load_record(IdempotencyRecord, row[0]) if row else None

    def put_idempotency(self, record: IdempotencyRecord) -> bool:
        now = now_epoch()
        with self._write() as db:
            live = db.execute(
                "SELECT 1 FROM idempotency WHERE scope = ? AND key = ? AND expires > ?",
                (record.scope, record.key, now),
            ).fetchone()
            if live:
                return False
            db.execute(
                "INSERT OR REPLACE INTO idempotency (scope, key, expires, data)"
                " VALUES (?, ?, ?, ?)",
                (record.scope, record.key, epoch_seconds(record.expires_at), dump_record(record)),
            )
            # Expired records are only dead weight: sweep a few on each write.
            db.execute(
                "DELETE FROM idempotency WHERE rowid IN"
                " (SELECT rowid FROM idempotency WHERE expires <= ? LIMIT 100)",
                (now,),
            )
        return True

    # -- REST consumer instances --------------------------------------------------------

    def _consumer_expiry(self, instance: ConsumerInstance) -> float:
        return epoch_seconds(instance.last_used_at) + self.consumer_idle_seconds

    def put_consumer_instance(self, instance: ConsumerInstance) -> None:
        now = now_epoch()
        with self._write() as db:
            # An instance idle past its retention is gone, as DynamoDB's TTL would make it.
            db.execute("DELETE FROM consumer_instances WHERE expires <= ?", (now,))
            if db.execute(
                "SELECT 1 FROM consumer_instances WHERE group_name = ? AND instance_id = ?",
                (instance.group, instance.instance_id),
            ).fetchone():
                raise AlreadyExists(
                    f"consumer instance {instance.instance_id!r} already exists in group "
                    f"{instance.group!r}"
                )
            db.execute(
                "INSERT INTO consumer_instances (group_name, instance_id, version, expires, data)"
                " VALUES (?, ?, ?, ?, ?)",
                (
                    instance.group,
                    instance.instance_id,
                    instance.version,
                    self._consumer_expiry(instance),
                    dump_record(instance),
                ),
            )

    def get_consumer_instance(self, group: str, instance_id: str) -> ConsumerInstance | None:
        row = self._read_one(
            "SELECT data FROM consumer_instances WHERE group_name = ? AND instance_id = ?"
            " AND expires > ?",
            (group, instance_id, now_epoch()),
        )
        return load_record(ConsumerInstance, row[0]) if row else None

    def update_consumer_instance(
        self, instance: ConsumerInstance, *, expected_version: int
    ) -> ConsumerInstance:
        with self._write() as db:
            row = db.execute(
                "SELECT version FROM consumer_instances WHERE group_name = ? AND instance_id = ?"
                " AND expires > ?",
                (instance.group, instance.instance_id, now_epoch()),
            ).fetchone()
            if row is None:
                raise NotFound(
                    f"consumer instance {instance.instance_id!r} of group {instance.group!r} "
                    "does not exist"
                )
            if row[0] != expected_version:
                raise Conflict(
                    f"consumer instance {instance.instance_id!r} changed meanwhile (version "
                    f"{row[0]}, expected {expected_version})"
                )
            stored = merged(instance, version=expected_version + 1)
            db.execute(
                "UPDATE consumer_instances SET version = ?, expires = ?, data = ?"
                " WHERE group_name = ? AND instance_id = ?",
                (
                    stored.version,
                    self._consumer_expiry(stored),
                    dump_record(stored),
                    stored.group,
                    stored.instance_id,
                ),
            )
        return stored

    def delete_consumer_instance(self, group: str, instance_id: str) -> bool:
        with self._write() as db:
            deleted = db.execute(
                "DELETE FROM consumer_instances WHERE group_name = ? AND instance_id = ?"
                " AND expires > ?",
                (group, instance_id, now_epoch()),
            ).rowcount
        return bool(deleted)
