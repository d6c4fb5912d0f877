"""What only the SQLite adapter promises: the file is the state, WAL, versioned schema."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from runtime.adapters.local.sqlite_registry import SCHEMA_VERSION, SqliteRegistry
from runtime.domain.errors import QuotaExceeded
from runtime.domain.models import Access, Grant, GrantKind, Topic, Usage
from tests.contract.helpers import ALICE, BOB, register, run_concurrently


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
        assert db.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]


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
