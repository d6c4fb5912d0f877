"""Settings of the running fabric, shared by Lambda handlers and local mode.

The CDK app builds one :class:`RuntimeSettings` per stage from ``cdk.json`` and
hands it to every function as the ``OCTOPUS_SETTINGS`` environment variable
(JSON); local mode builds it from its command-line options. One model, so the
infrastructure and the code it runs cannot drift apart.
"""

from __future__ import annotations

import json
import os
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

SETTINGS_ENV_VAR = "OCTOPUS_SETTINGS"


class StrictModel(BaseModel):
    """A model that refuses unknown keys, so a typo in config is an error."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Quotas(StrictModel):
    """Per-identity limits; a request that would cross one answers 429 naming it."""

    namespaces_per_identity: int = Field(default=5, ge=1, le=1000)
    topics_per_identity: int = Field(default=50, ge=1, le=10_000)
    partitions_per_identity: int = Field(default=200, ge=1, le=100_000)
    partitions_per_topic: int = Field(default=32, ge=1, le=1000)
    keys_per_identity: int = Field(default=2, ge=1, le=2)
    grants_per_identity: int = Field(default=100, ge=1, le=10_000)


class TriggerLimits(StrictModel):
    """Caps on what a user may ask of a managed trigger."""

    per_identity: int = Field(default=10, ge=0, le=1000)
    max_memory_mb: int = Field(default=1024, ge=128, le=10_240)
    max_timeout_seconds: int = Field(default=60, ge=1, le=900)
    max_batch_size: int = Field(default=1000, ge=1, le=10_000)
    max_batching_window_seconds: int = Field(default=30, ge=0, le=300)
    allowed_runtimes: tuple[str, ...] = ("python3.12", "python3.13", "python3.14")


class TopicPolicy(StrictModel):
    """Which Kafka topic configs users may set, and the defaults for new topics."""

    default_partitions: int = Field(default=1, ge=1, le=1000)
    default_replication_factor: int = Field(default=3, ge=1, le=5)
    allowed_configs: tuple[str, ...] = (
        "retention.ms",
        "retention.bytes",
        "cleanup.policy",
        "max.message.bytes",
        "segment.ms",
        "segment.bytes",
        "compression.type",
        "message.timestamp.type",
        "min.compaction.lag.ms",
        "delete.retention.ms",
    )


ClusterMode = Literal["provisioned", "serverless", "local"]
IdentityMode = Literal["apigw-authorizer", "globus", "dev"]
RegistryMode = Literal["dynamodb", "sqlite"]
CredentialsMode = Literal["iam", "local"]


class RuntimeSettings(StrictModel):
    """Everything the runtime needs to know about the fabric it runs in."""

    stage: str = "local"
    region: str = "local"
    cluster_mode: ClusterMode = "local"
    cluster_name: str = "octopus-local"
    cluster_arn: str = ""
    # Comma-separated bootstrap servers clients should use (public when enabled).
    bootstrap_servers: str = "127.0.0.1:9092"
    # Bootstrap servers the runtime itself uses (inside the VPC on AWS).
    internal_bootstrap_servers: str = ""
    registry: RegistryMode = "sqlite"
    registry_table: str = ""
    sqlite_path: str = ""
    identity: IdentityMode = "dev"
    dev_tokens_file: str = ""
    globus_client_id: str = ""
    globus_secret_name: str = ""
    required_scope: str = ""
    credentials: CredentialsMode = "local"
    iam_user_path: str = "/octopus/users/"
    # Role assumed (with a per-caller session policy) for POST /v1/credentials.
    client_session_role_arn: str = ""
    client_session_seconds: int = Field(default=3600, ge=900, le=43_200)
    trigger_function_prefix: str = "octopus-trigger-"
    trigger_role_path: str = "/octopus/triggers/"
    trigger_boundary_arn: str = ""
    trigger_dlq_arn: str = ""
    trigger_template_bucket: str = ""
    trigger_template_key: str = ""
    # Where users upload function-trigger code too large to send inline (AWS); empty locally,
    # where uploads go to the state directory.
    trigger_code_bucket: str = ""
    trigger_code_max_bytes: int = Field(default=50 * 1024 * 1024, ge=1024, le=250 * 1024 * 1024)
    cors_origins: tuple[str, ...] = ()
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    quotas: Quotas = Quotas()
    trigger_limits: TriggerLimits = TriggerLimits()
    topics: TopicPolicy = TopicPolicy()
    admins: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _dev_identity_is_local_only(self) -> RuntimeSettings:
        # The development identity provider accepts tokens from a file: it
        # must never be reachable in a deployed stack.
        if self.identity == "dev" and self.cluster_mode != "local":
            raise ValueError(
                "identity 'dev' (local development tokens) is only allowed with "
                f"cluster_mode 'local', not {self.cluster_mode!r}"
            )
        return self

    @model_validator(mode="after")
    def _single_node_replication_locally(self) -> RuntimeSettings:
        # The embedded broker is one node: a replication factor above 1 cannot be met.
        if self.cluster_mode == "local" and self.topics.default_replication_factor != 1:
            topics = self.topics.model_copy(update={"default_replication_factor": 1})
            object.__setattr__(self, "topics", topics)
        return self

    @property
    def runtime_bootstrap_servers(self) -> str:
        return self.internal_bootstrap_servers or self.bootstrap_servers

    def to_env(self) -> dict[str, str]:
        """The environment variables that carry these settings to a function."""
        return {SETTINGS_ENV_VAR: self.model_dump_json()}

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> RuntimeSettings:
        env = os.environ if environ is None else environ
        raw = env.get(SETTINGS_ENV_VAR)
        if not raw:
            raise RuntimeError(f"{SETTINGS_ENV_VAR} is not set; the fabric cannot start")
        return cls.model_validate(json.loads(raw))
