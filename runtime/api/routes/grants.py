"""Grants on one topic, or on a channel prefix of a namespace."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request, Response

from runtime.api.auth import ContainerDep, CurrentPrincipal
from runtime.api.convert import grant_out
from runtime.api.idempotency import respond
from runtime.api.responses import errors
from runtime.api.schemas import GrantOut, GrantPut, ListOf, PrefixGrantPut
from runtime.domain.models import GrantKind

router = APIRouter(prefix="/v1/namespaces/{ns}", tags=["grants"])


@router.get(
    "/topics/{topic}/grants",
    response_model=ListOf[GrantOut],
    responses=errors(403, 404, 409),
    summary="Grants on a topic",
)
def list_topic_grants(
    ns: str, topic: str, principal: CurrentPrincipal, container: ContainerDep
) -> ListOf[GrantOut]:
    grants = container.fabric.grants.list_for_topic(principal, ns, topic)
    return ListOf[GrantOut](items=[grant_out(g) for g in grants])


@router.put(
    "/topics/{topic}/grants/{identity}",
    response_model=GrantOut,
    responses=errors(403, 404, 409, 429),
    summary="Give an identity read, write or readwrite access to a topic",
)
def put_topic_grant(
    ns: str,
    topic: str,
    identity: str,
    body: GrantPut,
    request: Request,
    principal: CurrentPrincipal,
    container: ContainerDep,
) -> Response:
    def action() -> GrantOut:
        grant = container.fabric.grants.put_topic_grant(principal, ns, topic, identity, body.access)
        return grant_out(grant)

    return respond(request, principal, status=200, action=action, body=body)


@router.delete(
    "/topics/{topic}/grants/{identity}",
    status_code=204,
    responses=errors(403, 404),
    summary="Revoke an identity's grant on a topic",
)
def delete_topic_grant(
    ns: str,
    topic: str,
    identity: str,
    request: Request,
    principal: CurrentPrincipal,
    container: ContainerDep,
) -> Response:
    return respond(
        request,
        principal,
        status=204,
        action=lambda: container.fabric.grants.remove(
            principal, ns, GrantKind.TOPIC, topic, identity
        ),
    )


@router.get(
    "/grants",
    response_model=ListOf[GrantOut],
    responses=errors(403, 404),
    summary="Every grant of a namespace (topic and prefix grants)",
)
def list_namespace_grants(
    ns: str, principal: CurrentPrincipal, container: ContainerDep
) -> ListOf[GrantOut]:
    grants = container.fabric.grants.list_for_namespace(principal, ns)
    return ListOf[GrantOut](items=[grant_out(g) for g in grants])


@router.put(
    "/grants/{identity}",
    response_model=GrantOut,
    responses=errors(403, 404, 409, 429),
    summary="Give an identity access to a channel subtree (topics under a prefix, now and later)",
)
def put_prefix_grant(
    ns: str,
    identity: str,
    body: PrefixGrantPut,
    request: Request,
    principal: CurrentPrincipal,
    container: ContainerDep,
) -> Response:
    def action() -> GrantOut:
        grant = container.fabric.grants.put_prefix_grant(
            principal, ns, body.prefix, identity, body.access
        )
        return grant_out(grant)

    return respond(request, principal, status=200, action=action, body=body)


@router.delete(
    "/grants/{identity}",
    status_code=204,
    responses=errors(403, 404),
    summary="Revoke a prefix grant",
)
def delete_prefix_grant(
    ns: str,
    identity: str,
    request: Request,
    principal: CurrentPrincipal,
    container: ContainerDep,
    prefix: str = Query(default="", max_length=249),
) -> Response:
    return respond(
        request,
        principal,
        status=204,
        action=lambda: container.fabric.grants.remove(
            principal, ns, GrantKind.PREFIX, prefix, identity
        ),
    )
