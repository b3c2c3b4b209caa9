"""A minimal MQTT 3.1.1 client on a plain socket, for the load generator and the receiver.

The harness must not be what limits a contender: paho spends ~15 µs of Python per message, which
on a two-core machine takes CPU from the broker and the contender. Prebuilt PUBLISH packets
written with one `sendall`, and a receive loop that only splits packets, cost a fraction of that.
Only what the harness needs is here: CONNECT (clean session, no keepalive), SUBSCRIBE, PUBLISH at
QoS 0/1 with PUBACKs, DISCONNECT.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Callable

from edged.mqtt._paho import remaining_length

_PUBLISH = 0x30
_PUBACK = 0x40
_SUBACK = 0x90
_CONNACK = 0x20


def _string(text: bytes) -> bytes:
    return struct.pack("!H", len(text)) + text


def _packet(header: int, body: bytes) -> bytes:
    return bytes([header]) + remaining_length(len(body)) + body


def publish_packet(topic: bytes, payload: bytes, qos: int, mid: int) -> bytes:
    """One PUBLISH; `mid` (1..65535) is used only at QoS 1."""
    body = _string(topic) + (struct.pack("!H", mid) if qos else b"") + payload
    return _packet(_PUBLISH | (qos << 1), body)


def next_mid(mid: int) -> int:
    return mid % 65535 + 1


class Connection:
    """One connected client; `reader()` starts a thread that handles what the broker sends."""

    def __init__(self, host: str, port: int, client_id: str) -> None:
        self.sock = socket.create_connection((host, port), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        variable = _string(b"MQTT") + bytes([4, 0x02]) + struct.pack("!H", 0)
        self.sock.sendall(_packet(0x10, variable + _string(client_id.encode())))
        header, body = self._read_one()
        if header != _CONNACK or body[1] != 0:
            raise ConnectionError(f"broker refused the connection: {header:#x} {body!r}")
        self._buffer = bytearray()
        self._thread: threading.Thread | None = None
        self.closed = False

    def _recv_exact(self, n: int) -> bytes:
        data = bytearray()
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("broker closed the connection")
            data += chunk
        return bytes(data)

    def _read_one(self) -> tuple[int, bytes]:
        header = self._recv_exact(1)[0]
        length, shift = 0, 0
        while True:
            byte = self._recv_exact(1)[0]
            length |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        return header, self._recv_exact(length)

    def subscribe(self, topic: str, qos: int) -> None:
        """Subscribe and wait for the SUBACK (call before `reader`)."""
        body = struct.pack("!H", 1) + _string(topic.encode()) + bytes([qos])
        self.sock.sendall(_packet(0x82, body))
        header, body = self._read_one()
        if header != _SUBACK or body[-1] == 0x80:
            raise ConnectionError(f"subscription to {topic} refused")

    def send(self, data: bytes | bytearray | memoryview) -> None:
        self.sock.sendall(data)

    def reader(self, on_publish: Callable[[float, list[tuple[bytes, bytes]]], None]) -> None:
        """Read in a thread; each chunk's PUBLISHes go to `on_publish(time, [(topic, payload)])`.

        QoS 1 deliveries are acknowledged once the chunk is handed over; PUBACKs for our own
        publishes are read and ignored.
        """
        self.sock.settimeout(None)
        self._thread = threading.Thread(target=self._read_loop, args=(on_publish,), daemon=True)
        self._thread.start()

    def _read_loop(self, on_publish: Callable[[float, list[tuple[bytes, bytes]]], None]) -> None:
        buf = self._buffer
        recv = self.sock.recv
        clock = time.monotonic
        while True:
            try:
                chunk = recv(1 << 20)
            except OSError:
                return
            if not chunk:
                return
            now = clock()
            buf += chunk
            messages: list[tuple[bytes, bytes]] = []
            acks = bytearray()
            pos, end = 0, len(buf)
            while pos + 2 <= end:
                header = buf[pos]
                length, shift, at = 0, 0, pos + 1
                while at < end:
                    byte = buf[at]
                    at += 1
                    length |= (byte & 0x7F) << shift
                    shift += 7
                    if not byte & 0x80:
                        break
                else:
                    break  # the length itself is incomplete
                if at + length > end:
                    break
                if header & 0xF0 == _PUBLISH:
                    tlen = (buf[at] << 8) | buf[at + 1]
                    topic = bytes(buf[at + 2 : at + 2 + tlen])
                    start = at + 2 + tlen
                    if header & 0x06:
                        acks += bytes([_PUBACK, 2]) + buf[start : start + 2]
                        start += 2
                    messages.append((topic, bytes(buf[start : at + length])))
                pos = at + length
            del buf[:pos]
            if messages:
                on_publish(now, messages)
            if acks:
                try:
                    self.sock.sendall(acks)
                except OSError:
                    return

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            self.sock.sendall(b"\xe0\x00")
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        if self._thread is not None:
            self._thread.join(2)
