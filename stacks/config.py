"""The stage configuration: every knob of a deployed fabric, read from ``cdk.json``.

``cdk.json`` holds one block per stage under the context key ``stages``; the stage
is chosen with ``-c stage=NAME`` (default ``dev``). The block is parsed into
:class:`StageConfig` (pydantic, unknown keys refused). A wrong value fails synth
with one :class:`StageConfigError` naming the key, the value and what is allowed.

Quotas, trigger limits and the topic policy are the runtime's own models
(``runtime.config``), so the infrastructure and the code it runs cannot drift.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from runtime.config import Quotas, RuntimeSettings, TopicPolicy, TriggerLimits

DEFAULT_STAGE = "dev"
STAGES_CONTEXT_KEY = "stages"
STAGE_CONTEXT_KEY = "stage"

# MSK versions this fabric is built and tested for (IAM auth, public access).
KAFKA_VERSIONS = ("3.6.0", "3.7.x", "3.7.x.kraft", "3.8.x", "3.9.x", "4.0.x", "4.1.x")
# The only retention values CloudWatch Logs accepts.
LOG_RETENTION_DAYS = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557,
    2922, 3288, 3653,
)  # fmt: skip
ENHANCED_MONITORING = ("DEFAULT", "PER_BROKER", "PER_TOPIC_PER_BROKER", "PER_TOPIC_PER_PARTITION")

_GLOBUS_CLIENT_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_STAGE_NAME = re.compile(r"^[a-z][a-z0-9-]{0,15}$")
_SECRET_NAME = re.compile(r"^[A-Za-z0-9/_+=.@-]{1,512}$")
_KAFKA_TOPIC = re.compile(r"^[a-z0-9][a-z0-9-]*\.[A-Za-z0-9._-]{1,200}$")
_TAG_KEY = re.compile(r"^[\w .:/=+\-@]{1,128}$")


class StageConfigError(ValueError):
    """A stage block in cdk.json is wrong; the message says which key and why."""


class KeyProblem(ValueError):
    """A cross-field rule broken by one key: the error names that key and its value."""

    def __init__(self, key: str, value: Any, message: str) -> None:
        super().__init__(message)
        self.key = key
        self.value = value


class _Block(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ClusterConfig(_Block):
    """The MSK cluster."""

    mode: Literal["provisioned", "serverless"] = "serverless"
    # Defaults to "octopus-<stage>"; part of every topic/group ARN.
    name: Annotated[str, Field(pattern=r"^[a-zA-Z][a-zA-Z0-9-]{0,63}$")] | None = None
    kafka_version: Literal[KAFKA_VERSIONS] = "3.9.x"  # type: ignore[valid-type]
    broker_count: int = Field(default=2, ge=1, le=30)
    instance_type: str = Field(
        default="kafka.m7g.large", pattern=r"^(express\.)?kafka\.[a-z0-9]+\.[a-z0-9]+$"
    )
    ebs_volume_gb: int = Field(default=100, ge=1, le=16384)
    storage_autoscaling_max_gb: int = Field(default=1000, ge=1, le=16384)
    storage_autoscaling_target_percent: int = Field(default=60, ge=10, le=80)
    default_replication_factor: int = Field(default=2, ge=1, le=3)
    min_insync_replicas: int = Field(default=1, ge=1, le=3)
    enhanced_monitoring: Literal[ENHANCED_MONITORING] = "DEFAULT"  # type: ignore[valid-type]
    public_access: bool = False
    # Source networks allowed to reach the public IAM listener (port 9198).
    public_access_cidrs: tuple[str, ...] = ()

    @field_validator("public_access_cidrs")
    @classmethod
    def _cidrs_parse(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for cidr in value:
            try:
                ipaddress.ip_network(cidr, strict=True)
            except ValueError as error:
                raise ValueError(f"{cidr!r} is not a network in CIDR form (a.b.c.d/n)") from error
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ClusterConfig:
        if self.mode == "serverless" and self.public_access:
            raise KeyProblem(
                "public_access",
                True,
                "public access needs mode 'provisioned': MSK Serverless has no public "
                "connectivity (set public_access to false or mode to 'provisioned')",
            )
        if self.public_access and not self.public_access_cidrs:
            raise KeyProblem(
                "public_access_cidrs",
                [],
                "public_access=true needs at least one CIDR: the networks of the edge/HPC "
                "clients allowed to reach port 9198",
            )
        if self.mode == "provisioned":
            if self.broker_count < 2:
                raise KeyProblem(
                    "broker_count",
                    self.broker_count,
                    "must be at least 2 for a provisioned cluster",
                )
            if self.default_replication_factor > self.broker_count:
                raise KeyProblem(
                    "default_replication_factor",
                    self.default_replication_factor,
                    f"must not exceed broker_count ({self.broker_count})",
                )
            if self.storage_autoscaling_max_gb <= self.ebs_volume_gb:
                raise KeyProblem(
                    "storage_autoscaling_max_gb",
                    self.storage_autoscaling_max_gb,
                    f"must be larger than ebs_volume_gb ({self.ebs_volume_gb})",
                )
        if self.min_insync_replicas > self.default_replication_factor:
            raise KeyProblem(
                "min_insync_replicas",
                self.min_insync_replicas,
                f"must not exceed default_replication_factor ({self.default_replication_factor})",
            )
        return self


class NetworkConfig(_Block):
    """The VPC: a new one (cidr/max_azs/nat_gateways) or an existing one (vpc_id)."""

    vpc_id: Annotated[str, Field(pattern=r"^vpc-[0-9a-f]{8,17}$")] | None = None
    cidr: str = "10.40.0.0/16"
    max_azs: int = Field(default=2, ge=2, le=3)
    nat_gateways: int = Field(default=1, ge=1, le=3)
    flow_log_retention_days: int = 90

    @field_validator("cidr")
    @classmethod
    def _cidr(cls, value: str) -> str:
        try:
            network = ipaddress.IPv4Network(value, strict=True)
        except ValueError as error:
            raise ValueError("must be an IPv4 network in CIDR form, e.g. 10.40.0.0/16") from error
        if not 16 <= network.prefixlen <= 20:
            raise ValueError("prefix length must be between /16 and /20")
        return value

    @field_validator("flow_log_retention_days")
    @classmethod
    def _retention(cls, value: int) -> int:
        return _log_retention(value)

    @model_validator(mode="after")
    def _nat_within_azs(self) -> NetworkConfig:
        if self.nat_gateways > self.max_azs:
            raise KeyProblem(
                "nat_gateways", self.nat_gateways, f"must not exceed max_azs ({self.max_azs})"
            )
        return self


class GlobusConfig(_Block):
    """The Globus Auth confidential client that owns the fabric's scope."""

    client_id: str = "00000000-0000-0000-0000-000000000000"
    # Secrets Manager name of the client secret (stored by the operator, never in a table).
    secret_name: str = Field(default="octopus/globus-client-secret", pattern=_SECRET_NAME.pattern)
    # Defaults to https://auth.globus.org/scopes/<client_id>/action_all (Octopus's form).
    required_scope: str | None = None

    @field_validator("client_id")
    @classmethod
    def _uuid(cls, value: str) -> str:
        if not _GLOBUS_CLIENT_ID.match(value):
            raise ValueError("must be a Globus client id (a lower-case UUID)")
        return value

    @property
    def scope(self) -> str:
        return self.required_scope or f"https://auth.globus.org/scopes/{self.client_id}/action_all"


class ApiConfig(_Block):
    """The REST API, its functions and its protection."""

    cors_origins: tuple[str, ...] = ()
    throttling_rate_limit: float = Field(default=100, gt=0, le=10_000)
    throttling_burst_limit: int = Field(default=200, ge=1, le=5_000)
    # Authorizer result cache; at most 5 minutes so a revoked token stops working quickly.
    authorizer_cache_seconds: int = Field(default=300, ge=0, le=300)
    waf_enabled: bool = True
    # Requests per 5 minutes per client IP before WAF blocks it.
    waf_rate_limit: int = Field(default=2000, ge=100, le=2_000_000_000)
    function_memory_mb: int = Field(default=1024, ge=256, le=10_240)
    function_timeout_seconds: int = Field(default=29, ge=3, le=29)
    # None leaves the functions in the account's unreserved pool (new accounts cannot reserve).
    reserved_concurrency: int | None = Field(default=None, ge=1, le=1000)
    max_body_bytes: int = Field(default=1_048_576, ge=1024, le=10_485_760)

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for origin in value:
            if origin == "*" or not re.match(r"^https?://[a-zA-Z0-9.-]+(:\d{1,5})?$", origin):
                raise ValueError(
                    f"{origin!r} is not an origin: use scheme://host[:port] without path, "
                    "and list each origin (no '*': the API takes bearer tokens)"
                )
        return value

    @model_validator(mode="after")
    def _burst(self) -> ApiConfig:
        if self.throttling_burst_limit < self.throttling_rate_limit:
            raise KeyProblem(
                "throttling_burst_limit",
                self.throttling_burst_limit,
                f"must be at least throttling_rate_limit ({self.throttling_rate_limit})",
            )
        return self


_CERTIFICATE_ARN = re.compile(r"^arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate/[0-9a-f-]{36}$")
# Fargate's valid CPU units and, for each, the memory (MiB) it accepts.
FARGATE_MEMORY = {
    256: (512, 1024, 2048),
    512: tuple(range(1024, 4097, 1024)),
    1024: tuple(range(2048, 8193, 1024)),
    2048: tuple(range(4096, 16385, 1024)),
    4096: tuple(range(8192, 30721, 1024)),
}
STORAGE_EVENT_KINDS = ("created", "removed", "restored", "tagging")


def _check_cidrs(value: tuple[str, ...]) -> tuple[str, ...]:
    for cidr in value:
        try:
            ipaddress.ip_network(cidr, strict=True)
        except ValueError as error:
            raise ValueError(f"{cidr!r} is not a network in CIDR form (a.b.c.d/n)") from error
    return value


class EventsConfig(_Block):
    """The event-stream (SSE) service: ECS Fargate behind an HTTPS-only ALB."""

    enabled: bool = False
    # ACM certificate (same region) for the HTTPS listener; imported by ARN (no lookup).
    certificate_arn: str | None = None
    desired_count: int = Field(default=2, ge=1, le=100)
    cpu: int = 512
    memory_mib: int = 1024
    # Above the SSE heartbeat (15 s): an idle stream is never cut by the ALB.
    idle_timeout_seconds: int = Field(default=300, ge=60, le=4000)
    # Networks allowed to reach the ALB (443, and 80 which only redirects).
    allowed_cidrs: tuple[str, ...] = ()
    # Base image the runtime bundle runs on (see docs/infrastructure.md); pin a digest in prod.
    base_image: str = Field(
        default="public.ecr.aws/lambda/python:3.14",
        pattern=r"^[a-z0-9.-]+(:\d+)?/[a-z0-9._/-]+(:[A-Za-z0-9._-]+|@sha256:[0-9a-f]{64})$",
    )

    @field_validator("certificate_arn")
    @classmethod
    def _certificate(cls, value: str | None) -> str | None:
        if value is not None and not _CERTIFICATE_ARN.match(value):
            raise ValueError(
                "must be an ACM certificate ARN (arn:aws:acm:REGION:ACCOUNT:certificate/ID)"
            )
        return value

    @field_validator("allowed_cidrs")
    @classmethod
    def _cidrs(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return _check_cidrs(value)

    @model_validator(mode="after")
    def _consistent(self) -> EventsConfig:
        if self.cpu not in FARGATE_MEMORY:
            raise KeyProblem(
                "cpu", self.cpu, f"must be one of Fargate's CPU sizes {sorted(FARGATE_MEMORY)}"
            )
        if self.memory_mib not in FARGATE_MEMORY[self.cpu]:
            low, high = FARGATE_MEMORY[self.cpu][0], FARGATE_MEMORY[self.cpu][-1]
            raise KeyProblem(
                "memory_mib",
                self.memory_mib,
                f"Fargate with cpu {self.cpu} takes {low}-{high} MiB "
                "(steps of 1024; 512, 1024, 2048 at cpu 256)",
            )
        if self.enabled and self.certificate_arn is None:
            raise KeyProblem(
                "certificate_arn", None, "events.enabled needs an ACM certificate ARN for HTTPS"
            )
        if self.enabled and not self.allowed_cidrs:
            raise KeyProblem(
                "allowed_cidrs",
                [],
                "events.enabled needs at least one CIDR allowed to reach the ALB "
                "(0.0.0.0/0 opens it to the internet; every stream still needs a token)",
            )
        return self


class StorageEventRoute(_Block):
    """Object changes of one (existing) bucket, optionally under a key prefix, to one topic."""

    bucket: str = Field(pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
    # The Kafka topic name: ``<namespace>.<topic>`` (the topic must exist).
    topic: str
    prefix: str = Field(default="", max_length=1024)
    events: tuple[Literal[STORAGE_EVENT_KINDS], ...] = ("created", "removed")  # type: ignore[valid-type]

    @field_validator("topic")
    @classmethod
    def _topic(cls, value: str) -> str:
        if not _KAFKA_TOPIC.match(value):
            raise ValueError(
                "must be a Kafka topic name '<namespace>.<topic>' (letters, digits, '.', '_', "
                "'-'; the namespace lower-case, no dots)"
            )
        return value

    @field_validator("events")
    @classmethod
    def _events(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError(f"name at least one of {list(STORAGE_EVENT_KINDS)}")
        if len(set(value)) != len(value):
            raise ValueError("lists an event kind twice")
        return value


class LoggingConfig(_Block):
    retention_days: int = 90

    @field_validator("retention_days")
    @classmethod
    def _retention(cls, value: int) -> int:
        return _log_retention(value)


class TopicDefaults(TopicPolicy):
    """The runtime's topic policy; the replication factor comes from the cluster block."""

    @model_validator(mode="after")
    def _no_replication_here(self) -> TopicDefaults:
        if "default_replication_factor" in self.model_fields_set:
            raise KeyProblem(
                "default_replication_factor",
                self.default_replication_factor,
                "not settable here: set cluster.default_replication_factor (one knob for "
                "brokers and runtime)",
            )
        return self


class StageConfig(_Block):
    """One stage block of cdk.json."""

    stage: str
    # Leave unset for environment-agnostic stacks (synth needs no credentials). Set
    # both to pin the stacks to one account/region; required with network.vpc_id.
    account: Annotated[str, Field(pattern=r"^\d{12}$")] | None = None
    region: Annotated[str, Field(pattern=r"^[a-z]{2}(-[a-z]+)+-\d$")] | None = None
    cluster: ClusterConfig = ClusterConfig()
    network: NetworkConfig = NetworkConfig()
    globus: GlobusConfig = GlobusConfig()
    api: ApiConfig = ApiConfig()
    logs: LoggingConfig = LoggingConfig()
    quotas: Quotas = Quotas()
    trigger_limits: TriggerLimits = TriggerLimits()
    topics: TopicDefaults = TopicDefaults()
    events: EventsConfig = EventsConfig()
    # S3 object changes to topics (CloudEvents), through the bridge function.
    storage_events: tuple[StorageEventRoute, ...] = ()
    # Globus identity ids (sub) with the fabric's admin role.
    admins: tuple[str, ...] = ()
    # retain: tables, keys, log groups survive `cdk destroy` (and tables get deletion protection).
    removal_policy: Literal["retain", "destroy"] = "retain"
    # Alarm notifications go to this address (confirmed by the recipient) when set.
    alarm_email: Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")] | None = None
    tags: dict[str, str] = Field(default_factory=dict)

    @field_validator("stage")
    @classmethod
    def _stage_name(cls, value: str) -> str:
        if not _STAGE_NAME.match(value):
            raise ValueError("stage names are 1-16 chars: lower-case letters, digits, '-'")
        return value

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: dict[str, str]) -> dict[str, str]:
        for key, tag_value in value.items():
            if not _TAG_KEY.match(key) or key.lower().startswith("aws:"):
                raise ValueError(f"tag key {key!r} is not allowed (1-128 chars, no 'aws:' prefix)")
            if len(tag_value) > 256:
                raise ValueError(f"tag {key!r} value is longer than 256 characters")
        return value

    @model_validator(mode="after")
    def _cross_block(self) -> StageConfig:
        cluster, network = self.cluster, self.network
        if (self.account is None) != (self.region is None):
            raise KeyProblem(
                "account" if self.account is None else "region",
                None,
                "account and region are set together (or both left unset)",
            )
        if network.vpc_id is not None and self.account is None:
            raise KeyProblem(
                "network.vpc_id",
                network.vpc_id,
                "an existing VPC is looked up at synth time: set account and region too "
                "(and commit the lookup in cdk.context.json)",
            )
        for index, route in enumerate(self.storage_events):
            for other in self.storage_events[:index]:
                overlap = set(route.events) & set(other.events)
                if (
                    route.bucket == other.bucket
                    and overlap
                    and (
                        route.prefix.startswith(other.prefix)
                        or other.prefix.startswith(route.prefix)
                    )
                ):
                    raise KeyProblem(
                        f"storage_events.{index}.prefix",
                        route.prefix,
                        f"overlaps prefix {other.prefix!r} of another route of bucket "
                        f"{route.bucket!r} for {sorted(overlap)}: S3 refuses overlapping "
                        "notifications",
                    )
        if (
            cluster.mode == "provisioned"
            and network.vpc_id is None
            and cluster.broker_count % network.max_azs
        ):
            raise KeyProblem(
                "cluster.broker_count",
                cluster.broker_count,
                f"must be a multiple of network.max_azs ({network.max_azs}): MSK spreads "
                "brokers evenly over the AZs",
            )
        return self

    # -- derived values ---------------------------------------------------------------

    @property
    def cluster_name(self) -> str:
        return self.cluster.name or f"octopus-{self.stage}"

    @property
    def trigger_secret_prefix(self) -> str:
        """Where the API stores webhook signing secrets (runtime trigger_naming.secret_prefix)."""
        return f"octopus/triggers/{self.stage}/"

    @property
    def retain(self) -> bool:
        return self.removal_policy == "retain"

    def stack_name(self, part: str) -> str:
        return f"Octopus-{self.stage}-{part}"

    def runtime_settings(self, **deployed: str) -> RuntimeSettings:
        """The settings handed to functions; ``deployed`` carries names/ARNs (CDK tokens)."""
        replication = (
            3 if self.cluster.mode == "serverless" else self.cluster.default_replication_factor
        )
        topics = TopicPolicy(
            **{
                **self.topics.model_dump(exclude={"default_replication_factor"}),
                "default_replication_factor": replication,
            }
        )
        values: dict[str, Any] = {
            "stage": self.stage,
            "cluster_mode": self.cluster.mode,
            "cluster_name": self.cluster_name,
            "registry": "dynamodb",
            "identity": "apigw-authorizer",
            "credentials": "iam",
            "globus_client_id": self.globus.client_id,
            "globus_secret_name": self.globus.secret_name,
            "required_scope": self.globus.scope,
            "cors_origins": self.api.cors_origins,
            "max_body_bytes": self.api.max_body_bytes,
            "quotas": self.quotas,
            "trigger_limits": self.trigger_limits,
            "topics": topics,
            "admins": self.admins,
        }
        values.update(deployed)
        return RuntimeSettings.model_validate(values)


def _log_retention(value: int) -> int:
    if value not in LOG_RETENTION_DAYS:
        raise ValueError(
            f"must be one of the CloudWatch Logs retention values {LOG_RETENTION_DAYS}"
        )
    return value


def parse_stage(stage: str, block: Mapping[str, Any]) -> StageConfig:
    """Parse one stage block; raise StageConfigError with one readable message."""
    if not isinstance(block, Mapping):
        raise StageConfigError(
            f"cdk.json context '{STAGES_CONTEXT_KEY}.{stage}' must be an object, got {block!r}"
        )
    try:
        return StageConfig.model_validate({**block, "stage": stage})
    except ValidationError as error:
        raise StageConfigError(_describe(stage, block, error)) from None


def load_stage_config(context: Mapping[str, Any] | Any) -> StageConfig:
    """Pick and parse the stage named by context ``stage`` from context ``stages``.

    ``context`` is a mapping, or a construct node (``app.node``) offering ``try_get_context``.
    """
    get = context.get if isinstance(context, Mapping) else context.try_get_context
    stage = get(STAGE_CONTEXT_KEY) or DEFAULT_STAGE
    stages = get(STAGES_CONTEXT_KEY) or {}
    if not isinstance(stages, Mapping):
        raise StageConfigError(f"cdk.json context '{STAGES_CONTEXT_KEY}' must be an object")
    if stage not in stages:
        known = ", ".join(sorted(stages)) or "none"
        raise StageConfigError(
            f"stage {stage!r} (from -c {STAGE_CONTEXT_KEY}=...) is not defined in cdk.json "
            f"context '{STAGES_CONTEXT_KEY}'; defined stages: {known}"
        )
    return parse_stage(stage, stages[stage])


def _describe(stage: str, block: Mapping[str, Any], error: ValidationError) -> str:
    lines = []
    for problem in error.errors(include_url=False):
        location = [str(part) for part in problem["loc"]]
        value = _lookup(block, problem["loc"], problem.get("input"))
        cause = (problem.get("ctx") or {}).get("error")
        if isinstance(cause, KeyProblem):
            location.extend(cause.key.split("."))
            value = cause.value
        key = ".".join([STAGES_CONTEXT_KEY, stage, *location])
        kind = problem["type"]
        if kind == "extra_forbidden":
            allowed = _allowed_keys(problem["loc"][:-1])
            message = f"unknown key; allowed keys here: {', '.join(allowed)}"
        elif kind == "missing":
            message = "required key is missing"
        else:
            message = str(problem["msg"]).removeprefix("Value error, ")
        if location:
            lines.append(f"{key} = {value!r}: {message}")
        else:
            lines.append(f"{key}: {message}")
    if len(lines) == 1:
        return f"Invalid stage configuration in cdk.json: {lines[0]}"
    header = f"Invalid stage configuration in cdk.json ({len(lines)} problems):"
    return header + "\n  " + "\n  ".join(lines)


def _lookup(block: Mapping[str, Any], loc: tuple[Any, ...], fallback: Any) -> Any:
    node: Any = block
    for part in loc:
        if (isinstance(node, Mapping) and part in node) or (
            isinstance(node, list | tuple) and isinstance(part, int) and part < len(node)
        ):
            node = node[part]
        else:
            return fallback
    return node


def _allowed_keys(loc: tuple[Any, ...]) -> list[str]:
    model: type[BaseModel] = StageConfig
    for part in loc:
        field = model.model_fields.get(str(part))
        annotation = getattr(field, "annotation", None)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            model = annotation
        else:
            break
    return sorted(
        name for name in model.model_fields if not (model is StageConfig and name == "stage")
    )
