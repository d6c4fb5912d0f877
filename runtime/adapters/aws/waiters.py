"""Waiting on AWS's real state with bounded exponential backoff (never a fixed sleep).

``sleep`` and ``clock`` are injected so tests run instantly and can count the waits.
A wait that runs out of time raises :class:`WaitTimedOut` (503: retry later), naming
what it was waiting for and the last state seen.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from runtime.domain.errors import Unavailable

T = TypeVar("T")

Sleep = Callable[[float], None]
Clock = Callable[[], float]


class WaitTimedOut(Unavailable):
    code = "trigger_not_ready"


@dataclass(frozen=True)
class Backoff:
    """Delays ``first, first*factor, ...`` capped at ``cap``, for at most ``budget`` seconds."""

    first: float = 0.25
    factor: float = 2.0
    cap: float = 4.0
    budget: float = 20.0

    def delays(self) -> Iterator[float]:
        delay = self.first
        while True:
            yield min(delay, self.cap)
            delay *= self.factor


def wait_for(
    probe: Callable[[], tuple[bool, T]],
    *,
    what: str,
    backoff: Backoff,
    sleep: Sleep,
    clock: Clock,
) -> T:
    """Call ``probe`` until it answers ``(True, value)``; return the value.

    ``probe`` raises to abort (e.g. the resource reached a failed state). Between calls the
    delay grows exponentially; the last delay is shortened so the budget is never exceeded.
    """
    deadline = clock() + backoff.budget
    for delay in backoff.delays():
        done, value = probe()
        if done:
            return value
        remaining = deadline - clock()
        if remaining <= 0:
            raise WaitTimedOut(
                f"timed out after {backoff.budget:g} s waiting for {what} (last seen: {value})",
                details={"waiting_for": what, "last_seen": str(value)},
            )
        sleep(min(delay, remaining))
    raise AssertionError("unreachable: delays() is infinite")  # pragma: no cover


def retry_while(
    call: Callable[[], T],
    *,
    retryable: Callable[[Exception], bool],
    what: str,
    backoff: Backoff,
    sleep: Sleep,
    clock: Clock,
) -> T:
    """Call ``call``; while it raises an error ``retryable`` accepts, back off and call again.

    Used where AWS's "state" is only visible as a refusal, e.g. a role IAM has not yet
    propagated to Lambda. When the budget is spent the last error is raised as is.
    """
    deadline = clock() + backoff.budget
    for delay in backoff.delays():
        try:
            return call()
        except Exception as exc:
            remaining = deadline - clock()
            if not retryable(exc) or remaining <= 0:
                raise
            sleep(min(delay, remaining))
    raise AssertionError(f"unreachable while retrying {what}")  # pragma: no cover
