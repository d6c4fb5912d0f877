"""Webhook connections go only to the addresses that were checked (DNS rebinding).

Real HTTP(S) servers on 127.0.0.1; DNS is the one thing replaced (``fake_dns``), because no
test can make a real name change its answer.
"""

from __future__ import annotations

import datetime
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from runtime.domain.errors import Unavailable
from runtime.triggers.batch import FailureKind, dead_letter_for, process_records
from runtime.triggers.event_shape import KafkaRecord
from runtime.triggers.pinned_transport import PinnedTransport
from runtime.triggers.webhook import (
    RetryPolicy,
    WebhookConfig,
    WebhookDeliverer,
    checked_addresses,
    validate_webhook_url,
)
from tests.integration.triggers_delivery.conftest import (
    DNS_TRY_AGAIN,
    FakeDns,
    WebhookReceiver,
    serving,
)

FAST = RetryPolicy(max_attempts=3, base_delay_s=0.01, max_delay_s=0.02, max_total_s=10, timeout_s=2)
PUBLIC = "93.184.215.14"


def record() -> KafkaRecord:
    return KafkaRecord("ns.frames", 0, 7, 1_700_000_000_000, value=b'{"frame": 7}')


def deliverer(url: str, *, allow_private: bool) -> WebhookDeliverer:
    return WebhookDeliverer(WebhookConfig(url=url, allow_private=allow_private, retry=FAST))


def named(server: WebhookReceiver, host: str) -> str:
    """The server's URL with ``host`` in place of its address."""
    parts = urlsplit(server.url)
    return f"{parts.scheme}://{host}:{parts.port}{parts.path}"


def test_connects_to_the_checked_address_not_a_second_lookup(
    webhook_server: WebhookReceiver, fake_dns: FakeDns
) -> None:
    # The first answer is the server; any later lookup would get 127.0.0.2, where nothing
    # listens. A client that resolved the name again to connect would fail.
    fake_dns.answer("hooks.invalid", ["127.0.0.1"], ["127.0.0.2"])
    url = named(webhook_server, "hooks.invalid")
    with deliverer(url, allow_private=True) as d:
        result = d.deliver_one(record())
    assert result.ok, result.reason
    assert fake_dns.lookups["hooks.invalid"] == 1
    (request,) = webhook_server.requests
    port = urlsplit(url).port
    assert request.headers["host"] == f"hooks.invalid:{port}"


def test_answer_rebound_to_loopback_after_the_check_is_refused(
    webhook_server: WebhookReceiver, fake_dns: FakeDns
) -> None:
    # Public when the trigger's URL is checked, the fabric's own host when delivering.
    fake_dns.answer("rebind.invalid", [PUBLIC], ["127.0.0.1"])
    url = named(webhook_server, "rebind.invalid")
    validate_webhook_url(url, allow_private=False)
    with deliverer(url, allow_private=False) as d:
        outcome = process_records([record()], d.deliver_one)
    assert webhook_server.requests == []
    (failure,) = outcome.failures
    assert failure.kind is FailureKind.PERMANENT and failure.attempts == 1
    letter = dead_letter_for(failure, trigger_id="t-1")
    assert letter.reason == (
        "refused: webhook host 'rebind.invalid' resolves to 127.0.0.1, which is a loopback address"
    )


def test_one_internal_address_among_public_ones_refuses_the_host(
    webhook_server: WebhookReceiver, fake_dns: FakeDns
) -> None:
    fake_dns.answer("mixed.invalid", [PUBLIC, "127.0.0.1"])
    with deliverer(named(webhook_server, "mixed.invalid"), allow_private=False) as d:
        result = d.deliver_one(record())
    assert result.permanent and "resolves to 127.0.0.1" in result.reason
    assert webhook_server.requests == []


def test_metadata_address_is_refused_at_connect_even_locally(
    webhook_server: WebhookReceiver, fake_dns: FakeDns
) -> None:
    fake_dns.answer("meta.invalid", ["127.0.0.1"], ["169.254.169.254"])
    validate_webhook_url(named(webhook_server, "meta.invalid"), allow_private=True)
    with deliverer(named(webhook_server, "meta.invalid"), allow_private=True) as d:
        result = d.deliver_one(record())
    assert result.permanent and result.attempts == 1
    assert result.reason.endswith(
        "resolves to 169.254.169.254, which is an instance metadata address"
    )
    assert webhook_server.requests == []


def test_checked_addresses_once_each_in_resolver_order(fake_dns: FakeDns) -> None:
    fake_dns.answer("two.invalid", ["10.0.0.2", "10.0.0.1", "10.0.0.2"])
    assert [str(a) for a in checked_addresses("two.invalid", 80, allow_private=True)] == [
        "10.0.0.2",
        "10.0.0.1",
    ]


def test_environment_proxy_is_not_used(
    webhook_server: WebhookReceiver, fake_dns: FakeDns, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as proxy:
        proxy.bind(("127.0.0.1", 0))
        proxy.listen()
        proxy.setblocking(False)
        proxy_url = f"http://127.0.0.1:{proxy.getsockname()[1]}"
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "all_proxy"):
            monkeypatch.setenv(name, proxy_url)
        for name in ("NO_PROXY", "no_proxy"):
            monkeypatch.delenv(name, raising=False)
        fake_dns.answer("hooks.invalid", ["127.0.0.1"])
        with deliverer(named(webhook_server, "hooks.invalid"), allow_private=True) as d:
            assert d.deliver_one(record()).ok
        with pytest.raises(BlockingIOError):
            proxy.accept()  # nobody connected to the proxy
    assert len(webhook_server.requests) == 1


# --------------------------------------------------------------------------------- TLS


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(
    subject: str, issuer: str, key: ec.EllipticCurvePrivateKey
) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
    )


class ThrowawayCa:
    """A throwaway CA and a server certificate from it for one DNS name (no IP address)."""

    def __init__(self, tmp_path: Path, dns_name: str) -> None:
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca = (
            _certificate("octopus test CA", "octopus test CA", ca_key)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(ca_key, hashes.SHA256())
        )
        key = ec.generate_private_key(ec.SECP256R1())
        leaf = (
            _certificate(dns_name, "octopus test CA", key)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(dns_name)]), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        self.ca_pem = ca.public_bytes(serialization.Encoding.PEM).decode()
        self.cert_file = tmp_path / "server.pem"
        self.key_file = tmp_path / "server.key"
        self.cert_file.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
        self.key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cadata=self.ca_pem)


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[WebhookReceiver, ThrowawayCa, list[str | None]]]:
    """An HTTPS receiver whose certificate names only ``hooks.invalid``; SNI names seen."""
    ca = ThrowawayCa(tmp_path, "hooks.invalid")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(ca.cert_file, ca.key_file)
    sni: list[str | None] = []
    context.sni_callback = lambda _sock, name, _ctx: sni.append(name)
    with serving(context) as receiver:
        yield receiver, ca, sni


def test_https_sends_the_host_name_and_verifies_the_certificate_against_it(
    tls_server: tuple[WebhookReceiver, ThrowawayCa, list[str | None]], fake_dns: FakeDns
) -> None:
    server, ca, sni = tls_server
    fake_dns.answer("hooks.invalid", ["127.0.0.1"])
    fake_dns.answer("other.invalid", ["127.0.0.1"])
    check = lambda host, port: checked_addresses(host, port, allow_private=True)  # noqa: E731
    with httpx.Client(transport=PinnedTransport(check, ssl_context=ca.client_context())) as client:
        # Connected to 127.0.0.1, which the certificate does not name: verified by host name.
        reply = client.post(named(server, "hooks.invalid"), content=b"{}")
        assert reply.status_code == 200
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            client.post(named(server, "other.invalid"), content=b"{}")
    assert sni == ["hooks.invalid", "other.invalid"]
    (request,) = server.requests
    assert request.headers["host"] == f"hooks.invalid:{urlsplit(server.url).port}"


def test_delivery_refuses_a_certificate_it_cannot_verify(
    tls_server: tuple[WebhookReceiver, ThrowawayCa, list[str | None]], fake_dns: FakeDns
) -> None:
    # The deliverer trusts the public roots only: the test CA's certificate must fail.
    server, _, sni = tls_server
    fake_dns.answer("hooks.invalid", ["127.0.0.1"])
    with deliverer(named(server, "hooks.invalid"), allow_private=True) as d:
        result = d.deliver_one(record())
    assert result.retryable and "CERTIFICATE_VERIFY_FAILED" in result.reason
    assert sni and set(sni) == {"hooks.invalid"}
    assert server.requests == []


def test_a_context_that_does_not_verify_is_refused() -> None:
    unverified = ssl.create_default_context()
    unverified.check_hostname = False
    unverified.verify_mode = ssl.CERT_NONE
    with pytest.raises(ValueError, match="must verify"):
        PinnedTransport(lambda host, port: [], ssl_context=unverified)


def test_a_resolver_that_cannot_answer_now_is_retried_not_refused(
    webhook_server: WebhookReceiver, fake_dns: FakeDns
) -> None:
    # EAI_AGAIN says nothing about the host: the attempt is retried and the next lookup works.
    fake_dns.answer("flaky.invalid", DNS_TRY_AGAIN, ["127.0.0.1"])
    with deliverer(named(webhook_server, "flaky.invalid"), allow_private=True) as d:
        result = d.deliver_one(record())
    assert result.ok and result.attempts == 2
    assert len(webhook_server.requests) == 1


def test_a_resolver_that_never_answers_ends_retryable_not_dead_for_good(
    webhook_server: WebhookReceiver, fake_dns: FakeDns
) -> None:
    fake_dns.answer("down.invalid", DNS_TRY_AGAIN)
    with deliverer(named(webhook_server, "down.invalid"), allow_private=True) as d:
        result = d.deliver_one(record())
    assert not result.ok and result.retryable and result.attempts == FAST.max_attempts
    assert result.reason.startswith("dns: ") and "try again" in result.reason
    assert webhook_server.requests == []


def test_a_create_that_meets_a_resolver_failure_is_told_to_retry(fake_dns: FakeDns) -> None:
    fake_dns.answer("later.invalid", DNS_TRY_AGAIN)
    with pytest.raises(Unavailable) as raised:
        validate_webhook_url("https://later.invalid/hook", allow_private=False)
    assert raised.value.status == 503 and raised.value.code == "dns_unavailable"
