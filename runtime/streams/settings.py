"""Tuning of event streams, read from ``OCTOPUS_SSE_*`` environment variables.

They are not part of ``RuntimeSettings`` (the lead's model) yet; the app takes a
``StreamSettings`` from ``container.extras["stream_settings"]`` when one is put there
(tests do), else from the environment.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields

ENV_PREFIX = "OCTOPUS_SSE_"
EXTRAS_KEY = "stream_settings"


@dataclass(frozen=True)
class StreamSettings:
    # A comment line this often when no event was sent, so proxies keep the stream open.
    heartbeat_seconds: float = 15.0
    # How often access (grants, token expiry is exact) is checked again while open.
    access_recheck_seconds: float = 5.0
    # How often a channel stream lists its topics again to pick up new ones.
    topic_relist_seconds: float = 5.0
    # The bounded buffer between the Kafka reader thread and the HTTP response.
    buffer_max_records: int = 2000
    buffer_max_bytes: int = 8 * 1024 * 1024
    # How long the reader waits for room in a full buffer before ending the stream
    # with reason "slow_consumer".
    slow_consumer_seconds: float = 10.0
    # How long the final ``event: end`` may wait for a client that is not reading.
    end_write_seconds: float = 30.0
    # Records taken from Kafka per poll and events written per HTTP chunk.
    batch_records: int = 500
    # librdkafka's own prefetch queue per stream (kbytes): bounded as well.
    prefetch_kbytes: int = 2048
    # Streams served at once by one process; more answer 503.
    max_streams: int = 500
    # Time lookups (``from=<time>``): True uses the broker's OffsetsForTimes (MSK);
    # False bisects record timestamps in the fabric (the embedded broker answers 0).
    broker_time_lookup: bool = False

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, *, broker_time_lookup: bool = False
    ) -> StreamSettings:
        env = os.environ if environ is None else environ
        values: dict[str, object] = {"broker_time_lookup": broker_time_lookup}
        for spec in fields(cls):
            raw = env.get(ENV_PREFIX + spec.name.upper())
            if raw is None:
                continue
            if spec.type == "bool":
                values[spec.name] = raw.strip().lower() in ("1", "true", "yes")
            elif spec.type == "int":
                values[spec.name] = int(raw)
            else:
                values[spec.name] = float(raw)
        return cls(**values)  # type: ignore[arg-type]
