"""SSE over the real broker and a real uvicorn server: catch-up, resume, access, backpressure."""

from __future__ import annotations

import json
import random
import threading
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from runtime.domain.errors import Unauthenticated
from runtime.domain.ports import IdentityProvider, Principal
from runtime.streams.plan import ActiveStreams
from tests.integration.events.conftest import (
    TEST_STREAM_SETTINGS,
    LiveEvents,
    SseEvent,
    read_events,
    rss_kib,
)

pytestmark = [pytest.mark.broker]


def _events_path(live: LiveEvents, topic: str) -> str:
    return f"/v1/namespaces/{live.owner.namespace}/topics/{topic}/events"


def _records(events: list[SseEvent]) -> list[SseEvent]:
    return [e for e in events if e.event == "record"]


def test_resume_with_last_event_id_delivers_every_event_once_in_order(
    live_events: LiveEvents, topic_name: str
) -> None:
    live = live_events
    live.create_topic(topic_name, partitions=3)
    total = 5000
    for partition in range(3):
        values = [{"n": n} for n in range(partition, total, 3)]
        live.produce(topic_name, values, partition=partition)

    seen: list[SseEvent] = []
    last_id: str | None = None
    rng = random.Random(6)
    cuts = sorted(rng.sample(range(200, total - 200), 2))  # two disconnects at random points
    with live.client(live.owner) as client:
        for cut in [*cuts, total]:
            headers = {"Last-Event-ID": last_id} if last_id else {}
            params = {} if last_id else {"from": "earliest"}
            with client.stream(
                "GET", _events_path(live, topic_name), params=params, headers=headers
            ) as response:
                assert response.status_code == 200
                assert response.headers["content-type"].startswith("text/event-stream")
                for event in read_events(response):
                    assert event.event == "record", event
                    seen.append(event)
                    last_id = event.id
                    if len(seen) >= cut:
                        break
            # leaving the block closes the connection mid-stream

    assert len(seen) == total
    by_partition: dict[int, list[int]] = defaultdict(list)
    for event in seen:
        by_partition[event.data["partition"]].append(event.data["offset"])
        assert event.id is not None and event.id.startswith(
            f"{topic_name}/{event.data['partition']}/{event.data['offset']};"
        )
    for offsets in by_partition.values():
        assert offsets == list(range(len(offsets)))  # exactly once, in order
    assert sorted(e.data["value"]["n"] for e in seen) == list(range(total))
    # The server closed every stream's consumer.
    _wait_for(lambda: not _streams(live).snapshot(), 10)


def _streams(live: LiveEvents) -> ActiveStreams:
    streams = live.container.extras["active_streams"]
    assert isinstance(streams, ActiveStreams)
    return streams


def _wait_for(condition: object, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def test_from_timestamp_offset_latest_and_earliest(
    live_events: LiveEvents, topic_name: str
) -> None:
    live = live_events
    live.create_topic(topic_name, partitions=2)
    base = int(datetime(2030, 1, 1, tzinfo=UTC).timestamp() * 1000)
    count = 40
    for partition in range(2):
        live.produce(
            topic_name,
            [{"i": i} for i in range(count)],
            partition=partition,
            timestamps=[base + i * 1000 for i in range(count)],
        )
    cutoff = base + 25_500  # records 26..39 are at or after it, in each partition
    iso = datetime.fromtimestamp(cutoff / 1000, UTC).isoformat().replace("+00:00", "Z")
    with live.client(live.owner) as client:
        for start in (iso, str(cutoff)):
            with client.stream(
                "GET", _events_path(live, topic_name), params={"from": start}
            ) as response:
                assert response.status_code == 200
                got = list(read_events(response, limit=2 * (count - 26)))
            assert all(e.data["timestamp_ms"] >= cutoff for e in got)
            assert sorted((e.data["partition"], e.data["offset"]) for e in got) == [
                (p, o) for p in range(2) for o in range(26, count)
            ]
        # A numeric offset: that offset in every partition.
        with client.stream(
            "GET", _events_path(live, topic_name), params={"from": "38"}
        ) as response:
            got = list(read_events(response, limit=4))
        assert sorted((e.data["partition"], e.data["offset"]) for e in got) == [
            (0, 38),
            (0, 39),
            (1, 38),
            (1, 39),
        ]
        # latest: only what is produced after the stream opened.
        with client.stream(
            "GET", _events_path(live, topic_name), params={"from": "latest"}
        ) as response:
            assert response.status_code == 200
            threading.Timer(0.5, live.produce, (topic_name, [{"new": 1}]), {"partition": 1}).start()
            got = list(read_events(response, limit=1))
        assert got[0].data["value"] == {"new": 1}
        assert got[0].data["offset"] == count


def test_value_encodings_key_and_headers(live_events: LiveEvents, topic_name: str) -> None:
    live = live_events
    live.create_topic(topic_name)
    live.produce(topic_name, [b'{"a": [1, 2]}', b"plain text", b"\xff\xfe\x00"], key=b"k1")
    with (
        live.client(live.owner) as client,
        client.stream(
            "GET", _events_path(live, topic_name), params={"from": "earliest"}
        ) as response,
    ):
        got = [e.data for e in read_events(response, limit=3)]
    assert [(d["value"], d["value_encoding"]) for d in got] == [
        ({"a": [1, 2]}, "json"),
        ("plain text", "text"),
        ("//4A", "base64"),
    ]
    assert got[0]["key"] == "k1" and got[0]["key_encoding"] == "text"
    assert got[0]["timestamp"].endswith("+00:00")


def test_filter_uses_the_trigger_rules(live_events: LiveEvents, topic_name: str) -> None:
    live = live_events
    live.create_topic(topic_name)
    live.produce(topic_name, [{"kind": k, "n": n} for n, k in enumerate("abacab")])
    pattern = {"value": {"kind": ["a"], "n": [{"numeric": [">", 0]}]}}
    with live.client(live.owner) as client:
        with client.stream(
            "GET",
            _events_path(live, topic_name),
            params={"from": "earliest", "filter": json.dumps(pattern)},
        ) as response:
            assert response.status_code == 200
            got = list(read_events(response, limit=2))
        assert [e.data["value"]["n"] for e in got] == [2, 4]
        # FilterCriteria form, and an invalid pattern answers 422 before streaming.
        criteria = {"Filters": [{"Pattern": json.dumps({"value": {"kind": ["b"]}})}]}
        with client.stream(
            "GET",
            _events_path(live, topic_name),
            params={"from": "earliest", "filter": json.dumps(criteria)},
        ) as response:
            got = list(read_events(response, limit=2))
        assert [e.data["value"]["n"] for e in got] == [1, 5]
        bad = client.get(
            _events_path(live, topic_name),
            params={"filter": json.dumps({"value": {"n": [{"wildcard": "x*"}]}})},
        )
        assert bad.status_code == 422
        assert bad.json()["error"]["code"] == "invalid_filter_criteria"


def test_errors_before_the_stream(live_events: LiveEvents, topic_name: str) -> None:
    live = live_events
    live.create_topic(topic_name)
    path = _events_path(live, topic_name)
    assert live.call("GET", path, live.stranger).status_code == 404
    assert httpx.get(live.url + path).status_code == 401
    assert live.call("GET", path, live.owner, params={"from": "yesterday"}).status_code == 422
    wrong = live.call("GET", path, live.owner, headers={"Last-Event-ID": "other/0/1;2"})
    assert wrong.status_code == 422
    assert (
        live.call("GET", f"/v1/namespaces/{live.owner.namespace}/events?prefix=..", live.owner)
    ).status_code == 400


def test_heartbeat_comments_keep_an_idle_stream_open(
    live_events: LiveEvents, topic_name: str
) -> None:
    live = live_events
    live.create_topic(topic_name)
    comments = []
    started = time.monotonic()
    with (
        live.client(live.owner) as client,
        client.stream("GET", _events_path(live, topic_name)) as response,
    ):
        for line in response.iter_lines():
            if line.startswith(":"):
                comments.append(line)
            if comments.count(": keepalive") >= 2:
                break
    assert comments[0] == ": connected"
    assert time.monotonic() - started >= 1.5 * TEST_STREAM_SETTINGS.heartbeat_seconds


def test_revoked_grant_closes_an_open_stream(live_events: LiveEvents, topic_name: str) -> None:
    live = live_events
    live.create_topic(topic_name)
    ns = live.owner.namespace
    grant = f"/v1/namespaces/{ns}/topics/{topic_name}/grants/{live.grantee.sub}"
    assert live.call("PUT", grant, live.owner, json={"access": "read"}).status_code == 200
    live.produce(topic_name, [{"i": 0}])
    with (
        live.client(live.grantee) as client,
        client.stream("GET", _events_path(live, topic_name), params={"from": "earliest"}) as r,
    ):
        assert r.status_code == 200
        events = read_events(r)
        first = next(events)
        assert first.data["value"] == {"i": 0}
        revoked_at = time.monotonic()
        assert live.call("DELETE", grant, live.owner).status_code == 204
        end = next(events)
        closed_after = time.monotonic() - revoked_at
        assert end.event == "end"
        assert end.data["reason"] == "access_revoked"
        assert end.data["resume_id"] == end.id == first.id
        assert list(events) == []  # the server closed the stream
    assert closed_after < TEST_STREAM_SETTINGS.access_recheck_seconds + 2.0
    # And a new stream is refused.
    assert live.call("GET", _events_path(live, topic_name), live.grantee).status_code == 404


class ExpiringIdentity:
    """The development provider, with tokens that expire ``seconds`` after first use
    (as Globus introspection reports ``exp``)."""

    def __init__(self, inner: IdentityProvider, seconds: float) -> None:
        self.inner = inner
        self.expires_at = datetime.now(UTC) + timedelta(seconds=seconds)

    def authenticate(self, token: str) -> Principal:
        principal = self.inner.authenticate(token)
        if datetime.now(UTC) >= self.expires_at:
            raise Unauthenticated("the token has expired")
        return principal.model_copy(update={"expires_at": self.expires_at})


def test_token_expiry_closes_the_stream(live_events: LiveEvents, topic_name: str) -> None:
    live = live_events
    live.create_topic(topic_name)
    assert live.container.identity is not None
    live.container.identity = ExpiringIdentity(live.container.identity, seconds=2.0)
    with (
        live.client(live.owner) as client,
        client.stream("GET", _events_path(live, topic_name)) as response,
    ):
        assert response.status_code == 200
        started = time.monotonic()
        end = next(read_events(response))
    assert end.event == "end" and end.data["reason"] == "token_expired"
    assert time.monotonic() - started < 3.5
    assert live.call("GET", _events_path(live, topic_name), live.owner).status_code == 401


def test_slow_client_ends_with_slow_consumer_and_bounded_memory(
    live_events: LiveEvents, topic_name: str
) -> None:
    live = live_events
    live.create_topic(topic_name)
    record = {"pad": "x" * 1000}
    for _ in range(6):
        live.produce(topic_name, [record] * 10_000)  # 60k records, ~61 MB
    baseline = rss_kib()
    settings = TEST_STREAM_SETTINGS
    with (
        live.client(live.owner, timeout=60) as client,
        client.stream("GET", _events_path(live, topic_name), params={"from": "earliest"}) as r,
    ):
        assert r.status_code == 200
        streams = _streams(live)
        _wait_for(lambda: len(streams.snapshot()) == 1, 5)
        stream = streams.snapshot()[0]
        peak_rss = baseline
        deadline = time.monotonic() + 20
        while stream.end_reason is None and time.monotonic() < deadline:
            peak_rss = max(peak_rss, rss_kib())
            assert stream.buffer.records <= settings.buffer_max_records
            assert stream.buffer.bytes <= settings.buffer_max_bytes
            time.sleep(0.1)
        assert stream.end_reason == "slow_consumer"
        assert stream.buffer.high_water_records <= settings.buffer_max_records
        # Now read: the events that were written, then the end with a resume id.
        events = list(read_events(r))
    end = events[-1]
    assert end.event == "end" and end.data["reason"] == "slow_consumer"
    delivered = _records(events)
    assert 0 < len(delivered) < 60_000
    assert [e.data["offset"] for e in delivered] == list(range(len(delivered)))
    # The server held a bounded amount while 61 MB waited in the log.
    print(f"slow client: delivered {len(delivered)}, rss +{(peak_rss - baseline) // 1024} MiB")
    assert (peak_rss - baseline) < 40 * 1024, (baseline, peak_rss)
    # The resume id continues exactly after the last delivered event.
    with (
        live.client(live.owner) as client,
        client.stream(
            "GET",
            _events_path(live, topic_name),
            headers={"Last-Event-ID": end.data["resume_id"]},
        ) as response,
    ):
        nxt = next(read_events(response))
    assert nxt.data["offset"] == len(delivered)


def test_channel_stream_picks_up_new_topics_and_resumes(live_events: LiveEvents) -> None:
    live = live_events
    ns = live.owner.namespace
    live.create_topic("beam.det1", partitions=2)
    live.create_topic("beamx.other")
    # The grantee may read the channel "beam" through a prefix grant.
    reply = live.call(
        "PUT",
        f"/v1/namespaces/{ns}/grants/{live.grantee.sub}",
        live.owner,
        json={"prefix": "beam", "access": "read"},
    )
    assert reply.status_code == 200, reply.text
    live.produce("beam.det1", [{"d": 1, "i": i} for i in range(4)])
    path = f"/v1/namespaces/{ns}/events"
    got: list[SseEvent] = []
    with (
        live.client(live.grantee) as client,
        client.stream("GET", path, params={"prefix": "beam", "from": "earliest"}) as response,
    ):
        assert response.status_code == 200
        events = read_events(response)
        got.extend(next(events) for _ in range(4))
        # A topic created while the stream is open joins it, from its first record.
        live.create_topic("beam.det2")
        live.produce("beam.det2", [{"d": 2, "i": i} for i in range(3)])
        live.produce("beamx.other", [{"not": "covered"}])
        got.extend(next(events) for _ in range(3))
    assert {e.data["topic"] for e in got[:4]} == {"beam.det1"}
    assert [e.data["value"] for e in got[4:]] == [{"d": 2, "i": i} for i in range(3)]
    # Resume the channel from the last id: only what came after.
    live.produce("beam.det1", [{"d": 1, "i": 4}])
    live.produce("beam.det2", [{"d": 2, "i": 3}])
    with (
        live.client(live.grantee) as client,
        client.stream(
            "GET", path, params={"prefix": "beam"}, headers={"Last-Event-ID": got[-1].id or ""}
        ) as response,
    ):
        more = [e.data["value"] for e in read_events(response, limit=2)]
    assert sorted(more, key=lambda v: v["d"]) == [{"d": 1, "i": 4}, {"d": 2, "i": 3}]
    # A stranger cannot open the channel; a topic outside the grant is not streamed.
    assert live.call("GET", path, live.stranger, params={"prefix": "beam"}).status_code == 404
