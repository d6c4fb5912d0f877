"""A real HTTP(S) server on 127.0.0.1 that records webhook calls and answers as scripted; a
stand-in for DNS (``fake_dns``), since the tests cannot control a real resolver."""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

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


@contextlib.contextmanager
def serving(tls: ssl.SSLContext | None = None) -> Iterator[WebhookReceiver]:
    """A receiver on 127.0.0.1 (``https`` with ``tls``, a server-side context) while open."""
    server = _Server(("127.0.0.1", 0), _Handler)
    if tls is not None:
        # A failed handshake raises ssl.SSLError (an OSError) in accept, which socketserver
        # ignores: the request never reaches the handler and is not recorded.
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    receiver = WebhookReceiver()
    server.receiver = receiver
    scheme = "https" if tls is not None else "http"
    receiver.url = f"{scheme}://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def webhook_server() -> Iterator[WebhookReceiver]:
    with serving() as receiver:
        yield receiver


# An answer for ``FakeDns.answer``: the resolver fails for now (EAI_AGAIN), as when the DNS
# server does not reply.
DNS_TRY_AGAIN = ["<EAI_AGAIN>"]


@dataclass
class FakeDns:
    """Answers lookups of chosen names in place of the system resolver.

    It replaces ``socket.getaddrinfo``, which both the fabric's address check and a plain
    socket connect by name use, so a client that resolved a name a second time would get the
    second answer here too. ``answer(name, first, second, ...)``: one answer per lookup, the
    last repeated. Names not given go to the real resolver.
    """

    answers: dict[str, list[list[str]]] = field(default_factory=dict)
    lookups: Counter[str] = field(default_factory=Counter)

    def answer(self, name: str, *answers: list[str]) -> None:
        self.answers[name] = [list(a) for a in answers]

    def getaddrinfo(self, host: Any, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        name = host.decode() if isinstance(host, bytes) else host
        if name not in self.answers:
            return _REAL_GETADDRINFO(host, port, *args, **kwargs)
        self.lookups[name] += 1
        queue = self.answers[name]
        addresses = queue.pop(0) if len(queue) > 1 else queue[0]
        if addresses == DNS_TRY_AGAIN:
            raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
        out: list[Any] = []
        for address in addresses:
            if ":" in address:
                out.append((socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, port, 0, 0)))
            else:
                out.append((socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port)))
        return out


_REAL_GETADDRINFO = socket.getaddrinfo


@pytest.fixture
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> FakeDns:
    dns = FakeDns()
    monkeypatch.setattr(socket, "getaddrinfo", dns.getaddrinfo)
    return dns
