"""Broker credentials on AWS: one IAM user per identity, one managed policy, STS sessions.

- IAM user ``octopus-<sub without dashes>`` under ``settings.iam_user_path``,
  tagged with the Globus sub.
- One customer-managed policy ``octopus-<...>-kafka`` (same path) attached to
  it, rendered by :mod:`runtime.adapters.aws.iam_policy`. Its size is checked
  before IAM is called; IAM keeps at most 5 versions, so the oldest
  non-default version is deleted before a new default is created.
- Access keys are the user's IAM access keys: IAM allows two per user, so a
  third is a clear :class:`LimitReached` pointing to short-lived credentials.
  The secret is returned once and never stored (IAM keeps it).
- Short-lived credentials: ``sts:AssumeRole`` on ``client_session_role_arn``
  with a session policy built from the same permissions, tagged with the sub.

Every AWS error is translated: throttling or unreachable → :class:`Unavailable`,
IAM/STS limits → :class:`LimitReached`, anything else → :class:`FabricError`.
No raw boto error escapes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
)

from runtime.adapters.aws.iam_policy import (
    build_kafka_policy,
    ensure_managed_policy_fits,
    ensure_session_policy_fits,
    parse_cluster_arn,
)
from runtime.config import RuntimeSettings
from runtime.domain.errors import BadRequest, FabricError, LimitReached, Unavailable
from runtime.domain.models import AccessKey, Identity, KeyKind
from runtime.domain.ports import IssuedKey, Permissions, SessionCredentials

logger = logging.getLogger(__name__)
# Set by the Api stack: the permissions boundary of every client IAM user.
USER_BOUNDARY_ENV_VAR = "OCTOPUS_USER_BOUNDARY_ARN"

IAM_ACCESS_KEYS_PER_USER = 2
IAM_POLICY_VERSIONS = 5
SUB_TAG = "octopus:sub"
STS_MIN_SECONDS = 900
STS_MAX_SECONDS = 43_200

_THROTTLED = {
    "Throttling",
    "ThrottlingException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "ServiceFailure",
    "InternalFailure",
    "RegionDisabledException",
}
_LIMITS = {"LimitExceeded", "LimitExceededException", "PackedPolicyTooLarge"}
_UNREACHABLE = (
    EndpointConnectionError,
    ConnectTimeoutError,
    ReadTimeoutError,
    BotoConnectionError,
)


def principal_name(sub: str) -> str:
    """Deterministic IAM-safe name for a sub: ``octopus-<32 hex>`` (40 chars ≤ 64).

    A UUID sub keeps its hex digits (readable in the console); any other sub
    is hashed, so the name is always valid and unique per sub.
    """
    try:
        digits = uuid.UUID(sub).hex
    except ValueError:
        digits = hashlib.sha256(sub.encode("utf-8")).hexdigest()[:32]
    return f"octopus-{digits}"


def policy_name(sub: str) -> str:
    return f"{principal_name(sub)}-kafka"


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class AwsOutcome:
    """What :func:`aws_errors` tolerated: the AWS error code, or "" if the call succeeded."""

    def __init__(self) -> None:
        self.code = ""


@contextmanager
def aws_errors(action: str, *, tolerate: frozenset[str] = frozenset()) -> Iterator[AwsOutcome]:
    """Translate boto errors raised inside the block into fabric errors.

    Error codes in ``tolerate`` (e.g. ``NoSuchEntity`` when deleting) are
    swallowed and reported on the yielded :class:`AwsOutcome`.
    """
    outcome = AwsOutcome()
    try:
        yield outcome
    except ClientError as exc:
        code = _error_code(exc)
        if code in tolerate:
            outcome.code = code
            return
        message = exc.response.get("Error", {}).get("Message", "")
        if code in _THROTTLED:
            raise Unavailable(
                f"AWS is busy or unavailable ({action}: {code}); retry shortly"
            ) from exc
        if code in _LIMITS:
            raise LimitReached(f"an AWS limit was reached ({action}: {code}): {message}") from exc
        logger.error("AWS refused %s: %s %s", action, code, message)
        raise FabricError(f"AWS refused {action} ({code})") from exc
    except _UNREACHABLE as exc:
        raise Unavailable(f"AWS is unreachable ({action}); retry shortly") from exc
    except BotoCoreError as exc:
        logger.error("AWS client error during %s: %s", action, exc)
        raise FabricError(f"AWS client error during {action} ({type(exc).__name__})") from exc


MISSING = frozenset({"NoSuchEntity"})
EXISTS = frozenset({"EntityAlreadyExists"})


def _is(exc: ClientError, code: str) -> bool:
    return _error_code(exc) == code


def _document(raw: Any) -> Any:
    """IAM returns policy documents URL-encoded; botocore usually decodes them."""
    if isinstance(raw, str):
        return json.loads(unquote(raw))
    return raw


_AWS_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 4}, connect_timeout=5, read_timeout=15
)


class IamCredentialIssuer:
    """``CredentialIssuer`` for MSK with IAM access control."""

    def __init__(
        self,
        settings: RuntimeSettings,
        iam_client: Any | None = None,
        sts_client: Any | None = None,
        *,
        user_boundary_arn: str | None = None,
    ) -> None:
        self.settings = settings
        # The stack hands the boundary over as an environment variable: every client user
        # is created with it, so even a policy bug cannot give a user more than it allows.
        self.user_boundary_arn = (
            os.environ.get(USER_BOUNDARY_ENV_VAR, "")
            if user_boundary_arn is None
            else user_boundary_arn
        )
        self.cluster = parse_cluster_arn(settings.cluster_arn)
        if not re.fullmatch(r"/([\x21-\x7e]+/)?", settings.iam_user_path):
            raise ValueError(
                f"iam_user_path must start and end with '/': {settings.iam_user_path!r}"
            )
        self.path = settings.iam_user_path
        self._iam = iam_client or boto3.client("iam", config=_AWS_CONFIG)
        region = None if settings.region == "local" else settings.region
        self._sts = sts_client or boto3.client("sts", region_name=region, config=_AWS_CONFIG)

    # names
    def user_name(self, identity: Identity) -> str:
        return principal_name(identity.sub)

    def policy_arn(self, identity: Identity) -> str:
        # The policy lives in the cluster's account (the fabric's account).
        return (
            f"arn:{self.cluster.partition}:iam::{self.cluster.account}:policy"
            f"{self.path}{policy_name(identity.sub)}"
        )

    # CredentialIssuer
    def create_key(self, identity: Identity, name: str, permissions: Permissions) -> IssuedKey:
        document = ensure_managed_policy_fits(build_kafka_policy(self.cluster, permissions))
        user = self._ensure_user(identity)
        with aws_errors("listing access keys"):
            existing = self._iam.list_access_keys(UserName=user)["AccessKeyMetadata"]
        if len(existing) >= IAM_ACCESS_KEYS_PER_USER:
            raise self._key_limit()
        self._apply_policy(identity, document)
        try:
            with aws_errors("creating an access key"):
                created = self._iam.create_access_key(UserName=user)["AccessKey"]
        except LimitReached:
            raise self._key_limit() from None  # raced with another create
        key = AccessKey(
            key_id=created["AccessKeyId"],
            owner=identity.sub,
            name=name,
            kind=KeyKind.IAM,
            created_at=_aware(created.get("CreateDate")),
        )
        logger.info("issued IAM access key", extra={"sub": identity.sub, "key_id": key.key_id})
        return IssuedKey(key=key, secret=created["SecretAccessKey"])

    def delete_key(self, identity: Identity, key: AccessKey) -> None:
        with aws_errors("deleting an access key", tolerate=MISSING):
            self._iam.delete_access_key(UserName=self.user_name(identity), AccessKeyId=key.key_id)

    def sync_permissions(self, identity: Identity, permissions: Permissions) -> None:
        """Render ``permissions`` into the user's policy.

        The size is checked first, even when the identity has no IAM user yet,
        so a grant that could never be applied is refused up front. Without a
        user (no key issued yet) nothing else is done: ``create_key`` applies
        the then-current permissions.
        """
        document = ensure_managed_policy_fits(build_kafka_policy(self.cluster, permissions))
        if not self._user_exists(identity):
            return
        self._apply_policy(identity, document)

    def session_credentials(
        self, identity: Identity, permissions: Permissions, duration_seconds: int
    ) -> SessionCredentials:
        if not STS_MIN_SECONDS <= duration_seconds <= STS_MAX_SECONDS:
            raise BadRequest(
                f"duration_seconds must be between {STS_MIN_SECONDS} and {STS_MAX_SECONDS}"
            )
        role_arn = self.settings.client_session_role_arn
        if not role_arn:
            raise FabricError(
                "short-lived credentials are not configured (client_session_role_arn is empty)"
            )
        policy = ensure_session_policy_fits(build_kafka_policy(self.cluster, permissions))
        try:
            with aws_errors("assuming the client session role"):
                answer = self._sts.assume_role(
                    RoleArn=role_arn,
                    RoleSessionName=principal_name(identity.sub),
                    Policy=policy,
                    DurationSeconds=duration_seconds,
                    Tags=[{"Key": SUB_TAG, "Value": identity.sub}],
                    SourceIdentity=_source_identity(identity.sub),
                )
        except LimitReached as exc:
            if _caused_by(exc, "PackedPolicyTooLarge"):
                raise LimitReached(
                    "the session policy is too large once packed by STS: "
                    "use prefix grants to cover several topics, or an access key "
                    "(POST /v1/keys), whose policy may be larger"
                ) from exc
            raise
        creds = answer["Credentials"]
        return SessionCredentials(
            access_key_id=creds["AccessKeyId"],
            secret_access_key=creds["SecretAccessKey"],
            session_token=creds["SessionToken"],
            expires_at=_aware(creds["Expiration"]),
        )

    def delete_principal(self, identity: Identity) -> None:
        """Remove keys, the policy (all versions) and the user; absent parts are fine."""
        user = self.user_name(identity)
        if self._user_exists(identity):
            with aws_errors("listing access keys"):
                keys = self._iam.list_access_keys(UserName=user)["AccessKeyMetadata"]
            for key in keys:
                self._ignore_missing(
                    "deleting an access key",
                    lambda k=key: self._iam.delete_access_key(
                        UserName=user, AccessKeyId=k["AccessKeyId"]
                    ),
                )
            with aws_errors("listing attached policies"):
                attached = self._iam.list_attached_user_policies(UserName=user)["AttachedPolicies"]
            for policy in attached:
                self._ignore_missing(
                    "detaching a policy",
                    lambda p=policy: self._iam.detach_user_policy(
                        UserName=user, PolicyArn=p["PolicyArn"]
                    ),
                )
        self._delete_policy(self.policy_arn(identity))
        self._ignore_missing("deleting the IAM user", lambda: self._iam.delete_user(UserName=user))
        logger.info("deleted IAM principal", extra={"sub": identity.sub, "user": user})

    # helpers
    def _key_limit(self) -> LimitReached:
        return LimitReached(
            f"IAM allows {IAM_ACCESS_KEYS_PER_USER} access keys per user and this identity "
            "has both: delete one (DELETE /v1/keys/{id}) or use short-lived credentials "
            "(POST /v1/credentials) for more clients",
            details={"limit": IAM_ACCESS_KEYS_PER_USER},
        )

    def _user_exists(self, identity: Identity) -> bool:
        with aws_errors("reading the IAM user", tolerate=MISSING) as outcome:
            self._iam.get_user(UserName=self.user_name(identity))
        return not outcome.code

    def _ensure_user(self, identity: Identity) -> str:
        user = self.user_name(identity)
        with aws_errors("creating the IAM user", tolerate=EXISTS):
            extra = (
                {"PermissionsBoundary": self.user_boundary_arn} if self.user_boundary_arn else {}
            )
            self._iam.create_user(
                Path=self.path,
                UserName=user,
                Tags=[{"Key": SUB_TAG, "Value": identity.sub}],
                **extra,
            )
        return user

    def _apply_policy(self, identity: Identity, document: str) -> None:
        arn = self.policy_arn(identity)
        policy: Any = None
        with aws_errors("reading the Kafka policy", tolerate=MISSING):
            policy = self._iam.get_policy(PolicyArn=arn)["Policy"]
        if policy is None:
            with aws_errors("creating the Kafka policy", tolerate=EXISTS) as outcome:
                self._iam.create_policy(
                    PolicyName=policy_name(identity.sub),
                    Path=self.path,
                    PolicyDocument=document,
                    Description="Octopus Event Fabric: Kafka rights of one identity",
                    Tags=[{"Key": SUB_TAG, "Value": identity.sub}],
                )
            if outcome.code:
                self._new_version(arn, document)  # created concurrently: update it
        else:
            self._new_version(arn, document, current_version=policy["DefaultVersionId"])
        with aws_errors("attaching the Kafka policy"):
            self._iam.attach_user_policy(UserName=self.user_name(identity), PolicyArn=arn)

    def _new_version(self, arn: str, document: str, current_version: str | None = None) -> None:
        if current_version is not None:
            with aws_errors("reading the Kafka policy"):
                current = self._iam.get_policy_version(PolicyArn=arn, VersionId=current_version)
            if _document(current["PolicyVersion"]["Document"]) == json.loads(document):
                return  # unchanged: no new version
        for attempt in range(3):
            self._prune_versions(arn)
            try:
                with aws_errors("updating the Kafka policy"):
                    self._iam.create_policy_version(
                        PolicyArn=arn, PolicyDocument=document, SetAsDefault=True
                    )
                return
            except LimitReached:
                # Another writer took the freed slot; prune again.
                if attempt == 2:
                    raise

    def _prune_versions(self, arn: str) -> None:
        """Keep room for one more version: delete the oldest non-default ones."""
        with aws_errors("listing policy versions"):
            versions = self._iam.list_policy_versions(PolicyArn=arn)["Versions"]
        spare = sorted(
            (v for v in versions if not v["IsDefaultVersion"]), key=lambda v: v["CreateDate"]
        )
        excess = len(versions) - (IAM_POLICY_VERSIONS - 1)
        for version in spare[: max(excess, 0)]:
            self._ignore_missing(
                "deleting an old policy version",
                lambda v=version: self._iam.delete_policy_version(
                    PolicyArn=arn, VersionId=v["VersionId"]
                ),
            )

    def _delete_policy(self, arn: str) -> None:
        versions: Any = None
        with aws_errors("listing policy versions", tolerate=MISSING):
            versions = self._iam.list_policy_versions(PolicyArn=arn)["Versions"]
        if versions is None:
            return
        for version in versions:
            if not version["IsDefaultVersion"]:
                self._ignore_missing(
                    "deleting a policy version",
                    lambda v=version: self._iam.delete_policy_version(
                        PolicyArn=arn, VersionId=v["VersionId"]
                    ),
                )
        # Attached elsewhere (should not happen): detach from every entity first.
        with aws_errors("listing policy attachments"):
            entities = self._iam.list_entities_for_policy(PolicyArn=arn)
        for user in entities.get("PolicyUsers", []):
            self._ignore_missing(
                "detaching a policy",
                lambda u=user: self._iam.detach_user_policy(UserName=u["UserName"], PolicyArn=arn),
            )
        self._ignore_missing(
            "deleting the Kafka policy", lambda: self._iam.delete_policy(PolicyArn=arn)
        )

    @staticmethod
    def _ignore_missing(action: str, call: Any) -> None:
        with aws_errors(action, tolerate=MISSING):
            call()


def _caused_by(exc: BaseException, code: str) -> bool:
    cause = exc.__cause__
    return isinstance(cause, ClientError) and _is(cause, code)


def _source_identity(sub: str) -> str:
    """The sub itself when STS accepts it (a UUID does), else the derived name."""
    return sub if re.fullmatch(r"[\w+=,.@-]{2,64}", sub) else principal_name(sub)


def _aware(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.now(UTC)
