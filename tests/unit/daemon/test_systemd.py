"""sd_notify against real Unix datagram sockets: the protocol and the daemon's intents."""

from __future__ import annotations

import os
import socket
import uuid

import pytest

from edged.daemon.systemd import Notifier


def test_notify_reaches_a_path_socket(notify_socket: tuple[str, socket.socket]) -> None:
    """With NOTIFY_SOCKET a file path, the fields arrive as one KEY=value datagram."""
    address, sock = notify_socket
    notifier = Notifier(address)
    assert notifier.notify(READY=1, STATUS="serving")
    assert sock.recv(4096) == b"READY=1\nSTATUS=serving"
    notifier.close()


def test_notify_reaches_an_abstract_socket() -> None:
    """An address starting with '@' is the abstract namespace, as systemd writes it."""
    name = f"edged-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(b"\0" + name.encode())
    sock.settimeout(5)
    try:
        notifier = Notifier(f"@{name}")
        assert notifier.notify(STOPPING=1)
        assert sock.recv(4096) == b"STOPPING=1"
        notifier.close()
    finally:
        sock.close()


def test_without_systemd_notify_does_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Outside systemd (no NOTIFY_SOCKET) notifications are skipped, not errors."""
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    notifier = Notifier()
    assert not notifier.enabled
    assert notifier.notify(READY=1) is False


def test_intents_send_what_systemd_expects(notify_socket: tuple[str, socket.socket]) -> None:
    """ready, reloading, stopping and watchdog each send systemd's own fields."""
    address, sock = notify_socket
    notifier = Notifier(address)
    notifier.ready("2 pipelines")
    notifier.reloading()
    notifier.stopping()
    notifier.watchdog()
    got = [sock.recv(4096) for _ in range(4)]
    notifier.close()
    assert got == [
        b"READY=1\nSTATUS=2 pipelines",
        b"RELOADING=1\nSTATUS=reloading the config",
        b"STOPPING=1\nSTATUS=stopping",
        b"WATCHDOG=1",
    ]


def test_watchdog_interval_is_half_of_systemds(
    notify_socket: tuple[str, socket.socket], monkeypatch: pytest.MonkeyPatch
) -> None:
    """WatchdogSec=10 (WATCHDOG_USEC=10000000) means a ping every 5 s; another PID's is not ours."""
    address, _ = notify_socket
    monkeypatch.setenv("WATCHDOG_USEC", "10000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert Notifier(address).watchdog_interval() == 5.0
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))
    assert Notifier(address).watchdog_interval() is None
    monkeypatch.delenv("WATCHDOG_PID")
    monkeypatch.setenv("WATCHDOG_USEC", "soon")
    assert Notifier(address).watchdog_interval() is None
