"""What only the SQLite adapter promises: the file is the state, WAL, versioned schema."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from runtime.adapters.local.sqlite_registry import MIGRATIONS, SCHEMA_VERSION, SqliteRegistry
from runtime.adapters.registry_codec import dump_record
from runtime.domain.errors import QuotaExceeded
from runtime.domain.models import Access, Grant, GrantKind, Topic, Usage
from tests.contract.helpers import ALICE, BIG, BOB, make_trigger, register, run_concurrently


def test_state_survives_reopening_the_file(tmp_path: Path) -> None:
    path = tmp_path / "state" / "registry.db"
    path.parent.mkdir()
    first = SqliteRegistry(path)
    identity = register(first, ALICE)
    register(first, BOB)
    topic = Topic(
        namespace=identity.default_namespace,
        name="t",
        owner=ALICE,
        partitions=3,
        replication_factor=1,
    )
    first.create_topic(topic, topic_limit=5, partition_limit=5)
    grant = Grant(
        namespace=identity.default_namespace,
        kind=GrantKind.TOPIC,
        target="t",
        grantee=BOB,
        access=Access.READ,
        granted_by=ALICE,
    )
    first.put_grant(grant, limit=5)
    first.close()

    reopened = SqliteRegistry(path)
    assert reopened.get_identity(ALICE) == identity
    assert reopened.get_topic(identity.default_namespace, "t") == topic
    assert reopened.list_grants_for_grantee(BOB) == [grant]
    assert reopened.get_usage(ALICE) == Usage(namespaces=1, topics=1, partitions=3, grants=1)
    assert reopened.schema_version() == SCHEMA_VERSION
    reopened.close()


def test_file_is_in_wal_mode_with_a_schema_version(tmp_path: Path) -> None:
    path = tmp_path / "registry.db"
    SqliteRegistry(path).close()
    SqliteRegistry(path).close()  # opening again applies nothing twice

    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        applied = db.execute("SELECT version FROM schema_version ORDER BY version").fetchall()
    assert applied == [(version,) for version, _ in MIGRATIONS]  # each step once
    assert applied[-1] == (SCHEMA_VERSION,)


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "registry.db"
    SqliteRegistry(path).close()
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION + 1,))

    with pytest.raises(RuntimeError, match="schema"):
        SqliteRegistry(path)


def test_two_registries_on_one_file_share_the_quota(tmp_path: Path) -> None:
    """Two openers of one file (as two processes would be) cannot overshoot a quota."""
    path = tmp_path / "registry.db"
    registries = [SqliteRegistry(path), SqliteRegistry(path)]
    identity = register(registries[0], ALICE)

    def create(i: int) -> bool:
        topic = Topic(
            namespace=identity.default_namespace,
            name=f"t{i}",
            owner=ALICE,
            partitions=1,
            replication_factor=1,
        )
        try:
            registries[i % 2].create_topic(topic, topic_limit=7, partition_limit=100)
        except QuotaExceeded:
            return False
        return True

    assert run_concurrently(20, create).count(True) == 7
    assert registries[1].get_usage(ALICE).topics == 7
    for registry in registries:
        registry.close()


def test_connections_of_finished_threads_are_closed(tmp_path: Path) -> None:
    registry = SqliteRegistry(tmp_path / "registry.db")
    run_concurrently(16, lambda i: registry.get_identity(f"sub-{i}"))

    assert registry.open_connections() <= 1  # only the opening thread's may remain
    registry.close()


def test_a_state_file_of_schema_1_is_migrated_and_keeps_its_triggers(tmp_path: Path) -> None:
    """A local fabric's state dir from before the topic index keeps working."""
    path = tmp_path / "registry.db"
    trigger = make_trigger("old", ALICE, "ns", "a.b")
    with sqlite3.connect(path) as db:  # what the code of schema 1 wrote
        db.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        version, statements = MIGRATIONS[0]
        assert version == 1
        for statement in statements:
            db.execute(statement)
        db.execute("INSERT INTO schema_version (version) VALUES (1)")
        db.execute(
            "INSERT INTO triggers (trigger_id, owner, namespace, topic, version, data)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            ("old", ALICE, "ns", "a.b", 0, dump_record(trigger)),
        )
    db.close()

    registry = SqliteRegistry(path)
    assert registry.schema_version() == SCHEMA_VERSION == 2
    assert registry.list_triggers_on_topic("ns", "a.b") == [trigger]
    registry.close()
    with sqlite3.connect(path) as db:
        indexes = {row[1] for row in db.execute("PRAGMA index_list(triggers)")}
    db.close()
    assert "triggers_by_topic" in indexes


def test_topic_lookup_uses_the_topic_index(tmp_path: Path) -> None:
    registry = SqliteRegistry(tmp_path / "registry.db")
    register(registry, ALICE)
    for i in range(5):
        registry.create_trigger(make_trigger(f"t{i}", ALICE, "ns", f"topic{i % 2}"), limit=BIG)
    statements: list[str] = []
    connection = registry._connection()
    connection.set_trace_callback(statements.append)
    assert [t.trigger_id for t in registry.list_triggers_on_topic("ns", "topic1")] == ["t1", "t3"]
    connection.set_trace_callback(None)

    (query,) = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    plan = " ".join(row[3] for row in connection.execute(f"EXPLAIN QUERY PLAN {query}"))
    assert "USING INDEX triggers_by_topic" in plan, plan
    assert "TEMP B-TREE" not in plan, plan  # sorted by the index too
    registry.close()
