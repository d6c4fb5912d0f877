"""Managed triggers on AWS: one Lambda function per trigger, fed by an MSK event source mapping.

Per trigger (names from :mod:`runtime.adapters.aws.trigger_naming`, never from user input):

1. IAM role ``<prefix><id>`` under ``trigger_role_path``, trusted by Lambda only, **always**
   with the permissions boundary ``trigger_boundary_arn``, and one inline policy that reads
   only the trigger's topic as its one consumer group (:mod:`.trigger_policy`);
2. its dead-letter queue ``<prefix><id>-dlq`` (KMS, the key of the fabric's shared DLQ) and
   its log groups (function logs; dead-letter archive), both with a retention;
3. webhook triggers: the signing secret in Secrets Manager (``octopus/triggers/<stage>/<id>``,
   tagged), readable by that role only;
4. the function: the packaged template (webhook) or the user's zip (function), with the
   runtime, memory, timeout and environment checked against ``trigger_limits`` again here —
   no role, layer, VPC or runtime can come from the user; the DLQ is its on-failure
   destination too. Created with backoff while IAM has not propagated the new role, then
   waited on until ``Active``;
5. the event source mapping on the cluster ARN: topic, consumer group derived from the id,
   filters, batch size/window, starting position, retries, on-failure → the trigger's DLQ,
   provisioned poller mode (required for error controls; billed per event poller unit).

A failing step rolls back what this call created, in reverse order, and raises a
:class:`FabricError` (the core records it). ``remove`` deletes every piece; missing pieces
are fine. Every wait is on AWS's real state with bounded exponential backoff.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, Final

import boto3
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ValidationError

from runtime.adapters.aws.trigger_dead_letters import ARCHIVE_STREAM, parse_queue_message
from runtime.adapters.aws.trigger_naming import TriggerNames
from runtime.adapters.aws.trigger_policy import LAMBDA_TRUST_POLICY, trigger_role_policy
from runtime.adapters.aws.waiters import Backoff, Clock, Sleep, retry_while, wait_for
from runtime.config import RuntimeSettings
from runtime.domain.code_uploads import UPLOAD_PREFIX
from runtime.domain.errors import BadRequest, FabricError, Unavailable, Unprocessable
from runtime.domain.models import Page, Trigger, TriggerState
from runtime.domain.ports import (
    CodeSource,
    TriggerDeadLetter,
    TriggerLogLine,
    TriggerStatus,
    UploadedCode,
)
from runtime.domain.triggers import TriggerSpec
from runtime.triggers.filters import InvalidFilterCriteria, validate_filter_criteria
from runtime.triggers.webhook import InvalidWebhook, validate_static_headers, validate_webhook_url

logger = logging.getLogger(__name__)

# The packaged template: the runtime/ bundle of the infrastructure (lambda_code.py builds it
# for CPython 3.14 on arm64; keep these in step with PYTHON_RUNTIME/ARCHITECTURE there).
TEMPLATE_HANDLER: Final = "runtime.handlers.webhook_trigger.handler"
TEMPLATE_RUNTIME: Final = "python3.14"
TEMPLATE_ARCHITECTURE: Final = "arm64"
TEMPLATE_MEMORY_MB: Final = 256
# The template's retry budget (OCTOPUS_WEBHOOK_MAX_TOTAL_S, 30 s) plus its margin, doubled.
TEMPLATE_TIMEOUT_S: Final = 60
# User zips: Lambda's default architecture, the one pip builds wheels for by default.
USER_ARCHITECTURE: Final = "x86_64"
HANDLER_RE: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$")
RESERVED_ENV_PREFIXES: Final = ("AWS_", "LAMBDA_", "_", "OCTOPUS_")
# Names the Lambda runtime depends on (as in runtime.domain.triggers, plus the preloaders).
RESERVED_ENV_NAMES: Final = frozenset(
    {"TZ", "PATH", "LANG", "LD_LIBRARY_PATH", "LD_PRELOAD", "PYTHONPATH", "PYTHONHOME"}
)
MIN_MEMORY_MB: Final = 128
LOG_RETENTION_DAYS: Final = 30
DLQ_RETENTION_SECONDS: Final = 14 * 24 * 3600  # SQS's maximum
FALLBACK_QUEUE_KEY: Final = "alias/aws/sqs"
CLOUDWATCH_MAX_LIMIT: Final = 10_000
# Budgets stay under API Gateway's 29 s: a request never outlives its caller. A wait that runs
# out raises 503 with what it waited for; the trigger is rolled back (deploy) or left
# DELETING (remove) for a retry.
ROLE_PROPAGATION: Final = Backoff(first=0.5, cap=4.0, budget=20.0)
READINESS: Final = Backoff(first=0.25, cap=2.0, budget=20.0)
MAPPING_DELETION: Final = Backoff(first=0.5, cap=4.0, budget=20.0)

# Lambda's refusal while IAM has not yet propagated a new role (or its policy) to Lambda.
_ROLE_NOT_READY = re.compile(
    r"cannot be assumed|execution role does not have permissions|role .*not (?:yet )?"
    r"(?:available|authorized)",
    re.IGNORECASE,
)
_THROTTLED: Final = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "ServiceUnavailable",
        "ServiceException",
        "InternalFailure",
    }
)
_MISSING: Final = frozenset(
    {
        "ResourceNotFoundException",
        "NoSuchEntity",
        "AWS.SimpleQueueService.NonExistentQueue",
        "QueueDoesNotExist",
    }
)


class TriggerDeployFailed(FabricError):
    """AWS refused a step; ``message`` says which and why (it becomes ``last_error``)."""

    status = 502
    code = "trigger_deploy_failed"


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _error_message(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Message", ""))


def _is_missing(exc: BaseException) -> bool:
    return isinstance(exc, ClientError) and _error_code(exc) in _MISSING


def _role_not_ready(exc: Exception) -> bool:
    return (
        isinstance(exc, ClientError)
        and _error_code(exc) == "InvalidParameterValueException"
        and bool(_ROLE_NOT_READY.search(_error_message(exc)))
    )


@contextmanager
def _aws(action: str) -> Iterator[None]:
    """Translate boto errors into fabric errors that say what failed and why."""
    try:
        yield
    except FabricError:
        raise
    except ClientError as exc:
        code = _error_code(exc)
        if code in _THROTTLED:
            raise Unavailable(f"AWS is busy ({action}: {code}); retry shortly") from exc
        raise TriggerDeployFailed(f"{action}: {code}: {_error_message(exc)[:300]}") from exc
    except BotoCoreError as exc:
        raise Unavailable(f"AWS could not be reached ({action}: {type(exc).__name__})") from exc


def _tolerating_missing(action: str, call: Callable[[], Any]) -> bool:
    """Run a delete; True if it deleted, False if the thing was already gone."""
    with _aws(action):
        try:
            call()
        except ClientError as exc:
            if _is_missing(exc):
                return False
            raise
    return True


def _refuse(field: str, message: str) -> Unprocessable:
    return Unprocessable(f"{field}: {message}", details={"field": field})


class _Undo:
    """What one deploy created, to be undone in reverse order if a later step fails."""

    def __init__(self) -> None:
        self._steps: list[tuple[str, Callable[[], Any]]] = []

    def push(self, what: str, undo: Callable[[], Any]) -> None:
        self._steps.append((what, undo))

    def run(self) -> list[str]:
        failures: list[str] = []
        for what, undo in reversed(self._steps):
            try:
                undo()
            except Exception as exc:  # keep undoing the rest; report what remains
                if not _is_missing(exc):
                    logger.exception("rollback of %s failed", what)
                    failures.append(f"{what}: {exc}")
        self._steps.clear()
        return failures


class LambdaTriggerPlatform:
    """:class:`runtime.domain.ports.TriggerPlatform` on Lambda + MSK event source mappings."""

    # A status is two control-plane calls (the function, its event source mappings); a
    # page of 100 asked one by one would take seconds.
    status_concurrency = 8

    def __init__(
        self,
        settings: RuntimeSettings,
        *,
        lambda_client: Any = None,
        iam_client: Any = None,
        logs_client: Any = None,
        secrets_client: Any = None,
        sqs_client: Any = None,
        sleep: Sleep = time.sleep,
        clock: Clock = time.time,
        role_propagation: Backoff = ROLE_PROPAGATION,
        readiness: Backoff = READINESS,
        mapping_deletion: Backoff = MAPPING_DELETION,
        max_pollers: int = 2,
        drain_batches: int = 10,
    ) -> None:
        self.settings = settings
        self._clients: dict[str, Any] = {
            "lambda": lambda_client,
            "iam": iam_client,
            "logs": logs_client,
            "secretsmanager": secrets_client,
            "sqs": sqs_client,
        }
        # Statuses of a page are asked from several threads; boto3 makes clients from its
        # default session, which is not thread-safe, so clients are made under a lock.
        self._clients_lock = threading.Lock()
        self._sleep = sleep
        self._clock = clock
        self._role_propagation = role_propagation
        self._readiness = readiness
        self._mapping_deletion = mapping_deletion
        self._max_pollers = max_pollers
        self._drain_batches = drain_batches
        self._queue_key: str | None = None

    # ------------------------------------------------------------------ clients, names

    def _client(self, service: str) -> Any:
        # Built lazily: the API process constructs the platform at start, without a call.
        client = self._clients[service]
        if client is None:
            with self._clients_lock:
                client = self._clients[service]
                if client is None:
                    region = self.settings.region if self.settings.region != "local" else None
                    client = boto3.client(service, region_name=region)  # type: ignore[call-overload]
                    self._clients[service] = client
        return client

    @property
    def _lambda(self) -> Any:
        return self._client("lambda")

    @property
    def _iam(self) -> Any:
        return self._client("iam")

    @property
    def _logs(self) -> Any:
        return self._client("logs")

    @property
    def _secrets(self) -> Any:
        return self._client("secretsmanager")

    @property
    def _sqs(self) -> Any:
        return self._client("sqs")

    def _names(self, trigger: Trigger) -> TriggerNames:
        return TriggerNames.of(self.settings, trigger)

    # ------------------------------------------------------------------ spec checks

    def _checked_spec(self, trigger: Trigger, code: CodeSource | None) -> TriggerSpec:
        """The stored spec, checked again against config before any AWS call.

        The core validates first; this is the second lock on the door: the spec format has
        no field for a role, layer or VPC, and runtime/memory/timeout/environment must be
        within ``trigger_limits`` or the deploy is refused.
        """
        try:
            spec = TriggerSpec.model_validate(trigger.spec)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "spec"
            raise _refuse(where, str(first["msg"])) from exc
        limits = self.settings.trigger_limits
        if not 1 <= spec.batch_size <= limits.max_batch_size:
            raise _refuse("batch_size", f"must be between 1 and {limits.max_batch_size}")
        if not 0 <= spec.batching_window_seconds <= limits.max_batching_window_seconds:
            raise _refuse(
                "batching_window_seconds",
                f"must be between 0 and {limits.max_batching_window_seconds}",
            )
        if (spec.webhook is None) == (spec.function is None) or (
            (spec.webhook is not None) != (trigger.kind == "webhook")
        ):
            raise _refuse("kind", f"a {trigger.kind} trigger needs exactly its own settings")
        try:
            validate_filter_criteria(spec.filter_criteria(), value_only=True)
        except InvalidFilterCriteria as exc:
            raise _refuse("filters", exc.message) from exc
        if spec.webhook is not None:
            try:
                validate_webhook_url(spec.webhook.url, allow_private=False, resolve=False)
                validate_static_headers(spec.webhook.headers)
            except InvalidWebhook as exc:
                raise _refuse("webhook", exc.message) from exc
        if spec.function is not None:
            fn = spec.function
            if fn.runtime not in limits.allowed_runtimes:
                raise _refuse(
                    "function.runtime",
                    f"{fn.runtime!r} is not offered; choose one of {list(limits.allowed_runtimes)}",
                )
            if not HANDLER_RE.fullmatch(fn.handler):
                raise _refuse("function.handler", "must look like 'module.function'")
            if not MIN_MEMORY_MB <= fn.memory_mb <= limits.max_memory_mb:
                raise _refuse(
                    "function.memory_mb",
                    f"must be between {MIN_MEMORY_MB} and {limits.max_memory_mb}",
                )
            if not 1 <= fn.timeout_seconds <= limits.max_timeout_seconds:
                raise _refuse(
                    "function.timeout_seconds",
                    f"must be between 1 and {limits.max_timeout_seconds}",
                )
            for name in fn.environment:
                upper = name.upper()
                if upper.startswith(RESERVED_ENV_PREFIXES) or upper in RESERVED_ENV_NAMES:
                    raise _refuse(f"function.environment.{name}", "is reserved by the platform")
            if isinstance(code, bytes) and hashlib.sha256(code).hexdigest() != fn.code_sha256:
                raise _refuse("function.code_base64", "does not match the stored code digest")
            if isinstance(code, UploadedCode):
                self._check_upload(code, fn.code_sha256)
        return spec

    def _check_upload(self, code: UploadedCode, sha256: str) -> None:
        """Only keys under ``uploads/`` of the fabric's own code bucket, as the core checked."""
        where = "function.code_upload_id"
        if not self.settings.trigger_code_bucket:
            raise TriggerDeployFailed("trigger_code_bucket is not configured")
        if not code.key.startswith(UPLOAD_PREFIX) or ".." in code.key.split("/"):
            raise _refuse(where, "is not an upload of this fabric")
        if code.sha256 != sha256:
            raise _refuse(where, "does not match the stored code digest")

    def _code_location(self, code: CodeSource) -> dict[str, Any]:
        """Lambda's ``Code`` (CreateFunction) / code arguments (UpdateFunctionCode)."""
        if isinstance(code, bytes):
            return {"ZipFile": code}
        return {"S3Bucket": self.settings.trigger_code_bucket, "S3Key": code.key}

    @staticmethod
    def _check_deployed_digest(reply: dict[str, Any], sha256: str) -> None:
        """Lambda's CodeSha256 is base64 of the digest: the code it took is what was checked.

        An upload can be replaced (the same presigned form, within its 15 minutes) between
        the core's check and Lambda's fetch; this catches it.
        """
        expected = base64.b64encode(bytes.fromhex(sha256)).decode()
        if reply.get("CodeSha256") != expected:
            raise _refuse(
                "function.code_upload_id",
                "the uploaded code changed after it was checked; upload again",
            )

    # ------------------------------------------------------------------ deploy

    def deploy(
        self, trigger: Trigger, *, secret: str | None, code: CodeSource | None
    ) -> TriggerStatus:
        names = self._names(trigger)
        spec = self._checked_spec(trigger, code)
        if spec.function is not None and code is None:
            raise _refuse("function.code_base64", "a function trigger needs its code")
        if spec.webhook is not None and not secret:
            raise _refuse("webhook", "a webhook trigger needs its signing secret")
        if not self.settings.trigger_boundary_arn:
            raise TriggerDeployFailed("trigger_boundary_arn is not configured; refusing to deploy")
        undo = _Undo()
        try:
            queue_url, queue_arn = self._create_queue(names, undo)
            self._create_log_groups(names, undo)
            secret_arn = self._create_secret(names, secret, undo) if spec.webhook else None
            role_arn = self._create_role(names, secret_arn, undo)
            self._create_function(
                names, spec, role_arn, queue_url, queue_arn, secret_arn, code, undo
            )
            mapping = self._create_mapping(names, spec, trigger.enabled, queue_arn, undo)
        except Exception as exc:
            leftovers = undo.run()
            message = (
                exc.message if isinstance(exc, FabricError) else f"{type(exc).__name__}: {exc}"
            )
            if leftovers:
                message = f"{message}; rollback left: {'; '.join(leftovers)}"
            if isinstance(exc, FabricError):
                raise type(exc)(message, details=exc.details) from exc
            raise TriggerDeployFailed(message) from exc
        return self._status_from(mapping, trigger)

    def _queue_key_id(self) -> str:
        """The KMS key of the fabric's shared DLQ, reused for every trigger's queue."""
        if self._queue_key is None:
            key = ""
            dlq_arn = self.settings.trigger_dlq_arn
            if dlq_arn:
                _, _, _, _, account, queue_name = dlq_arn.split(":", 5)
                with _aws("look up the fabric's dead-letter queue key"):
                    url = self._sqs.get_queue_url(
                        QueueName=queue_name, QueueOwnerAWSAccountId=account
                    )["QueueUrl"]
                    attributes = self._sqs.get_queue_attributes(
                        QueueUrl=url, AttributeNames=["KmsMasterKeyId"]
                    ).get("Attributes", {})
                key = attributes.get("KmsMasterKeyId", "")
            self._queue_key = key or FALLBACK_QUEUE_KEY
        return self._queue_key

    def _create_queue(self, names: TriggerNames, undo: _Undo) -> tuple[str, str]:
        key = self._queue_key_id()
        deny_plain_http = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "TlsOnly",
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": "sqs:*",
                    "Resource": names.queue_arn,
                    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                }
            ],
        }
        with _aws("create the dead-letter queue"):
            url = self._sqs.create_queue(
                QueueName=names.queue,
                Attributes={
                    "KmsMasterKeyId": key,
                    "KmsDataKeyReusePeriodSeconds": "300",
                    "MessageRetentionPeriod": str(DLQ_RETENTION_SECONDS),
                    "Policy": json.dumps(deny_plain_http),
                },
                tags=names.tags(),
            )["QueueUrl"]
        undo.push("dead-letter queue", lambda: self._sqs.delete_queue(QueueUrl=url))
        return url, names.queue_arn

    def _create_log_groups(self, names: TriggerNames, undo: _Undo) -> None:
        for group in (names.log_group, names.dead_letter_log_group):
            with _aws(f"create log group {group}"):
                try:
                    self._logs.create_log_group(logGroupName=group, tags=names.tags())
                except ClientError as exc:
                    if _error_code(exc) != "ResourceAlreadyExistsException":
                        raise
                else:
                    undo.push(
                        f"log group {group}",
                        lambda g=group: self._logs.delete_log_group(logGroupName=g),  # type: ignore[misc]
                    )
                self._logs.put_retention_policy(
                    logGroupName=group, retentionInDays=LOG_RETENTION_DAYS
                )

    def _create_secret(self, names: TriggerNames, secret: str | None, undo: _Undo) -> str:
        tags = [{"Key": k, "Value": v} for k, v in names.tags().items()]
        with _aws("store the webhook secret"):
            try:
                arn = self._secrets.create_secret(
                    Name=names.secret,
                    SecretString=secret,
                    Description=f"Octopus trigger {names.trigger_id}: webhook signing key",
                    Tags=tags,
                )["ARN"]
            except ClientError as exc:
                if _error_code(exc) != "ResourceExistsException":
                    raise
                # A retried deploy (reconcile): the new secret replaces the old one.
                arn = self._secrets.put_secret_value(SecretId=names.secret, SecretString=secret)[
                    "ARN"
                ]
                return str(arn)
        undo.push(
            "webhook secret",
            lambda: self._secrets.delete_secret(SecretId=arn, ForceDeleteWithoutRecovery=True),
        )
        return str(arn)

    def _create_role(self, names: TriggerNames, secret_arn: str | None, undo: _Undo) -> str:
        boundary = self.settings.trigger_boundary_arn
        with _aws("create the trigger's role"):
            try:
                role = self._iam.create_role(
                    RoleName=names.role,
                    Path=names.role_path,
                    AssumeRolePolicyDocument=json.dumps(LAMBDA_TRUST_POLICY),
                    PermissionsBoundary=boundary,
                    Description=f"Octopus trigger {names.trigger_id}",
                    Tags=[{"Key": k, "Value": v} for k, v in names.tags().items()],
                )["Role"]
            except ClientError as exc:
                if _error_code(exc) != "EntityAlreadyExists":
                    raise
                role = self._iam.get_role(RoleName=names.role)["Role"]
                held = role.get("PermissionsBoundary", {}).get("PermissionsBoundaryArn")
                if role.get("Path") != names.role_path or held != boundary:
                    raise TriggerDeployFailed(
                        f"role {names.role} exists without the trigger boundary or path"
                    ) from exc
            else:
                undo.push("role", lambda: self._delete_role(names))
            policy = trigger_role_policy(
                names,
                secret_arn=secret_arn,
                queue_key_arn=self._queue_key_id()
                if self._queue_key_id().startswith("arn:")
                else None,
            )
            self._iam.put_role_policy(
                RoleName=names.role,
                PolicyName=names.role_policy,
                PolicyDocument=json.dumps(policy),
            )
        return str(role["Arn"])

    def _function_settings(
        self,
        names: TriggerNames,
        spec: TriggerSpec,
        queue_url: str,
        secret_arn: str | None,
    ) -> dict[str, Any]:
        """Runtime, handler, sizes and environment: ours for the template, capped for users."""
        if spec.webhook is not None:
            environment = {
                "OCTOPUS_WEBHOOK_URL": spec.webhook.url,
                "OCTOPUS_WEBHOOK_HEADERS": json.dumps(spec.webhook.headers, separators=(",", ":")),
                "OCTOPUS_WEBHOOK_SECRET_ARN": secret_arn or "",
                "OCTOPUS_DLQ_URL": queue_url,
                "OCTOPUS_TRIGGER_ID": names.trigger_id,
                "OCTOPUS_WEBHOOK_MODE": "record",
            }
            return {
                "Runtime": TEMPLATE_RUNTIME,
                "Handler": TEMPLATE_HANDLER,
                "MemorySize": TEMPLATE_MEMORY_MB,
                "Timeout": TEMPLATE_TIMEOUT_S,
                "Environment": {"Variables": environment},
            }
        assert spec.function is not None  # _checked_spec made sure
        fn = spec.function
        environment = {**fn.environment, "OCTOPUS_TRIGGER_ID": names.trigger_id}
        return {
            "Runtime": fn.runtime,
            "Handler": fn.handler,
            "MemorySize": fn.memory_mb,
            "Timeout": fn.timeout_seconds,
            "Environment": {"Variables": environment},
        }

    def _create_function(
        self,
        names: TriggerNames,
        spec: TriggerSpec,
        role_arn: str,
        queue_url: str,
        queue_arn: str,
        secret_arn: str | None,
        code: CodeSource | None,
        undo: _Undo,
    ) -> None:
        if spec.webhook is not None:
            bucket, key = self.settings.trigger_template_bucket, self.settings.trigger_template_key
            if not bucket or not key:
                raise TriggerDeployFailed("the webhook template location is not configured")
            source: dict[str, Any] = {"S3Bucket": bucket, "S3Key": key}
            architecture = TEMPLATE_ARCHITECTURE
        else:
            if code is None:
                raise _refuse("function.code_base64", "a function trigger needs its code")
            source = self._code_location(code)
            architecture = USER_ARCHITECTURE
        arguments = {
            "FunctionName": names.function,
            "Role": role_arn,
            "Code": source,
            "Architectures": [architecture],
            "Description": f"Octopus trigger {names.trigger_id}",
            "Tags": names.tags(),
            "LoggingConfig": {"LogFormat": "Text", "LogGroup": names.log_group},
            **self._function_settings(names, spec, queue_url, secret_arn),
        }
        with _aws("create the trigger's function"):
            created: dict[str, Any] = retry_while(
                lambda: self._lambda.create_function(**arguments),
                retryable=_role_not_ready,
                what="the new role to reach Lambda",
                backoff=self._role_propagation,
                sleep=self._sleep,
                clock=self._clock,
            )
        undo.push("function", lambda: self._lambda.delete_function(FunctionName=names.function))
        if spec.function is not None:
            self._check_deployed_digest(created, spec.function.code_sha256)
        self._wait_function_ready(names)
        with _aws("set the function's on-failure destination"):
            self._lambda.put_function_event_invoke_config(
                FunctionName=names.function,
                MaximumRetryAttempts=2,
                DestinationConfig={"OnFailure": {"Destination": queue_arn}},
            )

    def _wait_function_ready(self, names: TriggerNames) -> None:
        def probe() -> tuple[bool, str]:
            with _aws("read the function's state"):
                config = self._lambda.get_function_configuration(FunctionName=names.function)
            state = config.get("State", "Active")
            update = config.get("LastUpdateStatus", "Successful")
            if state == "Failed":
                raise TriggerDeployFailed(
                    f"function failed to start: {config.get('StateReason', 'no reason given')}"
                )
            if update == "Failed":
                raise TriggerDeployFailed(
                    "function update failed: "
                    f"{config.get('LastUpdateStatusReason', 'no reason given')}"
                )
            ready = state in ("Active", "Inactive") and update != "InProgress"
            return ready, f"State={state}, LastUpdateStatus={update}"

        wait_for(
            probe,
            what=f"function {names.function} to be Active",
            backoff=self._readiness,
            sleep=self._sleep,
            clock=self._clock,
        )

    def _mapping_arguments(
        self, spec: TriggerSpec, enabled: bool, queue_arn: str
    ) -> dict[str, Any]:
        """The settings ``update`` may change too (filters, batching, retries, enabled)."""
        return {
            "Enabled": enabled,
            "BatchSize": spec.batch_size,
            "MaximumBatchingWindowInSeconds": spec.batching_window_seconds,
            "FilterCriteria": spec.filter_criteria() or {"Filters": []},
            "MaximumRetryAttempts": spec.max_retries,
            "DestinationConfig": {"OnFailure": {"Destination": queue_arn}},
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
        }

    def _create_mapping(
        self, names: TriggerNames, spec: TriggerSpec, enabled: bool, queue_arn: str, undo: _Undo
    ) -> dict[str, Any]:
        arguments: dict[str, Any] = {
            "EventSourceArn": names.cluster.arn,
            "FunctionName": names.function,
            "Topics": [names.kafka_topic],
            "StartingPosition": spec.starting_position,
            "AmazonManagedKafkaEventSourceConfig": {"ConsumerGroupId": names.consumer_group},
            # Error controls (retries, on-failure destination) need provisioned mode: at least
            # one event poller unit per trigger is billed for as long as the trigger exists.
            "ProvisionedPollerConfig": {"MinimumPollers": 1, "MaximumPollers": self._max_pollers},
            **self._mapping_arguments(spec, enabled, queue_arn),
        }
        if not spec.filters:
            del arguments["FilterCriteria"]
        if spec.starting_position == "AT_TIMESTAMP":
            arguments["StartingPositionTimestamp"] = spec.starting_timestamp
        with _aws("create the event source mapping"):
            mapping: dict[str, Any] = retry_while(
                lambda: self._lambda.create_event_source_mapping(**arguments),
                retryable=_role_not_ready,
                what="the role's policy to reach Lambda",
                backoff=self._role_propagation,
                sleep=self._sleep,
                clock=self._clock,
            )
        uuid = mapping["UUID"]
        undo.push("event source mapping", lambda: self._delete_mapping(uuid))
        return mapping

    # ------------------------------------------------------------------ update

    def update(self, trigger: Trigger, *, code: CodeSource | None) -> TriggerStatus:
        names = self._names(trigger)
        spec = self._checked_spec(trigger, code)
        mapping = self._find_mapping(names)
        if mapping is None:
            raise TriggerDeployFailed(
                f"the event source mapping of trigger {names.trigger_id} is missing; "
                "delete and recreate the trigger"
            )
        if code is not None:
            if spec.function is None:
                raise _refuse("function.code_base64", "only function triggers have code")
            with _aws("update the function's code"):
                replaced: dict[str, Any] = self._lambda.update_function_code(
                    FunctionName=names.function, **self._code_location(code)
                )
            self._check_deployed_digest(replaced, spec.function.code_sha256)
            self._wait_function_ready(names)
        with _aws("update the event source mapping"):
            updated: dict[str, Any] = self._lambda.update_event_source_mapping(
                UUID=mapping["UUID"],
                FunctionName=names.function,
                **self._mapping_arguments(spec, trigger.enabled, names.queue_arn),
            )
        return self._status_from(updated, trigger)

    # ------------------------------------------------------------------ remove

    def remove(self, trigger: Trigger) -> None:
        names = self._names(trigger)
        mapping = self._find_mapping(names)
        if mapping is not None:
            self._delete_mapping(mapping["UUID"])
        _tolerating_missing(
            "delete the function", lambda: self._lambda.delete_function(FunctionName=names.function)
        )
        for group in (names.log_group, names.dead_letter_log_group):
            _tolerating_missing(
                f"delete log group {group}",
                lambda g=group: self._logs.delete_log_group(logGroupName=g),  # type: ignore[misc]
            )
        _tolerating_missing(
            "delete the webhook secret",
            lambda: self._secrets.delete_secret(
                SecretId=names.secret, ForceDeleteWithoutRecovery=True
            ),
        )
        _tolerating_missing("delete the dead-letter queue", lambda: self._delete_queue(names))
        self._delete_role(names)

    def _delete_queue(self, names: TriggerNames) -> None:
        url = self._sqs.get_queue_url(
            QueueName=names.queue, QueueOwnerAWSAccountId=names.cluster.account
        )["QueueUrl"]
        self._sqs.delete_queue(QueueUrl=url)

    def _delete_role(self, names: TriggerNames) -> None:
        def policies() -> list[str]:
            return list(self._iam.list_role_policies(RoleName=names.role)["PolicyNames"])

        def attached() -> list[str]:
            found = self._iam.list_attached_role_policies(RoleName=names.role)
            return [p["PolicyArn"] for p in found["AttachedPolicies"]]

        def delete() -> None:
            for name in policies():
                self._iam.delete_role_policy(RoleName=names.role, PolicyName=name)
            for arn in attached():
                self._iam.detach_role_policy(RoleName=names.role, PolicyArn=arn)
            self._iam.delete_role(RoleName=names.role)

        _tolerating_missing("delete the trigger's role", delete)

    def _find_mapping(self, names: TriggerNames) -> dict[str, Any] | None:
        with _aws("list the event source mappings"):
            try:
                pages = self._lambda.get_paginator("list_event_source_mappings").paginate(
                    FunctionName=names.function
                )
                for page in pages:
                    for mapping in page.get("EventSourceMappings", []):
                        if mapping.get("EventSourceArn") == names.cluster.arn:
                            return dict(mapping)
            except ClientError as exc:
                if _is_missing(exc):
                    return None
                raise
        return None

    def _delete_mapping(self, uuid: str) -> None:
        """Delete and wait until Lambda no longer knows the mapping (its pollers are gone)."""
        if not _tolerating_missing(
            "delete the event source mapping",
            lambda: self._lambda.delete_event_source_mapping(UUID=uuid),
        ):
            return

        def probe() -> tuple[bool, str]:
            with _aws("read the event source mapping"):
                try:
                    state = self._lambda.get_event_source_mapping(UUID=uuid).get("State", "?")
                except ClientError as exc:
                    if _is_missing(exc):
                        return True, "deleted"
                    raise
            return False, str(state)

        wait_for(
            probe,
            what=f"event source mapping {uuid} to be deleted",
            backoff=self._mapping_deletion,
            sleep=self._sleep,
            clock=self._clock,
        )

    # ------------------------------------------------------------------ status

    def status(self, trigger: Trigger) -> TriggerStatus:
        names = self._names(trigger)
        with _aws("read the function's state"):
            try:
                config = self._lambda.get_function_configuration(FunctionName=names.function)
            except ClientError as exc:
                if not _is_missing(exc):
                    raise
                return TriggerStatus(
                    state=TriggerState.FAILING.value, last_error="the function is missing"
                )
        state = config.get("State", "Active")
        if state == "Failed":
            return TriggerStatus(
                state=TriggerState.FAILING.value,
                last_error=f"function failed: {config.get('StateReason', 'no reason given')}",
            )
        if config.get("LastUpdateStatus") == "Failed":
            reason = config.get("LastUpdateStatusReason", "no reason given")
            return TriggerStatus(
                state=TriggerState.FAILING.value, last_error=f"function update failed: {reason}"
            )
        mapping = self._find_mapping(names)
        if mapping is None:
            return TriggerStatus(
                state=TriggerState.FAILING.value, last_error="the event source mapping is missing"
            )
        if state == "Pending":
            return TriggerStatus(state=TriggerState.CREATING.value)
        return self._status_from(mapping, trigger)

    @staticmethod
    def _status_from(mapping: dict[str, Any], trigger: Trigger) -> TriggerStatus:
        """Lambda's mapping state → the trigger's state, with the reason when failing."""
        state = str(mapping.get("State", ""))
        reason = str(mapping.get("StateTransitionReason", "") or "")
        result = str(mapping.get("LastProcessingResult", "") or "")
        if state == "Deleting":
            return TriggerStatus(state=TriggerState.DELETING.value)
        if state in ("Creating", "Enabling"):
            return TriggerStatus(state=TriggerState.CREATING.value)
        if result.upper().startswith("PROBLEM"):
            return TriggerStatus(state=TriggerState.FAILING.value, last_error=result)
        if state in ("Disabled", "Disabling"):
            if trigger.enabled and reason and reason != "USER_INITIATED":
                # Lambda disabled it (e.g. lost access to the cluster or the function).
                return TriggerStatus(state=TriggerState.FAILING.value, last_error=reason)
            return TriggerStatus(state=TriggerState.DISABLED.value)
        if state == "Updating":
            return TriggerStatus(
                state=(TriggerState.ACTIVE if trigger.enabled else TriggerState.DISABLED).value
            )
        if state == "Enabled":
            return TriggerStatus(state=TriggerState.ACTIVE.value)
        return TriggerStatus(
            state=TriggerState.FAILING.value,
            last_error=f"unexpected event source mapping state {state!r} {reason}".strip(),
        )

    # ------------------------------------------------------------------ logs

    def logs(
        self, trigger: Trigger, *, since: datetime | None, cursor: str | None, limit: int
    ) -> Page[TriggerLogLine]:
        names = self._names(trigger)
        events, token = self._read_log_group(names.log_group, since, cursor, limit)
        lines = [
            TriggerLogLine(
                timestamp=datetime.fromtimestamp(event["timestamp"] / 1000, tz=UTC),
                message=str(event.get("message", "")).rstrip("\n"),
            )
            for event in events
        ]
        return Page[TriggerLogLine](items=lines, next_cursor=token)

    def _read_log_group(
        self, group: str, since: datetime | None, cursor: str | None, limit: int
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One page of a log group's events; a missing group is an empty page.

        CloudWatch may answer an empty page that still has a ``nextToken``; a few such
        pages are skipped here so callers rarely see an empty page that is not the end.
        """
        arguments: dict[str, Any] = {
            "logGroupName": group,
            "limit": max(1, min(limit, CLOUDWATCH_MAX_LIMIT)),
        }
        if since is not None:
            arguments["startTime"] = int(since.timestamp() * 1000)
        token = cursor
        for _ in range(5):
            if token:
                arguments["nextToken"] = token
            with _aws("read the trigger's logs"):
                try:
                    page = self._logs.filter_log_events(**arguments)
                except ClientError as exc:
                    if _is_missing(exc):
                        return [], None
                    if _error_code(exc) == "InvalidParameterException" and cursor:
                        raise BadRequest("the cursor is not valid for this listing") from exc
                    raise
            events = list(page.get("events", []))
            token = page.get("nextToken") or None
            if events or token is None:
                return events, token
        return [], token

    # ------------------------------------------------------------------ dead letters

    def dead_letters(
        self, trigger: Trigger, *, cursor: str | None, limit: int
    ) -> Page[TriggerDeadLetter]:
        names = self._names(trigger)
        if cursor is None:
            # Only a first page drains: later pages then page through a stable archive.
            self._drain_queue(names, trigger.kafka_topic)
        events, token = self._read_log_group(names.dead_letter_log_group, None, cursor, limit)
        letters: list[TriggerDeadLetter] = []
        for event in events:
            try:
                letters.append(TriggerDeadLetter.model_validate_json(event.get("message", "")))
            except ValidationError:
                logger.warning("skipping an unreadable archived dead letter of %s", names.function)
        return Page[TriggerDeadLetter](items=letters, next_cursor=token)

    def _drain_queue(self, names: TriggerNames, default_topic: str) -> None:
        """Move what the trigger's queue holds into its archive (archive first, then delete)."""
        with _aws("find the dead-letter queue"):
            try:
                url = self._sqs.get_queue_url(
                    QueueName=names.queue, QueueOwnerAWSAccountId=names.cluster.account
                )["QueueUrl"]
            except ClientError as exc:
                if _is_missing(exc):
                    return
                raise
        stream_ready = False
        for _ in range(self._drain_batches):
            with _aws("read the dead-letter queue"):
                messages = self._sqs.receive_message(
                    QueueUrl=url,
                    MaxNumberOfMessages=10,
                    WaitTimeSeconds=0,
                    VisibilityTimeout=60,
                    MessageSystemAttributeNames=["SentTimestamp"],
                ).get("Messages", [])
            if not messages:
                return
            now_ms = int(self._clock() * 1000)
            events = []
            for message in messages:
                sent = message.get("Attributes", {}).get("SentTimestamp")
                received_at = datetime.fromtimestamp((int(sent) if sent else now_ms) / 1000, tz=UTC)
                letter = parse_queue_message(
                    message.get("Body", ""), received_at=received_at, default_topic=default_topic
                )
                events.append({"timestamp": now_ms, "message": letter.model_dump_json()})
            with _aws("archive dead letters"):
                if not stream_ready:
                    try:
                        self._logs.create_log_stream(
                            logGroupName=names.dead_letter_log_group, logStreamName=ARCHIVE_STREAM
                        )
                    except ClientError as exc:
                        if _error_code(exc) != "ResourceAlreadyExistsException":
                            raise
                    stream_ready = True
                answer = self._logs.put_log_events(
                    logGroupName=names.dead_letter_log_group,
                    logStreamName=ARCHIVE_STREAM,
                    logEvents=events,
                )
            if answer.get("rejectedLogEventsInfo"):
                # Not archived: leave the messages in the queue (they reappear after the
                # visibility timeout) rather than lose them.
                raise Unavailable(
                    "could not archive dead letters "
                    f"({answer['rejectedLogEventsInfo']}); retry shortly"
                )
            with _aws("remove archived dead letters from the queue"):
                self._sqs.delete_message_batch(
                    QueueUrl=url,
                    Entries=[
                        {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                        for i, m in enumerate(messages)
                    ],
                )
