"""Health, the caller, and what a Kafka client needs to connect."""

from __future__ import annotations

from fastapi import APIRouter

from runtime.adapters.kafka_config import (
    EMBEDDED_BROKER_CONSUMER_SETTINGS,
    EMBEDDED_BROKER_PRODUCER_SETTINGS,
)
from runtime.api.auth import ContainerDep, CurrentPrincipal
from runtime.api.responses import errors
from runtime.api.schemas import FabricInfo, Health, Me

router = APIRouter(prefix="/v1", tags=["fabric"])

# What the embedded broker needs from clients (measured; see docs/local-broker.md): the
# same settings the fabric's own clients use, from one place.
LOCAL_CLIENT_OVERRIDES: dict[str, str | int] = {
    **EMBEDDED_BROKER_CONSUMER_SETTINGS,
    **EMBEDDED_BROKER_PRODUCER_SETTINGS,
}


@router.get("/health", response_model=Health, summary="Liveness (no authentication)")
def health(container: ContainerDep) -> Health:
    return Health(version=container.version)


@router.get("/me", response_model=Me, responses=errors(), summary="The caller, quotas and usage")
def me(principal: CurrentPrincipal, container: ContainerDep) -> Me:
    fabric = container.fabric
    identity = fabric.identities.ensure(principal)
    registry = fabric.deps.registry
    return Me(
        sub=identity.sub,
        username=principal.username or identity.username,
        default_namespace=identity.default_namespace,
        namespaces=sorted(ns.name for ns in registry.list_namespaces(principal.sub)),
        quotas=container.settings.quotas,
        usage=registry.get_usage(principal.sub),
    )


@router.get("/fabric", response_model=FabricInfo, responses=errors(), summary="How to connect")
def fabric_info(principal: CurrentPrincipal, container: ContainerDep) -> FabricInfo:
    settings = container.settings
    local = settings.cluster_mode == "local"
    return FabricInfo(
        bootstrap_servers=settings.bootstrap_servers,
        security_protocol="PLAINTEXT" if local else "SASL_SSL",
        sasl_mechanism=None if local else "OAUTHBEARER",
        auth="none" if local else "aws-msk-iam",
        region=settings.region,
        cluster_mode=settings.cluster_mode,
        local=local,
        client_overrides=dict(LOCAL_CLIENT_OVERRIDES) if local else {},
    )
