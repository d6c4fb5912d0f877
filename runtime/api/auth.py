"""Who is calling: the authorizer's context on AWS, a bearer token elsewhere."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, Request

from runtime.api.container import Container
from runtime.domain.errors import Unauthenticated
from runtime.domain.ports import Principal


def container_of(request: Request) -> Container:
    container: Container = request.app.state.container
    return container


def _from_authorizer(event: dict[str, Any]) -> Principal:
    context = (event.get("requestContext") or {}).get("authorizer") or {}
    sub = context.get("sub") or context.get("principalId")
    if not sub:
        # API Gateway only invokes us after the authorizer allowed the call; a
        # missing context means the route was wired without it.
        raise Unauthenticated("no authorizer context on this request")
    expires = context.get("expires_at")
    return Principal(
        sub=str(sub),
        username=context.get("username") or None,
        scopes=tuple(str(context.get("scopes") or "").split()),
        expires_at=datetime.fromtimestamp(int(expires), UTC) if expires else None,
    )


def bearer_token(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("send an 'Authorization: Bearer <token>' header")
    return token.strip()


def current_principal(request: Request) -> Principal:
    cached = getattr(request.state, "principal", None)
    if isinstance(cached, Principal):
        return cached
    container = container_of(request)
    event = request.scope.get("aws.event")
    if container.identity is None:
        if not isinstance(event, dict):
            raise Unauthenticated("no authorizer context on this request")
        principal = _from_authorizer(event)
    else:
        principal = container.identity.authenticate(bearer_token(request))
    if principal.expires_at is not None and principal.expires_at <= datetime.now(UTC):
        raise Unauthenticated("the token has expired")
    request.state.principal = principal
    return principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
ContainerDep = Annotated[Container, Depends(container_of)]
