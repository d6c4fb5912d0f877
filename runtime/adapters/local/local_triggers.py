"""Triggers in local mode: what the runner needs, kept next to the registry.

Layout (``<state dir>/triggers/``, the state dir being the directory of ``registry.sqlite``)::

    triggers.sqlite      deployments (code dir, encrypted secret), runner status, logs,
                         dead letters — shared by the web service and the runner (WAL)
    master.key           32 random bytes (mode 0600): the AES-256-GCM key for secrets
    <trigger id>/code-<sha256 prefix>/   a function trigger's extracted zip
    uploads/<owner>/<upload id>.zip       code uploads (runtime/adapters/local/code_uploads.py)

The web service writes deployments and reads status, logs and dead letters; the runner
(``python -m runtime.local.trigger_runner``) reads deployments and writes the rest.

Webhook secrets are stored AES-256-GCM encrypted (the trigger id is the associated data, so
a ciphertext cannot be moved to another trigger). The key lives in the same state directory,
readable only by its owner: this keeps secrets out of database copies, backups of
``triggers.sqlite`` and logs, but does **not** protect them from someone who can read the
state directory as you. On AWS the secret is in Secrets Manager instead.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import secrets
import shutil
import sqlite3
import threading
import time
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO, Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from runtime.adapters.registry_codec import check_page_size, decode_cursor, encode_cursor
from runtime.config import RuntimeSettings
from runtime.domain.code_uploads import UPLOAD_PREFIX, file_sha256
from runtime.domain.errors import FabricError
from runtime.domain.models import Page, Trigger, TriggerState
from runtime.domain.ports import (
    CodeSource,
    TriggerDeadLetter,
    TriggerLogLine,
    TriggerStatus,
    UploadedCode,
)
from runtime.triggers.batch import DeadLetter

MASTER_KEY_BYTES: Final = 32
NONCE_BYTES: Final = 12
LOG_LINE_MAX_CHARS: Final = 4096
# Oldest lines are dropped past this many per trigger (checked every PRUNE_EVERY inserts).
LOG_LINES_KEPT: Final = 20_000
DEAD_LETTERS_KEPT: Final = 100_000
PRUNE_EVERY: Final = 500

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS deployments (
        trigger_id TEXT PRIMARY KEY,
        version INTEGER NOT NULL,
        code_dir TEXT,
        secret BLOB,
        updated_at_ms INTEGER NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS status (
        trigger_id TEXT PRIMARY KEY,
        config TEXT NOT NULL,
        state TEXT NOT NULL,
        last_error TEXT,
        updated_at_ms INTEGER NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS logs (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        trigger_id TEXT NOT NULL,
        ts_ms INTEGER NOT NULL,
        message TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS logs_by_trigger ON logs (trigger_id, ts_ms, seq)",
    """CREATE TABLE IF NOT EXISTS dead_letters (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        trigger_id TEXT NOT NULL,
        failed_at_ms INTEGER NOT NULL,
        letter TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS dead_letters_by_trigger ON dead_letters (trigger_id, seq)",
)


class LocalTriggerError(FabricError):
    status = 500
    code = "local_trigger_error"


def triggers_dir(settings: RuntimeSettings) -> Path:
    """Where local trigger state lives: ``triggers/`` beside the registry database."""
    if not settings.sqlite_path:
        raise LocalTriggerError("local triggers need sqlite_path (the registry database)")
    return Path(settings.sqlite_path).expanduser().resolve().parent / "triggers"


def config_fingerprint(trigger: Trigger) -> str:
    """What the runner runs: changes when the spec, topic or enabled flag change (not state)."""
    document = {
        "topic": trigger.kafka_topic,
        "enabled": trigger.enabled,
        "spec": trigger.spec,
    }
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()[:32]


def _now_ms() -> int:
    return int(time.time() * 1000)


def _ms_to_datetime(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000.0, UTC)


# ------------------------------------------------------------------------------- secrets


class SecretBox:
    """AES-256-GCM with a master key file created once (mode 0600)."""

    def __init__(self, key_path: Path) -> None:
        self._aead = AESGCM(self._load_or_create(key_path))

    @staticmethod
    def _load_or_create(path: Path) -> bytes:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            for _ in range(50):  # another process may be writing it right now
                key = path.read_bytes()
                if len(key) == MASTER_KEY_BYTES:
                    return key
                time.sleep(0.02)
            raise LocalTriggerError(f"{path} is not a {MASTER_KEY_BYTES}-byte key") from None
        key = secrets.token_bytes(MASTER_KEY_BYTES)
        with os.fdopen(fd, "wb") as handle:
            handle.write(key)
        return key

    def seal(self, plaintext: str, context: str) -> bytes:
        nonce = secrets.token_bytes(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, plaintext.encode(), context.encode())

    def open(self, sealed: bytes, context: str) -> str:
        try:
            plain = self._aead.decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], context.encode())
        except InvalidTag as exc:
            raise LocalTriggerError("a stored trigger secret cannot be decrypted") from exc
        return plain.decode()


# --------------------------------------------------------------------------------- store


@dataclass(frozen=True)
class Deployment:
    trigger_id: str
    version: int
    code_dir: Path | None
    secret: str | None


class LocalTriggerStore:
    """``triggers.sqlite`` and the code directories; safe to use from several processes."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.box = SecretBox(root / "master.key")
        self._path = root / "triggers.sqlite"
        self._local = threading.local()
        self._inserts = 0
        setup = sqlite3.connect(self._path, timeout=30.0, isolation_level=None)
        try:
            # WAL: the web service and the runner read and write concurrently.
            setup.execute("PRAGMA journal_mode=WAL")
            for statement in _SCHEMA:
                setup.execute(statement)
        finally:
            setup.close()

    @classmethod
    def for_settings(cls, settings: RuntimeSettings) -> LocalTriggerStore:
        return cls(triggers_dir(settings))

    @contextlib.contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        connection: sqlite3.Connection | None = getattr(self._local, "db", None)
        if connection is None:
            connection = sqlite3.connect(self._path, timeout=30.0, isolation_level=None)
            connection.execute("PRAGMA busy_timeout=30000")
            connection.execute("PRAGMA synchronous=NORMAL")
            self._local.db = connection
        connection.execute("BEGIN IMMEDIATE")
        try:
            yield connection
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")

    def close(self) -> None:
        connection: sqlite3.Connection | None = getattr(self._local, "db", None)
        if connection is not None:
            connection.close()
            self._local.db = None

    # ---- deployments ----------------------------------------------------------------

    def trigger_dir(self, trigger_id: str) -> Path:
        if not trigger_id.isalnum():
            raise LocalTriggerError(f"invalid trigger id {trigger_id!r}")
        return self.root / trigger_id

    def extract_code(self, trigger_id: str, code: bytes | BinaryIO, sha256: str) -> Path:
        """Unpack a (validated) zip into its own directory; reuse it if already there."""
        target = self.trigger_dir(trigger_id) / f"code-{sha256[:16]}"
        if target.is_dir():
            return target
        staging = target.with_name(target.name + f".tmp-{secrets.token_hex(4)}")
        staging.mkdir(parents=True, mode=0o700)
        try:
            source = io.BytesIO(code) if isinstance(code, bytes) else code
            with zipfile.ZipFile(source) as archive:
                for info in archive.infolist():
                    destination = (staging / info.filename).resolve()
                    if not destination.is_relative_to(staging.resolve()):
                        raise LocalTriggerError(f"zip entry {info.filename!r} escapes the code dir")
                    archive.extract(info, staging)
            staging.rename(target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return target

    def put_deployment(
        self,
        trigger_id: str,
        version: int,
        *,
        code_dir: Path | None,
        secret: str | None,
        keep_secret: bool = False,
    ) -> None:
        sealed = self.box.seal(secret, trigger_id) if secret is not None else None
        with self._db() as db:
            if keep_secret:
                db.execute(
                    "INSERT INTO deployments (trigger_id, version, code_dir, secret, updated_at_ms)"
                    " VALUES (?, ?, ?, NULL, ?) ON CONFLICT (trigger_id) DO UPDATE SET"
                    " version = excluded.version, code_dir = excluded.code_dir,"
                    " updated_at_ms = excluded.updated_at_ms",
                    (trigger_id, version, str(code_dir) if code_dir else None, _now_ms()),
                )
            else:
                db.execute(
                    "INSERT OR REPLACE INTO deployments"
                    " (trigger_id, version, code_dir, secret, updated_at_ms)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (trigger_id, version, str(code_dir) if code_dir else None, sealed, _now_ms()),
                )

    def deployment(self, trigger_id: str) -> Deployment | None:
        with self._db() as db:
            row = db.execute(
                "SELECT version, code_dir, secret FROM deployments WHERE trigger_id = ?",
                (trigger_id,),
            ).fetchone()
        if row is None:
            return None
        secret = self.box.open(row[2], trigger_id) if row[2] is not None else None
        return Deployment(trigger_id, int(row[0]), Path(row[1]) if row[1] else None, secret)

    def prune_code(self, trigger_id: str, keep: Sequence[Path]) -> None:
        """Remove code directories no longer needed (keep the current and previous one)."""
        base = self.trigger_dir(trigger_id)
        if not base.is_dir():
            return
        kept = {p.resolve() for p in keep}
        for child in base.iterdir():
            if child.resolve() not in kept:
                shutil.rmtree(child, ignore_errors=True)

    def remove(self, trigger_id: str) -> None:
        with self._db() as db:
            for table in ("deployments", "status", "logs", "dead_letters"):
                db.execute(f"DELETE FROM {table} WHERE trigger_id = ?", (trigger_id,))  # noqa: S608
        shutil.rmtree(self.trigger_dir(trigger_id), ignore_errors=True)

    # ---- status ------------------------------------------------------------------------

    def set_status(
        self, trigger_id: str, config: str, state: TriggerState, last_error: str | None
    ) -> None:
        """The runner's report on one configuration (``config_fingerprint``) of the trigger."""
        with self._db() as db:
            db.execute(
                "INSERT OR REPLACE INTO status"
                " (trigger_id, config, state, last_error, updated_at_ms) VALUES (?, ?, ?, ?, ?)",
                (trigger_id, config, state.value, last_error, _now_ms()),
            )

    def clear_status(self, trigger_id: str) -> None:
        with self._db() as db:
            db.execute("DELETE FROM status WHERE trigger_id = ?", (trigger_id,))

    def get_status(self, trigger_id: str) -> tuple[str, TriggerState, str | None] | None:
        """(configuration reported on, state, last error); None before the runner's report."""
        with self._db() as db:
            row = db.execute(
                "SELECT config, state, last_error FROM status WHERE trigger_id = ?",
                (trigger_id,),
            ).fetchone()
        return (str(row[0]), TriggerState(row[1]), row[2]) if row else None

    # ---- logs --------------------------------------------------------------------------

    def add_logs(self, trigger_id: str, lines: Sequence[tuple[int, str]]) -> None:
        if not lines:
            return
        rows = [(trigger_id, ts, message[:LOG_LINE_MAX_CHARS]) for ts, message in lines]
        with self._db() as db:
            db.executemany("INSERT INTO logs (trigger_id, ts_ms, message) VALUES (?, ?, ?)", rows)
            self._maybe_prune(db, "logs", trigger_id, LOG_LINES_KEPT, len(rows))

    def log(self, trigger_id: str, message: str) -> None:
        self.add_logs(trigger_id, [(_now_ms(), message)])

    def _maybe_prune(
        self, db: sqlite3.Connection, table: str, trigger_id: str, kept: int, added: int
    ) -> None:
        self._inserts += added
        if self._inserts < PRUNE_EVERY:
            return
        self._inserts = 0
        db.execute(
            f"DELETE FROM {table} WHERE trigger_id = ? AND seq <= ("  # noqa: S608
            f" SELECT seq FROM {table} WHERE trigger_id = ? ORDER BY seq DESC LIMIT 1 OFFSET ?)",
            (trigger_id, trigger_id, kept),
        )

    def logs(
        self, trigger_id: str, *, since: datetime | None, cursor: str | None, limit: int
    ) -> Page[TriggerLogLine]:
        """Lines in time order from ``since``; the cursor continues after the last line."""
        limit = check_page_size(limit)
        scope = {"trigger": trigger_id, "kind": "logs"}
        since_ms = int(since.timestamp() * 1000) if since is not None else 0
        after = (0, 0)
        if cursor:
            position = decode_cursor(cursor, scope, frozenset({"ts", "seq"}))
            after = (int(position["ts"]), int(position["seq"]))
        with self._db() as db:
            rows = db.execute(
                "SELECT seq, ts_ms, message FROM logs WHERE trigger_id = ? AND ts_ms >= ?"
                " AND (ts_ms, seq) > (?, ?) ORDER BY ts_ms, seq LIMIT ?",
                (trigger_id, since_ms, after[0], after[1], limit + 1),
            ).fetchall()
        more = len(rows) > limit
        rows = rows[:limit]
        items = [TriggerLogLine(timestamp=_ms_to_datetime(r[1]), message=r[2]) for r in rows]
        next_cursor = (
            encode_cursor(scope, {"ts": str(rows[-1][1]), "seq": str(rows[-1][0])})
            if more
            else None
        )
        return Page[TriggerLogLine](items=items, next_cursor=next_cursor)

    # ---- dead letters ------------------------------------------------------------------

    def add_dead_letters(self, letters: Sequence[DeadLetter]) -> None:
        if not letters:
            return
        rows = [(lt.trigger_id, lt.failed_at_ms, lt.to_json()) for lt in letters]
        with self._db() as db:
            db.executemany(
                "INSERT INTO dead_letters (trigger_id, failed_at_ms, letter) VALUES (?, ?, ?)",
                rows,
            )
            self._maybe_prune(db, "dead_letters", rows[0][0], DEAD_LETTERS_KEPT, len(rows))

    def dead_letters(
        self, trigger_id: str, *, cursor: str | None, limit: int
    ) -> Page[TriggerDeadLetter]:
        limit = check_page_size(limit)
        scope = {"trigger": trigger_id, "kind": "dead-letters"}
        after = 0
        if cursor:
            after = int(decode_cursor(cursor, scope, frozenset({"seq"}))["seq"])
        with self._db() as db:
            rows = db.execute(
                "SELECT seq, letter FROM dead_letters WHERE trigger_id = ? AND seq > ?"
                " ORDER BY seq LIMIT ?",
                (trigger_id, after, limit + 1),
            ).fetchall()
        more = len(rows) > limit
        rows = rows[:limit]
        items = [dead_letter_out(DeadLetter.from_json(r[1])) for r in rows]
        next_cursor = encode_cursor(scope, {"seq": str(rows[-1][0])}) if more else None
        return Page[TriggerDeadLetter](items=items, next_cursor=next_cursor)


def dead_letter_out(letter: DeadLetter) -> TriggerDeadLetter:
    record = letter.record
    return TriggerDeadLetter(
        failed_at=_ms_to_datetime(letter.failed_at_ms),
        reason=letter.reason,
        topic=str(record.get("topic", "")),
        partition=int(record.get("partition", -1)),
        offset=int(record.get("offset", -1)),
        key=record.get("key"),
        value=record.get("value"),
    )


# ------------------------------------------------------------------------------ platform


class LocalTriggerPlatform:
    """The :class:`~runtime.domain.ports.TriggerPlatform` for ``octopus local up``.

    Deploying stores what the runner needs; the runner, polling the registry, starts,
    restarts (on a new version) or stops each trigger's consumer and reports its state.
    """

    # A status is one indexed read of the runner's reports: no point in threads.
    status_concurrency = 1

    def __init__(self, store: LocalTriggerStore) -> None:
        self.store = store

    @classmethod
    def from_settings(cls, settings: RuntimeSettings) -> LocalTriggerPlatform:
        return cls(LocalTriggerStore.for_settings(settings))

    def _code_dir(self, trigger: Trigger, code: CodeSource | None) -> Path | None:
        function = trigger.spec.get("function")
        if code is None or not function:
            return None
        sha256 = str(function["code_sha256"])
        if isinstance(code, bytes):
            return self.store.extract_code(trigger.trigger_id, code, sha256)
        return self._extract_upload(trigger.trigger_id, code, sha256)

    def _extract_upload(self, trigger_id: str, code: UploadedCode, sha256: str) -> Path:
        uploads = (self.store.root / UPLOAD_PREFIX).resolve()
        path = (self.store.root / code.key).resolve()
        if not code.key.startswith(UPLOAD_PREFIX) or not path.is_relative_to(uploads):
            raise LocalTriggerError(f"code upload {code.key!r} is outside the uploads folder")
        try:
            handle = path.open("rb")
        except FileNotFoundError as exc:
            raise LocalTriggerError(f"code upload {code.key!r} is gone") from exc
        with handle:
            # One open file for the check and the extraction: a new upload under the same
            # id replaces the file (rename), it cannot change what this handle reads.
            if code.sha256 != sha256 or file_sha256(handle) != sha256:
                raise LocalTriggerError(
                    "the uploaded code changed after it was checked; create or update again"
                )
            return self.store.extract_code(trigger_id, handle, sha256)

    def deploy(
        self, trigger: Trigger, *, secret: str | None, code: CodeSource | None
    ) -> TriggerStatus:
        code_dir = self._code_dir(trigger, code)
        self.store.put_deployment(
            trigger.trigger_id, trigger.version, code_dir=code_dir, secret=secret
        )
        self.store.clear_status(trigger.trigger_id)
        return self._initial(trigger)

    def update(self, trigger: Trigger, *, code: CodeSource | None) -> TriggerStatus:
        current = self.store.deployment(trigger.trigger_id)
        if current is None:
            raise LocalTriggerError(f"trigger {trigger.trigger_id} has no local deployment")
        code_dir = self._code_dir(trigger, code) or current.code_dir
        self.store.put_deployment(
            trigger.trigger_id, trigger.version, code_dir=code_dir, secret=None, keep_secret=True
        )
        if code_dir is not None:
            keep = [code_dir] + ([current.code_dir] if current.code_dir else [])
            self.store.prune_code(trigger.trigger_id, keep)
        self.store.clear_status(trigger.trigger_id)
        return self._initial(trigger)

    @staticmethod
    def _initial(trigger: Trigger) -> TriggerStatus:
        # CREATING until the runner has its consumer positioned and says ACTIVE.
        state = TriggerState.CREATING if trigger.enabled else TriggerState.DISABLED
        return TriggerStatus(state=state.value)

    def remove(self, trigger: Trigger) -> None:
        self.store.remove(trigger.trigger_id)

    def status(self, trigger: Trigger) -> TriggerStatus:
        if not trigger.enabled:
            return TriggerStatus(state=TriggerState.DISABLED.value)
        reported = self.store.get_status(trigger.trigger_id)
        # The runner reports per configuration: one on an older one says nothing yet.
        if reported is None or reported[0] != config_fingerprint(trigger):
            return TriggerStatus(state=trigger.state.value, last_error=trigger.last_error)
        _, state, last_error = reported
        return TriggerStatus(state=state.value, last_error=last_error)

    def logs(
        self, trigger: Trigger, *, since: datetime | None, cursor: str | None, limit: int
    ) -> Page[TriggerLogLine]:
        return self.store.logs(trigger.trigger_id, since=since, cursor=cursor, limit=limit)

    def dead_letters(
        self, trigger: Trigger, *, cursor: str | None, limit: int
    ) -> Page[TriggerDeadLetter]:
        return self.store.dead_letters(trigger.trigger_id, cursor=cursor, limit=limit)
