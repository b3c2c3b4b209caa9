"""A broker that ends every attempt before the link is connected sees the attempts spaced by the
backoff schedule, not one per loop round: a connection closed before CONNACK (what a TLS 1.3
broker refusing the client certificate looks like to the client) and a CONNACK refusal alike.

The broker here is a socket server on a thread of the test, driven by the link the way the
daemon drives it with several links: select, `drain`, `step(0)`."""

from __future__ import annotations

import select
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from structlog.testing import capture_logs

from edged.config.model import BrokerConfig
from edged.mqtt.link import BrokerLink

#: MQTT 5 CONNACK: no session, reason 0x87 (not authorized), no properties
_REFUSAL = bytes((0x20, 3, 0, 0x87, 0))
MIN_DELAY, MAX_DELAY, JITTER = 0.05, 0.2, 0.2


class Refuser:
    """Accepts each connection, reads its CONNECT, then closes it (optionally after a
    CONNACK refusal); counts the connections."""

    def __init__(self, reply: bytes) -> None:
        self.reply = reply
        self.accepted = 0
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            with conn:
                conn.recv(4096)
                if self.reply:
                    conn.sendall(self.reply)


@pytest.fixture(params=[b"", _REFUSAL], ids=["closed-before-connack", "connack-refusal"])
def refuser(request: pytest.FixtureRequest) -> Iterator[Refuser]:
    server = Refuser(request.param)
    yield server
    server.sock.close()


def most_attempts(seconds: float) -> int:
    """Attempts within `seconds` when every wait is as short as the jitter allows."""
    at, delay, count = 0.0, MIN_DELAY, 1
    while True:
        at += delay * (1 - JITTER)
        if at > seconds:
            return count
        count += 1
        delay = min(delay * 2, MAX_DELAY)


def test_a_refusing_broker_sees_the_backoff_schedule(refuser: Refuser) -> None:
    """Over 0.6 s with delays of 0.05 s doubling up to 0.2 s, the broker sees at most the
    schedule's attempts (6 at the shortest jitter; a link that skipped the backoff made ~55),
    and every failed attempt is logged as `broker_unreachable`."""
    broker = BrokerConfig(
        host="127.0.0.1",
        port=refuser.port,
        reconnect_min_delay=MIN_DELAY,
        reconnect_max_delay=MAX_DELAY,
    )
    link = BrokerLink(
        broker,
        client_id="backoff",
        status_topic="s",
        status={},
        subscriptions=[],
        on_message=lambda _m: None,
    )
    seconds = 0.6
    with capture_logs() as logs:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            wait = min(0.01, link.next_event(time.monotonic()))
            sock = link.socket()
            if sock is not None:
                select.select([sock], [], [], wait)
            else:
                time.sleep(wait)
            link.drain(100)
            link.step(0)
        link.close(0.1)
    failures = [e for e in logs if e["event"] == "broker_unreachable"]
    assert 3 <= refuser.accepted <= most_attempts(seconds), refuser.accepted
    # the last attempt may still be under way when the time is up
    assert refuser.accepted - 1 <= len(failures) <= refuser.accepted, failures
    assert not link.connected
