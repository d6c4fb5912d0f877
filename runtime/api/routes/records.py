"""Produce over HTTP: one record, or a batch answered entry by entry (207)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from runtime.api.auth import ContainerDep, CurrentPrincipal
from runtime.api.codec import decode_record, record_out
from runtime.api.idempotency import respond
from runtime.api.responses import errors
from runtime.api.schemas import (
    BatchFailure,
    BatchOut,
    BatchSuccess,
    RecordBatchIn,
    RecordIn,
    RecordOut,
)
from runtime.domain.errors import FabricError, OutcomeUnknown, Unavailable

router = APIRouter(prefix="/v1/namespaces/{ns}/topics/{topic}", tags=["records"])


def produce_one(
    container: ContainerDep, principal: CurrentPrincipal, ns: str, topic: str, body: RecordIn
) -> RecordOut:
    record = decode_record(body)
    _, outcomes = container.fabric.records.write(principal, ns, topic, [record])
    outcome = outcomes[0]
    if outcome.error is not None:
        if outcome.retriable:
            raise Unavailable(f"the record was not written: {outcome.error}")
        raise OutcomeUnknown(f"the record may or may not have been written: {outcome.error}")
    # The name users know: without the namespace prefix.
    return record_out(topic, outcome)


def produce_batch(
    container: ContainerDep, principal: CurrentPrincipal, ns: str, topic: str, body: RecordBatchIn
) -> BatchOut:
    seen: set[str] = set()
    decoded, failures = [], []
    for index, entry in enumerate(body.entries):
        if entry.id in seen:
            failures.append(
                BatchFailure(id=entry.id, error_code=42201, message="duplicate entry id")
            )
            continue
        seen.add(entry.id)
        try:
            decoded.append((entry.id, decode_record(entry, prefix=f"entries.{index}.")))
        except FabricError as exc:
            failures.append(
                BatchFailure(id=entry.id, error_code=exc.status * 100 + 1, message=exc.message)
            )
    successes: list[BatchSuccess] = []
    if decoded:
        _, outcomes = container.fabric.records.write(principal, ns, topic, [r for _, r in decoded])
        for (entry_id, _), outcome in zip(decoded, outcomes, strict=True):
            if outcome.error is None:
                successes.append(
                    BatchSuccess(id=entry_id, **record_out(topic, outcome).model_dump())
                )
            else:
                code = 50301 if outcome.retriable else 50001
                failures.append(BatchFailure(id=entry_id, error_code=code, message=outcome.error))
    return BatchOut(successes=successes, failures=failures)


@router.post(
    "/records",
    response_model=RecordOut,
    responses=errors(403, 404, 409, 504),
    summary="Produce one record; the reply comes after acks=all",
)
def produce_record(
    ns: str,
    topic: str,
    body: RecordIn,
    request: Request,
    principal: CurrentPrincipal,
    container: ContainerDep,
) -> Response:
    return respond(
        request,
        principal,
        status=200,
        body=body,
        action=lambda: produce_one(container, principal, ns, topic, body),
    )


@router.post(
    "/records:batch",
    status_code=207,
    response_model=BatchOut,
    responses=errors(403, 404, 409),
    summary="Produce up to 500 records; each entry succeeds or fails on its own",
)
def produce_records_batch(
    ns: str,
    topic: str,
    body: RecordBatchIn,
    request: Request,
    principal: CurrentPrincipal,
    container: ContainerDep,
) -> Response:
    return respond(
        request,
        principal,
        status=207,
        body=body,
        action=lambda: produce_batch(container, principal, ns, topic, body),
    )
