"""Build the web service's container from settings: the one place adapters are chosen.

Lambda handlers and the local server both call :func:`build_container`, so the
same rules run on AWS and on a laptop; only the adapters differ.
"""

from __future__ import annotations

import logging
from typing import Any

from runtime.adapters.kafka_config import ClientRole
from runtime.api.container import Container
from runtime.config import RuntimeSettings
from runtime.domain.deps import Deps
from runtime.domain.fabric import Fabric
from runtime.domain.ports import (
    BrokerAdmin,
    CodeUploads,
    CredentialIssuer,
    IdentityProvider,
    RecordWriter,
    Registry,
    TriggerPlatform,
)

logger = logging.getLogger("octopus.wiring")


def build_registry(settings: RuntimeSettings) -> Registry:
    if settings.registry == "dynamodb":
        from runtime.adapters.aws.dynamodb_registry import DynamoDbRegistry

        return DynamoDbRegistry(settings.registry_table)
    from runtime.adapters.local.sqlite_registry import SqliteRegistry

    if not settings.sqlite_path:
        raise RuntimeError("registry 'sqlite' needs sqlite_path")
    return SqliteRegistry(settings.sqlite_path)


def kafka_client_config(settings: RuntimeSettings, role: ClientRole = "admin") -> dict[str, Any]:
    from runtime.adapters.kafka_config import local_client_config, msk_iam_client_config

    bootstrap = settings.runtime_bootstrap_servers
    if settings.cluster_mode == "local":
        return local_client_config(bootstrap, role)
    return msk_iam_client_config(bootstrap, settings.region)


def build_broker(settings: RuntimeSettings) -> BrokerAdmin:
    from runtime.adapters.kafka_admin import EMBEDDED_BROKER, MSK_BROKER, KafkaBrokerAdmin

    capabilities = EMBEDDED_BROKER if settings.cluster_mode == "local" else MSK_BROKER
    return KafkaBrokerAdmin(kafka_client_config(settings), capabilities=capabilities)


def build_record_writer(settings: RuntimeSettings) -> RecordWriter:
    from runtime.adapters.kafka_record_writer import KafkaRecordWriter
    from runtime.adapters.kafka_records import RecordProducer

    def checked_by_the_core(_kafka_name: str) -> bool:
        # RecordService writes only after reading the topic as ACTIVE from the registry in
        # the same request; a second registry read per produce would only add latency.
        # (The producer also never auto-creates topics.)
        return True

    config = kafka_client_config(settings, "producer")
    return KafkaRecordWriter(lambda: RecordProducer(config, topic_exists=checked_by_the_core))


def build_credentials(settings: RuntimeSettings) -> CredentialIssuer:
    if settings.credentials == "iam":
        from runtime.adapters.aws.iam_credentials import IamCredentialIssuer

        return IamCredentialIssuer(settings)
    from runtime.adapters.local.local_credentials import LocalCredentialIssuer

    return LocalCredentialIssuer()


def build_identity(settings: RuntimeSettings) -> IdentityProvider | None:
    if settings.identity == "apigw-authorizer":
        return None
    if settings.identity == "globus":
        from runtime.adapters.aws.globus_identity import GlobusIdentityProvider

        return GlobusIdentityProvider.from_settings(settings)
    from runtime.adapters.local.dev_identity import DevIdentityProvider

    return DevIdentityProvider(settings.dev_tokens_file, settings=settings)


def build_trigger_platform(settings: RuntimeSettings) -> TriggerPlatform | None:
    """The local runner's platform locally, Lambda + MSK event source mappings on AWS."""
    if settings.cluster_mode == "local":
        from runtime.adapters.local.local_triggers import LocalTriggerPlatform

        return LocalTriggerPlatform.from_settings(settings)
    try:
        from runtime.adapters.aws.lambda_triggers import LambdaTriggerPlatform
    except ImportError:
        logger.warning("runtime.adapters.aws.lambda_triggers is missing: triggers are off")
        return None
    platform: TriggerPlatform = LambdaTriggerPlatform(settings)
    return platform


def build_code_uploads(settings: RuntimeSettings) -> CodeUploads | None:
    """Function code uploads: the state dir locally, the code bucket on AWS (if configured)."""
    if settings.cluster_mode == "local":
        from runtime.adapters.local.code_uploads import LocalCodeUploads

        return LocalCodeUploads.from_settings(settings)
    if not settings.trigger_code_bucket:
        return None
    from runtime.adapters.aws.code_uploads import S3CodeUploads

    return S3CodeUploads(settings)


def build_container(settings: RuntimeSettings) -> Container:
    registry = build_registry(settings)
    deps = Deps(
        settings=settings,
        registry=registry,
        broker=build_broker(settings),
        credentials=build_credentials(settings),
        records=build_record_writer(settings),
    )
    fabric = Fabric.build(deps)
    container = Container(settings=settings, fabric=fabric, identity=build_identity(settings))
    platform = build_trigger_platform(settings)
    if platform is not None:
        from runtime.domain.triggers import TriggerService

        triggers = TriggerService(
            deps, fabric.identities, platform, uploads=build_code_uploads(settings)
        )
        container.extras["triggers"] = triggers
        fabric.topics.on_deleted.append(triggers.remove_for_topic)
    return container
