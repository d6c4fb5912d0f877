"""Managed triggers: validation against config, ownership, quota, and the platform calls.

The rules live here once, for AWS and local mode alike:

- what a user may ask for is capped by :class:`runtime.config.TriggerLimits` (runtime, memory,
  timeout, batch size and window) and by Lambda's own limits (5 filters, 50 MB inline zip,
  4 KB of environment);
- a function's zip comes inline (``code_base64``) or as an upload of the caller's own
  (``code_upload_id``, see :mod:`runtime.domain.code_uploads`), checked the same way before
  the platform deploys it (its size, a safe zip holding the handler's module);
- a trigger belongs to the identity that created it (the registry's ``owner``, never a name);
  strangers get the same 404 as for a trigger that does not exist;
- the topic must be the caller's own or granted with READ access; that is checked again on
  every change (and by the local runner before it reads);
- the per-identity quota is enforced by the registry in the same write as the record;
- a webhook's signing secret is generated here, handed to the platform (Secrets Manager on
  AWS, encrypted at rest locally) and shown to the caller once; the registry never holds it.

``Trigger.spec`` holds a :class:`TriggerSpec` as JSON: the one format both platforms read.
"""

from __future__ import annotations

import base64
import binascii
import builtins
import hashlib
import io
import json
import re
import secrets
import uuid
import zipfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, BinaryIO, Final, Literal

from pydantic import BaseModel, ConfigDict, Field

from runtime.domain.access import require_topic_access
from runtime.domain.code_uploads import (
    file_sha256,
    file_size,
    new_upload_id,
    too_large,
    upload_key,
)
from runtime.domain.deps import Deps
from runtime.domain.errors import (
    Conflict,
    FabricError,
    NotFound,
    PayloadTooLarge,
    Unavailable,
    Unprocessable,
)
from runtime.domain.identities import IdentityService
from runtime.domain.models import (
    Access,
    Page,
    Topic,
    TopicState,
    Trigger,
    TriggerKind,
    TriggerState,
)
from runtime.domain.names import default_namespace, validate_namespace, validate_topic
from runtime.domain.ports import (
    CodeSource,
    CodeUploads,
    CodeUploadTicket,
    Principal,
    TriggerDeadLetter,
    TriggerLogLine,
    TriggerPlatform,
    TriggerStatus,
    UploadedCode,
)
from runtime.triggers.filters import InvalidFilterCriteria, validate_filter_criteria
from runtime.triggers.webhook import InvalidWebhook, validate_static_headers, validate_webhook_url

StartingPosition = Literal["LATEST", "TRIM_HORIZON", "AT_TIMESTAMP"]
STARTING_POSITIONS: Final = ("LATEST", "TRIM_HORIZON", "AT_TIMESTAMP")
TRIGGER_KINDS: Final = ("webhook", "function")

# Lambda's limits (https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html).
LAMBDA_INLINE_ZIP_MAX_BYTES: Final = 50 * 1024 * 1024  # zipped, base64-decoded
LAMBDA_UNZIPPED_MAX_BYTES: Final = 250 * 1024 * 1024
LAMBDA_ENVIRONMENT_MAX_BYTES: Final = 4096
MIN_MEMORY_MB: Final = 128
# Retries of a batch whose delivery came back retryable, before it is dead-lettered.
MAX_RETRIES_CAP: Final = 100
MAX_NAME_CHARS: Final = 64

NAME_RE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}$")
# "module.function" or "package.module.function", as Lambda's Python runtimes take it.
HANDLER_RE: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$")
ENV_NAME_RE: Final = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
# Lambda reserves AWS_*, LAMBDA_* and _* names; OCTOPUS_* configure our template function.
RESERVED_ENV_PREFIXES: Final = ("AWS_", "LAMBDA_", "_", "OCTOPUS_")
RESERVED_ENV_NAMES: Final = frozenset({"TZ", "PATH", "LANG", "LD_LIBRARY_PATH", "PYTHONPATH"})


def field_error(field_name: str, message: str) -> Unprocessable:
    """A 422 whose message and details name the offending field."""
    return Unprocessable(f"{field_name}: {message}", details={"field": field_name})


def consumer_group_id(owner: str, trigger_id: str) -> str:
    """The Kafka consumer group a trigger reads as: ``<owner's default namespace>.trigger-<id>``.

    Under the owner's namespace so the owner's broker rights already cover it (IAM group ARNs
    and local grants are namespace-scoped); derived from the id, never chosen by the user.
    """
    return f"{default_namespace(owner)}.trigger-{trigger_id}"


# ----------------------------------------------------------------------------- stored spec


class WebhookSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str
    headers: dict[str, str] = Field(default_factory=dict)


class FunctionSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    runtime: str
    handler: str
    memory_mb: int
    timeout_seconds: int
    environment: dict[str, str] = Field(default_factory=dict)
    code_sha256: str
    code_size: int


class TriggerSpec(BaseModel):
    """What ``Trigger.spec`` holds: validated settings both platforms read."""

    model_config = ConfigDict(extra="forbid")

    name: str
    # Lambda ``FilterCriteria.Filters[].Pattern`` strings, as the event source mapping takes them.
    filters: list[str] = Field(default_factory=list)
    batch_size: int
    batching_window_seconds: int
    starting_position: StartingPosition
    starting_timestamp: datetime | None = None
    max_retries: int
    consumer_group: str
    webhook: WebhookSpec | None = None
    function: FunctionSpec | None = None

    def filter_criteria(self) -> dict[str, Any]:
        """Lambda's ``FilterCriteria`` for these filters (``{}`` when there are none)."""
        if not self.filters:
            return {}
        return {"Filters": [{"Pattern": pattern} for pattern in self.filters]}


def spec_of(trigger: Trigger) -> TriggerSpec:
    return TriggerSpec.model_validate(trigger.spec)


# ---------------------------------------------------------------------------- requests


@dataclass(frozen=True)
class WebhookDraft:
    url: str
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class FunctionDraft:
    runtime: str
    handler: str
    code_base64: str | None = None
    code_upload_id: str | None = None
    memory_mb: int = 128
    timeout_seconds: int = 3
    environment: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TriggerDraft:
    """A create request, typed but not yet checked against the limits."""

    name: str
    namespace: str
    topic: str
    kind: str
    filters: list[Any] = field(default_factory=list)
    batch_size: int = 100
    batching_window_seconds: int = 0
    starting_position: str = "LATEST"
    starting_timestamp: datetime | None = None
    enabled: bool = True
    max_retries: int = 3
    webhook: WebhookDraft | None = None
    function: FunctionDraft | None = None


@dataclass(frozen=True)
class TriggerChanges:
    """A PATCH: ``None`` leaves a setting as it is."""

    filters: list[Any] | None = None
    batch_size: int | None = None
    batching_window_seconds: int | None = None
    enabled: bool | None = None
    max_retries: int | None = None
    code_base64: str | None = None
    code_upload_id: str | None = None


@dataclass(frozen=True)
class CreatedTrigger:
    trigger: Trigger
    # The webhook signing secret: in the create reply only, never stored in the registry.
    webhook_secret: str | None


# -------------------------------------------------------------------------- validation


def _int_in(field_name: str, value: Any, low: int, high: int, why: str = "") -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise field_error(field_name, "must be an integer")
    if not low <= value <= high:
        suffix = f" ({why})" if why else ""
        raise field_error(field_name, f"must be between {low} and {high}{suffix}, not {value}")
    return value


def normalize_filters(filters: Any) -> list[str]:
    """Patterns as Lambda ``Pattern`` strings; each may be given as a JSON string or object."""
    if not isinstance(filters, list):
        raise field_error("filters", "must be a list of patterns")
    patterns: list[str] = []
    for index, pattern in enumerate(filters):
        if isinstance(pattern, dict):
            patterns.append(json.dumps(pattern, separators=(",", ":")))
        elif isinstance(pattern, str):
            patterns.append(pattern)
        else:
            raise field_error(f"filters[{index}]", "must be a JSON object or a JSON string")
    try:
        validate_filter_criteria({"Filters": [{"Pattern": p} for p in patterns]})
    except InvalidFilterCriteria as exc:
        match = re.search(r"Filters\[(\d+)\]", exc.message)
        where = f"filters[{match.group(1)}]" if match else "filters"
        raise field_error(where, exc.message) from exc
    return patterns


def validate_name(name: Any) -> str:
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise field_error(
            "name",
            f"use 1-{MAX_NAME_CHARS} characters: letters, digits, space, '.', '_' and '-', "
            "starting with a letter or digit",
        )
    return name


def validate_environment(environment: Any) -> dict[str, str]:
    where = "function.environment"
    if not isinstance(environment, dict):
        raise field_error(where, "must be an object of string values")
    for name, value in environment.items():
        if not isinstance(name, str) or not ENV_NAME_RE.fullmatch(name):
            raise field_error(
                f"{where}.{name}", "names use letters, digits and '_', starting with a letter"
            )
        if name.upper().startswith(RESERVED_ENV_PREFIXES) or name.upper() in RESERVED_ENV_NAMES:
            raise field_error(f"{where}.{name}", "is reserved by the platform")
        if not isinstance(value, str):
            raise field_error(f"{where}.{name}", "must be a string")
    size = sum(len(k.encode()) + len(v.encode()) for k, v in environment.items())
    if size > LAMBDA_ENVIRONMENT_MAX_BYTES:
        raise field_error(
            where, f"is {size} bytes; Lambda allows at most {LAMBDA_ENVIRONMENT_MAX_BYTES}"
        )
    return dict(environment)


def decode_code(code_base64: Any, handler: str) -> bytes:
    """The zip's bytes, if it is base64 of a safe zip holding the handler's module."""
    where = "function.code_base64"
    if not isinstance(code_base64, str) or not code_base64:
        raise field_error(where, "must be the base64 of a zip file")
    # Lambda's limit is on the decoded zip; refuse before decoding something huge.
    if len(code_base64) > (LAMBDA_INLINE_ZIP_MAX_BYTES * 4) // 3 + 4:
        raise PayloadTooLarge(
            f"{where}: the zip is larger than Lambda's inline limit of "
            f"{LAMBDA_INLINE_ZIP_MAX_BYTES // (1024 * 1024)} MB",
            details={"field": where},
        )
    try:
        code = base64.b64decode(code_base64, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise field_error(where, f"is not valid base64: {exc}") from exc
    if len(code) > LAMBDA_INLINE_ZIP_MAX_BYTES:
        raise PayloadTooLarge(
            f"{where}: the zip is {len(code)} bytes; Lambda's inline limit is "
            f"{LAMBDA_INLINE_ZIP_MAX_BYTES} bytes",
            details={"field": where},
        )
    check_zip(code, handler)
    return code


def check_zip(code: bytes | BinaryIO, handler: str, where: str = "function.code_base64") -> None:
    try:
        archive = zipfile.ZipFile(io.BytesIO(code) if isinstance(code, bytes) else code)
    except zipfile.BadZipFile as exc:
        raise field_error(where, f"is not a valid zip file: {exc}") from exc
    with archive:
        names = archive.namelist()
        unzipped = 0
        for info in archive.infolist():
            name = info.filename
            parts = name.replace("\\", "/").split("/")
            if name.startswith(("/", "\\")) or ".." in parts or ":" in name:
                raise field_error(where, f"the zip entry {name!r} points outside the archive")
            unzipped += info.file_size
        if unzipped > LAMBDA_UNZIPPED_MAX_BYTES:
            raise field_error(
                where,
                f"unzips to {unzipped} bytes; Lambda allows at most {LAMBDA_UNZIPPED_MAX_BYTES}",
            )
        try:
            broken = archive.testzip()
        except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError) as exc:
            raise field_error(where, f"cannot be read: {exc}") from exc
        if broken is not None:
            raise field_error(where, f"the zip entry {broken!r} is corrupt")
    module_path = "/".join(handler.split(".")[:-1])
    if f"{module_path}.py" not in names and f"{module_path}/__init__.py" not in names:
        raise field_error(
            "function.handler",
            f"the zip holds neither {module_path}.py nor {module_path}/__init__.py",
        )


# ------------------------------------------------------------------------------ service


def _new_trigger_id() -> str:
    return uuid.uuid4().hex[:20]


def _new_secret() -> str:
    return secrets.token_urlsafe(32)


class TriggerService:
    def __init__(
        self,
        deps: Deps,
        identities: IdentityService,
        platform: TriggerPlatform,
        *,
        new_id: Callable[[], str] = _new_trigger_id,
        new_secret: Callable[[], str] = _new_secret,
        uploads: CodeUploads | None = None,
    ) -> None:
        self._deps = deps
        self._identities = identities
        self.platform = platform
        self.uploads = uploads
        self._new_id = new_id
        self._new_secret = new_secret

    @property
    def _limits(self) -> Any:
        return self._deps.settings.trigger_limits

    @property
    def _local(self) -> bool:
        return self._deps.settings.cluster_mode == "local"

    # ---- validation -------------------------------------------------------------------

    def _require_readable_topic(self, caller: Principal, namespace: str, topic: str) -> None:
        registry = self._deps.registry
        require_topic_access(registry, caller, namespace, topic, Access.READ)
        found = registry.get_topic(namespace, topic)
        if found is None:
            raise NotFound(
                f"topic {topic!r} not found in namespace {namespace!r}",
                details={"namespace": namespace, "topic": topic},
            )
        if found.state is not TopicState.ACTIVE:
            raise Conflict(f"topic {namespace}/{topic} is {found.state.value}; try again later")

    def _batching(self, batch_size: Any, window: Any, max_retries: Any) -> tuple[int, int, int]:
        limits = self._limits
        return (
            _int_in("batch_size", batch_size, 1, limits.max_batch_size),
            _int_in("batching_window_seconds", window, 0, limits.max_batching_window_seconds),
            _int_in("max_retries", max_retries, 0, MAX_RETRIES_CAP),
        )

    def _webhook_spec(self, draft: WebhookDraft | None) -> WebhookSpec:
        if draft is None:
            raise field_error("webhook", "is required for a webhook trigger")
        try:
            validate_webhook_url(draft.url, allow_private=self._local)
        except InvalidWebhook as exc:
            raise field_error("webhook.url", exc.message) from exc
        if not isinstance(draft.headers, dict):
            raise field_error("webhook.headers", "must be an object of string values")
        try:
            validate_static_headers(draft.headers)
        except InvalidWebhook as exc:
            raise field_error("webhook.headers", exc.message) from exc
        return WebhookSpec(url=draft.url, headers=dict(draft.headers))

    # ---- code uploads -------------------------------------------------------------------

    def _uploads(self) -> CodeUploads:
        if self.uploads is None:
            raise Unavailable("code uploads are not configured on this fabric")
        return self.uploads

    def start_upload(self, caller: Principal) -> CodeUploadTicket:
        """Where and how the caller may upload one zip (``uploads/<caller>/<new id>.zip``)."""
        self._identities.ensure(caller)
        return self._uploads().start(caller.sub, new_upload_id())

    def _uploaded_code(self, caller: Principal, upload_id: str, handler: str) -> UploadedCode:
        """The caller's upload, checked like inline code: size, a safe zip, the handler."""
        where = "function.code_upload_id"
        uploads = self._uploads()
        key = upload_key(caller.sub, upload_id)
        with uploads.open(caller.sub, upload_id) as handle:
            size = file_size(handle)
            if size > uploads.max_bytes:
                raise too_large(where, size, uploads.max_bytes)
            check_zip(handle, handler, where=where)
            digest = file_sha256(handle)
        return UploadedCode(key=key, sha256=digest, size=size)

    def _code(
        self,
        caller: Principal,
        code_base64: str | None,
        code_upload_id: str | None,
        handler: str,
    ) -> tuple[CodeSource, str, int]:
        """Exactly one of inline base64 or an upload id: the code, its sha256 and size."""
        if code_base64 is not None and code_upload_id is not None:
            raise field_error(
                "function.code_upload_id", "give either code_base64 or code_upload_id, not both"
            )
        if code_upload_id is not None:
            uploaded = self._uploaded_code(caller, code_upload_id, handler)
            return uploaded, uploaded.sha256, uploaded.size
        if code_base64 is None:
            raise field_error(
                "function.code_base64", "is required (or function.code_upload_id for an upload)"
            )
        code = decode_code(code_base64, handler)
        return code, hashlib.sha256(code).hexdigest(), len(code)

    def _function_spec(
        self, caller: Principal, draft: FunctionDraft | None
    ) -> tuple[FunctionSpec, CodeSource]:
        if draft is None:
            raise field_error("function", "is required for a function trigger")
        limits = self._limits
        if draft.runtime not in limits.allowed_runtimes:
            raise field_error(
                "function.runtime",
                f"{draft.runtime!r} is not offered; choose one of {list(limits.allowed_runtimes)}",
            )
        if not isinstance(draft.handler, str) or not HANDLER_RE.fullmatch(draft.handler):
            raise field_error(
                "function.handler", "must look like 'module.function' (e.g. 'app.handler')"
            )
        memory = _int_in("function.memory_mb", draft.memory_mb, MIN_MEMORY_MB, limits.max_memory_mb)
        timeout = _int_in(
            "function.timeout_seconds", draft.timeout_seconds, 1, limits.max_timeout_seconds
        )
        environment = validate_environment(draft.environment)
        code, sha256, size = self._code(
            caller, draft.code_base64, draft.code_upload_id, draft.handler
        )
        spec = FunctionSpec(
            runtime=draft.runtime,
            handler=draft.handler,
            memory_mb=memory,
            timeout_seconds=timeout,
            environment=environment,
            code_sha256=sha256,
            code_size=size,
        )
        return spec, code

    def validate(
        self, draft: TriggerDraft, *, owner: Principal, trigger_id: str
    ) -> tuple[TriggerSpec, CodeSource | None]:
        """The stored spec and the function's zip, or a 422 naming the first bad field."""
        name = validate_name(draft.name)
        validate_namespace(draft.namespace)
        validate_topic(draft.namespace, draft.topic, field="topic")
        if draft.kind not in TRIGGER_KINDS:
            raise field_error("kind", f"must be one of {list(TRIGGER_KINDS)}, not {draft.kind!r}")
        filters = normalize_filters(draft.filters)
        batch_size, window, retries = self._batching(
            draft.batch_size, draft.batching_window_seconds, draft.max_retries
        )
        if draft.starting_position not in STARTING_POSITIONS:
            raise field_error(
                "starting_position",
                f"must be one of {list(STARTING_POSITIONS)}, not {draft.starting_position!r}",
            )
        if draft.starting_position == "AT_TIMESTAMP" and draft.starting_timestamp is None:
            raise field_error("starting_timestamp", "is required with AT_TIMESTAMP")
        if draft.starting_position != "AT_TIMESTAMP" and draft.starting_timestamp is not None:
            raise field_error("starting_timestamp", "is only allowed with AT_TIMESTAMP")
        webhook: WebhookSpec | None = None
        function: FunctionSpec | None = None
        code: CodeSource | None = None
        if draft.kind == "webhook":
            if draft.function is not None:
                raise field_error("function", "is not allowed on a webhook trigger")
            webhook = self._webhook_spec(draft.webhook)
        else:
            if draft.webhook is not None:
                raise field_error("webhook", "is not allowed on a function trigger")
            function, code = self._function_spec(owner, draft.function)
        spec = TriggerSpec(
            name=name,
            filters=filters,
            batch_size=batch_size,
            batching_window_seconds=window,
            starting_position=draft.starting_position,  # type: ignore[arg-type]
            starting_timestamp=draft.starting_timestamp,
            max_retries=retries,
            consumer_group=consumer_group_id(owner.sub, trigger_id),
            webhook=webhook,
            function=function,
        )
        return spec, code

    # ---- reads ------------------------------------------------------------------------

    def _owned(self, caller: Principal, trigger_id: str) -> Trigger:
        """The trigger if the caller owns it; the same 404 for strangers and missing ones."""
        trigger = self._deps.registry.get_trigger(trigger_id)
        if trigger is None or trigger.owner != caller.sub:
            raise NotFound(f"trigger {trigger_id!r} not found", details={"trigger_id": trigger_id})
        return trigger

    def _with_status(self, trigger: Trigger) -> Trigger:
        """The stored trigger with the platform's live state (where it runs, it knows best)."""
        if trigger.state is TriggerState.DELETING:
            return trigger
        try:
            status = self.platform.status(trigger)
        except FabricError:
            return trigger
        return trigger.model_copy(
            update={"state": TriggerState(status.state), "last_error": status.last_error}
        )

    def get(self, caller: Principal, trigger_id: str) -> Trigger:
        return self._with_status(self._owned(caller, trigger_id))

    def list(
        self,
        caller: Principal,
        *,
        namespace: str | None = None,
        topic: str | None = None,
        cursor: str | None = None,
        limit: int = 100,
    ) -> Page[Trigger]:
        page = self._deps.registry.list_triggers(
            caller.sub, namespace=namespace, topic=topic, cursor=cursor, limit=limit
        )
        return Page[Trigger](items=self._with_statuses(page.items), next_cursor=page.next_cursor)

    def _with_statuses(self, triggers: Sequence[Trigger]) -> builtins.list[Trigger]:
        """Each trigger with its live state, in order; as many asked at once as the
        platform says its status calls allow (network round trips on Lambda)."""
        workers = min(self.platform.status_concurrency, len(triggers))
        if workers < 2:
            return [self._with_status(t) for t in triggers]
        with ThreadPoolExecutor(workers, thread_name_prefix="trigger-status") as pool:
            return [*pool.map(self._with_status, triggers)]

    def logs(
        self,
        caller: Principal,
        trigger_id: str,
        *,
        since: datetime | None,
        cursor: str | None,
        limit: int,
    ) -> Page[TriggerLogLine]:
        trigger = self._owned(caller, trigger_id)
        return self.platform.logs(trigger, since=since, cursor=cursor, limit=limit)

    def dead_letters(
        self, caller: Principal, trigger_id: str, *, cursor: str | None, limit: int
    ) -> Page[TriggerDeadLetter]:
        trigger = self._owned(caller, trigger_id)
        return self.platform.dead_letters(trigger, cursor=cursor, limit=limit)

    # ---- writes -----------------------------------------------------------------------

    def _record_status(self, trigger: Trigger, status: TriggerStatus) -> Trigger:
        updated = trigger.model_copy(
            update={
                "state": TriggerState(status.state),
                "last_error": status.last_error,
                "updated_at": self._deps.clock(),
            }
        )
        return self._deps.registry.update_trigger(updated, expected_version=trigger.version)

    def create(self, caller: Principal, draft: TriggerDraft) -> CreatedTrigger:
        self._identities.ensure(caller)
        trigger_id = self._new_id()
        spec, code = self.validate(draft, owner=caller, trigger_id=trigger_id)
        self._require_readable_topic(caller, draft.namespace, draft.topic)
        kind: TriggerKind = "webhook" if draft.kind == "webhook" else "function"
        now = self._deps.clock()
        trigger = Trigger(
            trigger_id=trigger_id,
            owner=caller.sub,
            namespace=draft.namespace,
            topic=draft.topic,
            kind=kind,
            spec=spec.model_dump(mode="json"),
            enabled=draft.enabled,
            state=TriggerState.CREATING,
            created_at=now,
            updated_at=now,
        )
        self._deps.registry.create_trigger(trigger, limit=self._limits.per_identity)
        # A topic delete claims the topic, then removes the triggers it finds on it: one
        # written after that lookup would be bound to nothing. Looked at again now that
        # this one is stored, the topic is still ACTIVE (a later delete finds this trigger)
        # or going (and this trigger goes, before anything is deployed).
        try:
            self._require_readable_topic(caller, draft.namespace, draft.topic)
        except FabricError:
            self._deps.registry.delete_trigger(trigger_id)
            raise
        stored = self._deps.registry.get_trigger(trigger_id) or trigger
        secret = self._new_secret() if kind == "webhook" else None
        try:
            status = self.platform.deploy(stored, secret=secret, code=code)
        except Exception as exc:
            self._roll_back(stored, exc)
            raise
        try:
            created = self._record_status(stored, status)
        except NotFound:
            # The record went while the platform deployed (its topic was deleted, and the
            # delete took the topic's triggers): what was deployed must go too.
            self.platform.remove(stored)
            raise Conflict(
                f"topic {draft.namespace}/{draft.topic} was deleted while the trigger was "
                "being created; nothing was kept",
                details={"namespace": draft.namespace, "topic": draft.topic},
            ) from None
        return CreatedTrigger(created, secret)

    def _roll_back(self, trigger: Trigger, cause: Exception) -> None:
        """Undo a failed create; if even that fails, leave it visibly FAILING for reconcile."""
        try:
            self.platform.remove(trigger)
            self._deps.registry.delete_trigger(trigger.trigger_id)
        except Exception as exc:  # keep the record: reconcile (or DELETE) finishes the job
            failing = trigger.model_copy(
                update={
                    "state": TriggerState.FAILING,
                    "last_error": f"deploy failed ({cause}); rollback failed ({exc})",
                }
            )
            self._deps.registry.update_trigger(failing, expected_version=trigger.version)

    def update(self, caller: Principal, trigger_id: str, changes: TriggerChanges) -> Trigger:
        trigger = self._owned(caller, trigger_id)
        if trigger.state is TriggerState.DELETING:
            raise Conflict(f"trigger {trigger_id!r} is being deleted")
        spec = spec_of(trigger)
        updates: dict[str, Any] = {}
        if changes.filters is not None:
            updates["filters"] = normalize_filters(changes.filters)
        batch_size, window, retries = self._batching(
            spec.batch_size if changes.batch_size is None else changes.batch_size,
            spec.batching_window_seconds
            if changes.batching_window_seconds is None
            else changes.batching_window_seconds,
            spec.max_retries if changes.max_retries is None else changes.max_retries,
        )
        updates.update(batch_size=batch_size, batching_window_seconds=window, max_retries=retries)
        code: CodeSource | None = None
        if changes.code_base64 is not None or changes.code_upload_id is not None:
            if spec.function is None:
                where = (
                    "function.code_base64"
                    if changes.code_base64 is not None
                    else "function.code_upload_id"
                )
                raise field_error(where, "only function triggers have code")
            code, sha256, size = self._code(
                caller, changes.code_base64, changes.code_upload_id, spec.function.handler
            )
            updates["function"] = spec.function.model_copy(
                update={"code_sha256": sha256, "code_size": size}
            )
        # Access may have been revoked since the trigger was created: check on every deploy.
        self._require_readable_topic(caller, trigger.namespace, trigger.topic)
        new_spec = spec.model_copy(update=updates)
        changed = trigger.model_copy(
            update={
                "spec": new_spec.model_dump(mode="json"),
                "enabled": trigger.enabled if changes.enabled is None else changes.enabled,
                "updated_at": self._deps.clock(),
            }
        )
        stored = self._deps.registry.update_trigger(changed, expected_version=trigger.version)
        try:
            status = self.platform.update(stored, code=code)
        except FabricError as exc:
            status = TriggerStatus(state=TriggerState.FAILING.value, last_error=exc.message)
            self._record_status(stored, status)
            raise
        return self._record_status(stored, status)

    def delete(self, caller: Principal, trigger_id: str) -> None:
        trigger = self._owned(caller, trigger_id)
        deleting = self._deps.registry.update_trigger(
            trigger.model_copy(update={"state": TriggerState.DELETING, "enabled": False}),
            expected_version=trigger.version,
        )
        try:
            self.platform.remove(deleting)
        except FabricError as exc:
            self._deps.registry.update_trigger(
                deleting.model_copy(update={"last_error": f"delete failed: {exc.message}"}),
                expected_version=deleting.version,
            )
            raise
        self._deps.registry.delete_trigger(trigger_id)

    def remove_for_topic(self, topic: Topic) -> None:
        """A deleted topic takes its triggers with it: they could never run again.

        Anyone with read access may have bound one, so this asks the registry by topic,
        not by owner.
        """
        for trigger in self._deps.registry.list_triggers_on_topic(topic.namespace, topic.name):
            self._remove(trigger)

    def _remove(self, trigger: Trigger) -> None:
        try:
            self.platform.remove(trigger)
        except FabricError as exc:
            # Leave it visible as failing; reconcile (or a delete) finishes the job.
            self._deps.registry.update_trigger(
                trigger.model_copy(
                    update={"state": TriggerState.FAILING, "last_error": exc.message}
                ),
                expected_version=trigger.version,
            )
            return
        self._deps.registry.delete_trigger(trigger.trigger_id)
