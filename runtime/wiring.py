"""Build the web service's container from settings: the one place adapters are chosen.

Lambda handlers and the local server both call :func:`build_container`, so the
same rules run on AWS and on a laptop; only the adapters differ.
"""

from __future__ import annotations

from typing import Any

from runtime.api.container import Container
from runtime.config import RuntimeSettings
from runtime.domain.deps import Deps
from runtime.domain.fabric import Fabric
from runtime.domain.ports import (
    BrokerAdmin,
    CredentialIssuer,
    IdentityProvider,
    RecordWriter,
    Registry,
)


def build_registry(settings: RuntimeSettings) -> Registry:
    if settings.registry == "dynamodb":
        from runtime.adapters.aws.dynamodb_registry import DynamoDbRegistry

        return DynamoDbRegistry(settings.registry_table)
    from runtime.adapters.local.sqlite_registry import SqliteRegistry

    if not settings.sqlite_path:
        raise RuntimeError("registry 'sqlite' needs sqlite_path")
    return SqliteRegistry(settings.sqlite_path)


def kafka_client_config(settings: RuntimeSettings) -> dict[str, Any]:
    from runtime.adapters.kafka_config import local_client_config, msk_iam_client_config

    bootstrap = settings.runtime_bootstrap_servers
    if settings.cluster_mode == "local":
        return local_client_config(bootstrap)
    return msk_iam_client_config(bootstrap, settings.region)


def build_broker(settings: RuntimeSettings) -> BrokerAdmin:
    from runtime.adapters.kafka_admin import KafkaBrokerAdmin

    return KafkaBrokerAdmin(
        kafka_client_config(settings),
        supports_partition_increase=settings.cluster_mode != "local",
    )


def build_record_writer(settings: RuntimeSettings) -> RecordWriter:
    from runtime.adapters.kafka_records import KafkaRecordWriter

    return KafkaRecordWriter(kafka_client_config(settings))


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


def build_container(settings: RuntimeSettings) -> Container:
    deps = Deps(
        settings=settings,
        registry=build_registry(settings),
        broker=build_broker(settings),
        credentials=build_credentials(settings),
        records=build_record_writer(settings),
    )
    return Container(
        settings=settings, fabric=Fabric.build(deps), identity=build_identity(settings)
    )
