"""A real HTTP server on 127.0.0.1 that answers with scripted replies and records requests.

It stands in for the fabric's web service (written in parallel) so the client's wire
handling — paths, bodies, headers, retries, error decoding — is tested over real HTTP.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Reply:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any


class FakeAPI:
    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], list[Reply]] = {}
        self.requests: list[Seen] = []
        self._lock = threading.Lock()
        handler = self._handler_class()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        host = host.decode() if isinstance(host, bytes) else host
        return f"http://{host}:{port}"

    def reply(self, method: str, path: str, *replies: Reply | dict[str, Any] | None) -> None:
        """Queue replies for a route; the last one repeats. A dict/None is a 200 JSON body."""
        queue = [r if isinstance(r, Reply) else Reply(body=r) for r in replies]
        self.routes[(method.upper(), path)] = queue

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def calls(self, method: str | None = None, path: str | None = None) -> list[Seen]:
        return [
            r
            for r in self.requests
            if (method is None or r.method == method) and (path is None or r.path == path)
        ]

    def _next(self, method: str, path: str) -> Reply:
        with self._lock:
            queue = self.routes.get((method, path))
            if not queue:
                return Reply(404, {"error": {"code": "not_found", "message": f"no route {path}"}})
            return queue.pop(0) if len(queue) > 1 else queue[0]

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                data = self.rfile.read(length) if length else b""
                body = json.loads(data) if data else None
                api.requests.append(
                    Seen(
                        self.command,
                        parts.path,
                        parse_qs(parts.query),
                        {k.lower(): v for k, v in self.headers.items()},
                        body,
                    )
                )
                reply = api._next(self.command, parts.path)
                payload = (
                    reply.raw
                    if reply.raw is not None
                    else (b"" if reply.body is None else json.dumps(reply.body).encode())
                )
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                if payload:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

        return Handler


NOW = "2025-01-01T00:00:00Z"


def topic_body(
    namespace: str = "ns-abc", name: str = "sensors.temp", **extra: Any
) -> dict[str, Any]:
    return {
        "namespace": namespace,
        "name": name,
        "kafka_name": f"{namespace}.{name}",
        "owner": "sub-1",
        "partitions": 1,
        "replication_factor": 1,
        "configs": {},
        "state": "active",
        "created_at": NOW,
        "updated_at": NOW,
        **extra,
    }


def me_body(namespace: str = "ns-abc", namespaces: list[str] | None = None) -> dict[str, Any]:
    return {
        "sub": "sub-1",
        "username": "ada@example.org",
        "default_namespace": namespace,
        "namespaces": namespaces or [namespace],
        "quotas": {"topics_per_identity": 50},
        "usage": {"topics": 1},
    }


def grant_body(
    kind: str = "topic", target: str = "sensors.temp", access: str = "read"
) -> dict[str, Any]:
    return {
        "namespace": "ns-abc",
        "kind": kind,
        "target": target,
        "grantee": "sub-2",
        "access": access,
        "granted_by": "sub-1",
        "created_at": NOW,
    }


def fabric_body(bootstrap: str, **extra: Any) -> dict[str, Any]:
    return {
        "bootstrap_servers": bootstrap,
        "security_protocol": "PLAINTEXT",
        "sasl_mechanism": None,
        "auth": "none",
        "region": "local",
        "cluster_mode": "local",
        "local": True,
        "client_overrides": {
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 500,
            "fetch.wait.max.ms": 100,
        },
        **extra,
    }
