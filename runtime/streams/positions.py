"""Resumable event ids and the ``from=`` start specification.

Single topic: ``<topic>/<partition>/<offset>;<n0>,<n1>,...`` — the record's own position,
then the next offset to read in every partition of the topic (so a reconnect with
``Last-Event-ID`` resumes all partitions exactly). A bare ``<topic>/<partition>/<offset>``
is accepted too (that partition resumes after the offset; the others start per ``from``).

Channel: ``c1.<base64url(JSON)>`` with JSON ``{"t": <ms when made>, "p": {topic: {partition:
next_offset}}}`` over every partition the stream reads. Topic names are the fabric's
(without the namespace, which is in the URL).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from runtime.domain.errors import Unprocessable

CHANNEL_ID_PREFIX = "c1."
# "<topic>/<partition>/<offset>;<vector>"; either part may be missing (not both): a stream
# that ends before delivering anything resumes from "<topic>;<vector>".
_SINGLE_RE = re.compile(
    r"^(?P<topic>[A-Za-z0-9_.-]+)(?:/(?P<partition>\d+)/(?P<offset>\d+))?(?:;(?P<vector>[0-9,]*))?$"
)

# topic -> partition -> next offset to read
PositionMap = dict[str, dict[int, int]]


class InvalidPosition(Unprocessable):
    code = "invalid_position"


@dataclass(frozen=True)
class SingleTopicId:
    topic: str
    partition: int | None
    offset: int | None
    # next offset per partition (index = partition), when the id carries them
    next_offsets: tuple[int, ...] | None

    def positions(self) -> dict[int, int]:
        found = dict(enumerate(self.next_offsets)) if self.next_offsets is not None else {}
        if self.partition is not None and self.offset is not None:
            found[self.partition] = max(found.get(self.partition, 0), self.offset + 1)
        return found


@dataclass(frozen=True)
class ChannelId:
    made_at_ms: int
    positions: PositionMap


def single_topic_id(
    topic: str, partition: int | None, offset: int | None, next_offsets: list[int]
) -> str:
    vector = ",".join(map(str, next_offsets))
    if partition is None or offset is None:
        return f"{topic};{vector}"
    return f"{topic}/{partition}/{offset};{vector}"


def parse_single_topic_id(text: str) -> SingleTopicId:
    match = _SINGLE_RE.fullmatch(text.strip())
    if match is None or (match["partition"] is None and match["vector"] is None):
        raise InvalidPosition(
            f"event id {text[:80]!r} is not '<topic>/<partition>/<offset>[;<next offsets>]'",
            details={"field": "Last-Event-ID"},
        )
    vector = match["vector"]
    next_offsets = None
    if vector is not None:
        try:
            next_offsets = tuple(int(v) for v in vector.split(",")) if vector else ()
        except ValueError:
            raise InvalidPosition(
                "the next offsets of the event id are not numbers",
                details={"field": "Last-Event-ID"},
            ) from None
    partition = int(match["partition"]) if match["partition"] is not None else None
    offset = int(match["offset"]) if match["offset"] is not None else None
    return SingleTopicId(match["topic"], partition, offset, next_offsets)


def channel_id(positions: PositionMap, made_at_ms: int) -> str:
    body = {
        "t": made_at_ms,
        "p": {
            t: {str(p): o for p, o in sorted(parts.items())}
            for t, parts in sorted(positions.items())
        },
    }
    raw = json.dumps(body, separators=(",", ":")).encode()
    return CHANNEL_ID_PREFIX + base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def parse_channel_id(text: str) -> ChannelId:
    text = text.strip()
    problem = InvalidPosition(
        "this event id was not made by a channel stream (expected 'c1.<base64url JSON>')",
        details={"field": "Last-Event-ID"},
    )
    if not text.startswith(CHANNEL_ID_PREFIX):
        raise problem
    encoded = text[len(CHANNEL_ID_PREFIX) :]
    try:
        raw = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
        body = json.loads(raw)
        made_at = int(body["t"])
        positions = {
            str(topic): {int(p): int(o) for p, o in parts.items()}
            for topic, parts in dict(body["p"]).items()
        }
    except (binascii.Error, ValueError, KeyError, TypeError, AttributeError):
        raise problem from None
    if any(o < 0 or p < 0 for parts in positions.values() for p, o in parts.items()):
        raise problem
    return ChannelId(made_at, positions)


# --------------------------------------------------------------------------- from=


@dataclass(frozen=True)
class StartSpec:
    """Where a stream starts: ``earliest``, ``latest``, an offset, or a time (epoch ms)."""

    kind: str  # "earliest" | "latest" | "offset" | "time"
    value: int = 0


EARLIEST = StartSpec("earliest")
LATEST = StartSpec("latest")

# Numbers below this are offsets; above, epoch milliseconds (2001-09-09 onwards).
_EPOCH_MS_THRESHOLD = 1_000_000_000_000


def parse_start(text: str | None) -> StartSpec:
    """Parse ``from=``: earliest | latest | <offset> | <epoch ms> | <ISO 8601 time>."""
    if text is None or text == "":
        return LATEST
    value = text.strip()
    if value in ("earliest", "latest"):
        return StartSpec(value)
    if value.isdigit():
        number = int(value)
        if number >= _EPOCH_MS_THRESHOLD:
            return StartSpec("time", number)
        return StartSpec("offset", number)
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidPosition(
            f"from={value[:60]!r} is not earliest, latest, an offset, epoch milliseconds or an "
            "ISO 8601 time",
            details={"field": "from"},
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return StartSpec("time", int(moment.timestamp() * 1000))
