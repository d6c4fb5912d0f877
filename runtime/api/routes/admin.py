"""Administration: report and repair drift between registry, broker and IAM."""

from __future__ import annotations

from fastapi import APIRouter, Query

from runtime.api.auth import ContainerDep, CurrentPrincipal
from runtime.api.responses import errors
from runtime.domain.reconcile import ReconcileReport

router = APIRouter(prefix="/v1/admin", tags=["admin"])


@router.post(
    "/reconcile",
    response_model=ReconcileReport,
    responses=errors(403),
    summary="Report drift between registry, broker and IAM; repair it with ?repair=true",
)
def reconcile(
    principal: CurrentPrincipal,
    container: ContainerDep,
    repair: bool = Query(default=False, description="Fix what is found, not only report it"),
) -> ReconcileReport:
    reconciler = container.fabric.reconciler
    reconciler.require_admin(principal)
    return reconciler.run(repair=repair)
