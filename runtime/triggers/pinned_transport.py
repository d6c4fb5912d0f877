"""An httpx transport whose connections go only to addresses a check approved.

Checking a host name and then letting the HTTP client resolve it again leaves a window (DNS
rebinding): the second answer can be an internal address the check never saw. Here the name is
resolved once per new connection, by the check itself, and the socket is opened to one of the
addresses the check returned, so there is no second answer.

Only the TCP connect changes. The request still carries the URL's host name, so the ``Host``
header, TLS SNI and certificate verification all use the name: httpcore passes the origin's host
to ``start_tls`` as ``server_hostname`` on its own, not the address ``connect_tcp`` used
(``httpcore/_sync/connection.py``, ``HTTPConnection._connect``).

An exception raised by the check is not an httpcore error, so neither httpcore nor httpx maps or
retries it: it reaches the caller of ``httpx.Client.send`` unchanged.
"""

from __future__ import annotations

import ipaddress
import ssl
from collections.abc import Callable, Iterable, Sequence
from typing import Final

import httpcore
import httpx

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
# (host as httpcore gives it: IDNA-encoded name or bare IP literal, port) -> addresses that may
# be connected to, in the order to try them. Raises to refuse the connection.
AddressCheck = Callable[[str, int], Sequence[Address]]

# httpx's own defaults (httpx.Limits() alone leaves them unset).
DEFAULT_LIMITS: Final = httpx.Limits(
    max_connections=100, max_keepalive_connections=20, keepalive_expiry=5.0
)


class PinnedBackend(httpcore.NetworkBackend):
    """Opens TCP connections only to addresses ``check`` returned for the host."""

    def __init__(self, check: AddressCheck, inner: httpcore.NetworkBackend | None = None) -> None:
        self._check = check
        self._inner = inner or httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        addresses = self._check(host, port)
        if not addresses:
            raise httpcore.ConnectError(f"no address to connect to for {host!r}")
        # Like socket.create_connection: try each approved address in order, report the last
        # failure. Unlike it, never fall back to resolving the name again.
        failure: httpcore.ConnectError | httpcore.ConnectTimeout | None = None
        for address in addresses:
            try:
                return self._inner.connect_tcp(
                    str(address),
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None  # the loop ran at least once
        raise failure

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class PinnedTransport(httpx.HTTPTransport):
    """``httpx.HTTPTransport`` (no proxy, HTTP/1.1) that connects through a ``PinnedBackend``.

    Certificates are verified (``ssl_context`` defaults to httpx's verifying context with the
    certifi roots); pass a context only to trust another CA, as tests do.
    """

    def __init__(
        self,
        check: AddressCheck,
        *,
        ssl_context: ssl.SSLContext | None = None,
        limits: httpx.Limits = DEFAULT_LIMITS,
    ) -> None:
        context = ssl_context or httpx.create_ssl_context(verify=True, trust_env=False)
        if context.verify_mode != ssl.CERT_REQUIRED or not context.check_hostname:
            raise ValueError("webhook TLS must verify the certificate and the host name")
        # No proxy argument and trust_env=False: an HTTPS_PROXY/ALL_PROXY in the environment
        # would connect to the proxy instead, bypassing the check.
        super().__init__(verify=context, trust_env=False, limits=limits)
        # httpx.HTTPTransport takes no network backend, so its pool (unused so far: it has no
        # connections) is replaced by one that connects through the check. If httpx ever
        # renames the attribute, fail here rather than connect unchecked.
        if not isinstance(getattr(self, "_pool", None), httpcore.ConnectionPool):
            raise RuntimeError("httpx.HTTPTransport no longer keeps its pool in _pool")
        self._pool = httpcore.ConnectionPool(
            ssl_context=context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=PinnedBackend(check),
        )
