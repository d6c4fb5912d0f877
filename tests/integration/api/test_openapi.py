"""The OpenAPI document is complete, and a schemathesis run finds no server error."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from tests.integration.api.conftest import Fabric

PUBLIC = {("GET", "/v1/health")}


def test_every_route_is_documented_with_errors(fabric: Fabric) -> None:
    spec = fabric.client.get("/v1/openapi.json").json()
    documented = {(m.upper(), p) for p, ops in spec["paths"].items() for m in ops}
    routed = {
        (method, route.path)
        for route in fabric.app.routes
        for method in getattr(route, "methods", set()) or set()
        if getattr(route, "include_in_schema", False) and method != "HEAD"
    }
    assert routed <= documented
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            if (method.upper(), path) in PUBLIC:
                continue
            assert "401" in op["responses"], f"{method} {path} does not document 401"
            assert "422" in op["responses"], f"{method} {path} does not document 422"


@pytest.mark.slow
def test_schemathesis_finds_no_server_error(fabric: Fabric) -> None:
    schema = schemathesis.openapi.from_asgi("/v1/openapi.json", fabric.app)
    fabric.client.get("/v1/me", headers=fabric.owner.headers)
    failures: list[str] = []
    calls: list[str] = []

    @settings(
        max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), database=None
    )
    def run(case: schemathesis.Case) -> None:
        case.headers = {**(case.headers or {}), **fabric.owner.headers}
        response = case.call()
        calls.append(f"{case.method} {case.path}")
        if response.status_code >= 500:
            failures.append(
                f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:200]}"
            )
        case.validate_response(response, checks=(schemathesis.checks.response_schema_conformance,))

    for operation in schema.get_all_operations():
        op = operation.ok()
        test = op.as_strategy()
        from hypothesis import given

        given(case=test)(run)()
    assert not failures, failures
    # Every documented operation was exercised, not just generated.
    exercised = {c for c in calls}
    assert len(exercised) >= len(list(schema.get_all_operations())) * 0.9, sorted(exercised)
