"""A real HTTP server on 127.0.0.1 that records webhook calls and answers as scripted."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


@dataclass
class ReceivedRequest:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int = 0

    def json(self) -> dict:
        return json.loads(self.body)


@dataclass
class WebhookReceiver:
    """Records every request; answers from ``script`` first, then per-delivery failures."""

    url: str = ""
    requests: list[ReceivedRequest] = field(default_factory=list)
    # (status, body, delay_s) answered in order to the next requests, whatever they carry.
    script: list[tuple[int, str, float]] = field(default_factory=list)
    # Answer this status this many times to each new X-Octopus-Delivery-Id, then succeed.
    fail_each_delivery: tuple[int, int] = (500, 0)
    default: tuple[int, str] = (200, '{"ok": true}')
    _seen: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, request: ReceivedRequest) -> tuple[int, str, float]:
        with self._lock:
            self.requests.append(request)
            if self.script:
                return self.script.pop(0)
            status, times = self.fail_each_delivery
            delivery = request.headers.get("x-octopus-delivery-id", "")
            count = self._seen.get(delivery, 0)
            self._seen[delivery] = count + 1
            if count < times:
                return status, f"injected failure {count + 1} of {times}", 0.0
            return self.default[0], self.default[1], 0.0

    def successful(self) -> list[ReceivedRequest]:
        """Requests that were answered 2xx (the answer order matches ``requests``)."""
        return [r for r in self.requests if r.status // 100 == 2]


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        request = ReceivedRequest(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
        status, reply, delay = self.server.receiver.answer(request)
        request.status = status
        if delay:
            time.sleep(delay)
        payload = reply.encode()
        try:
            self.send_response(status)
            if 300 <= status < 400:
                self.send_header("Location", "http://169.254.169.254/latest/meta-data/")
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout test)

    def log_message(self, format: str, *args: object) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    receiver: WebhookReceiver


@pytest.fixture
def webhook_server() -> Iterator[WebhookReceiver]:
    server = _Server(("127.0.0.1", 0), _Handler)
    receiver = WebhookReceiver()
    server.receiver = receiver
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
