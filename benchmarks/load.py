"""The load: sensor payloads, a publisher (flood or fixed rate) and a receiver that times outputs.

Every payload carries its reading as `"value":NN.FFFFFFFFF`. The integer part decides the
outcome: 20..29 or 40..49, alternating in runs of ten, so a threshold of 35 passes exactly half.
The nine fraction digits carry the microseconds since the phase began at which the message was
sent (at a fixed rate) or its sequence number (in a flood). Every workload's output keeps that
text (pass-through forwards the payload, threshold alerts quote the value as received), so the
receiver reads each output's send time from the output itself.
"""

from __future__ import annotations

import json
import re
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from benchmarks.wire import Connection, next_mid, publish_packet

LIMIT = 35
SENSORS = 8
_VALUE = re.compile(rb'"value":\d+\.(\d+)')
_COUNT = re.compile(rb'"count":(\d+)')


def reading(index: int) -> int:
    """The integer part of message `index`: half of every twenty lie above LIMIT."""
    return (40 if (index // 10) % 2 else 20) + index % 10


def passes(index: int) -> bool:
    return reading(index) > LIMIT


class Payloads:
    """Payloads of one size; the fraction digits are filled in per message."""

    def __init__(self, size: int) -> None:
        self.size = size
        fixed = '{"sensor":"s0","seq":1000000,"unit":"C","value":20.000000000}'
        room = size - len(fixed)
        middle, unit = "", "C"
        if room >= 120:
            # A larger reading, like a gateway's full sensor report: more fields, then a note.
            extra = (
                '"site":"greenhouse-1","fw":"2.4.1","rssi":-67,"battery":3.71,'
                '"readings":[21.5,21.4,21.6],'
            )
            middle = extra + '"note":"' + "x" * (room - len(extra) - len('"note":"",')) + '",'
        elif room >= len('"site":"",'):
            middle = '"site":"' + "g" * (room - len('"site":"",')) + '",'
        else:
            unit = "degC"[-1 - room :]  # 64 bytes: "degC"
        self._template = (
            '{"sensor":"s%d","seq":%07d,"unit":"' + unit + '",' + middle + '"value":%d.%09d}'
        )
        self.example = self.build(0, 0)

    def build(self, index: int, fraction: int) -> bytes:
        # seq: seven digits without a leading zero, so every payload of a size has one length
        values = (index % SENSORS, 1_000_000 + index % 9_000_000, reading(index), fraction % 10**9)
        return (self._template % values).encode()


def sensor_topics(prefix: str) -> Callable[[int], bytes]:
    """Message i goes to PREFIX/in/s<i mod 8>: eight sensors, so eight averaging windows."""
    topics = [f"{prefix}/in/s{i}".encode() for i in range(SENSORS)]
    return lambda index: topics[index % SENSORS]


class Publisher:
    """Publishes on its own connection; PUBACKs (QoS 1) are read and dropped by a thread."""

    def __init__(self, host: str, port: int, name: str) -> None:
        self.conn = Connection(host, port, name)
        self.conn.reader(lambda _t, _m: None)
        self._mid = 0

    def packet(self, topic: bytes, payload: bytes, qos: int) -> bytes:
        self._mid = next_mid(self._mid)
        return publish_packet(topic, payload, qos, self._mid)

    def flood(self, packets: list[bytes]) -> float:
        """Send everything as fast as the socket takes it; returns when sending began."""
        started = time.monotonic()
        chunk: list[bytes] = []
        size = 0
        for packet in packets:
            chunk.append(packet)
            size += len(packet)
            if size >= 1 << 18:
                self.conn.send(b"".join(chunk))
                chunk, size = [], 0
        if chunk:
            self.conn.send(b"".join(chunk))
        return started

    def paced(
        self,
        rate: float,
        count: int,
        build: Callable[[int, int], bytes],
        base: float,
    ) -> None:
        """Send `count` messages at `rate` per second, in batches of one millisecond's worth."""
        sent = 0
        while sent < count:
            now = time.monotonic()
            due = min(count, int((now - base) * rate) + 1)
            if due > sent:
                stamp = int((now - base) * 1e6)
                self.conn.send(b"".join(build(i, stamp) for i in range(sent, due)))
                sent = due
            else:
                time.sleep(max(0.0, base + sent / rate - now))

    def close(self) -> None:
        self.conn.close()


class PacketMaker:
    """Builds packet `index` with the given fraction digits; a callable for `Publisher.paced`."""

    def __init__(
        self,
        publisher: Publisher,
        topic: Callable[[int], bytes],
        payloads: Payloads,
        qos: int,
    ) -> None:
        self.publisher = publisher
        self.topic = topic
        self.payloads = payloads
        self.qos = qos

    def __call__(self, index: int, fraction: int) -> bytes:
        return self.publisher.packet(
            self.topic(index), self.payloads.build(index, fraction), self.qos
        )


class Receiver:
    """Subscribes to the outputs and keeps every (arrival time, topic, payload).

    `weigh_counts` makes each output count for the readings it summarises (windowed average);
    otherwise each output counts one.
    """

    def __init__(self, host: str, port: int, name: str, pattern: str, qos: int) -> None:
        self.conn = Connection(host, port, name)
        self.conn.subscribe(pattern, qos)
        self.weigh_counts = False
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self.chunks: list[tuple[float, list[tuple[bytes, bytes]]]] = []
        self.count = 0
        self.weight = 0
        self.last = 0.0
        self.conn.reader(self._on_publish)

    def _on_publish(self, now: float, messages: list[tuple[bytes, bytes]]) -> None:
        weight = len(messages)
        if self.weigh_counts:
            weight = sum(int(m[1]) for _, p in messages if (m := _COUNT.search(p)))
        with self._changed:
            self.chunks.append((now, messages))
            self.count += len(messages)
            self.weight += weight
            self.last = now
            self._changed.notify_all()

    def reset(self) -> None:
        with self._lock:
            self.chunks = []
            self.count = 0
            self.weight = 0

    def wait_for(self, weight: int, timeout: float) -> bool:
        """True once the outputs weigh `weight`; False if they do not within `timeout`."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while self.weight < weight:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(min(left, 0.5))
        return True

    def wait_quiet(self, quiet: float, timeout: float) -> None:
        """Wait until nothing has arrived for `quiet` seconds (at most `timeout`)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                last = self.last
            idle = time.monotonic() - last
            if idle >= quiet:
                return
            time.sleep(quiet - idle)

    def latencies_ms(self, base: float) -> list[float]:
        """End-to-end latency of every output whose payload carries a send time."""
        out: list[float] = []
        with self._lock:
            chunks = list(self.chunks)
        for arrived, messages in chunks:
            at_us = (arrived - base) * 1e6
            for _, payload in messages:
                found = _VALUE.search(payload)
                if found:
                    digits = found[1].ljust(9, b"0")[:9]
                    out.append((at_us - int(digits)) / 1000)
        return out

    def payloads(self) -> list[bytes]:
        with self._lock:
            return [p for _, messages in self.chunks for _, p in messages]

    def close(self) -> None:
        self.conn.close()


@dataclass
class Percentiles:
    p50: float
    p99: float
    samples: int


def percentiles(values: list[float]) -> Percentiles | None:
    if len(values) < 2:
        return None
    ordered = sorted(values)
    q = statistics.quantiles(ordered, n=100, method="inclusive")
    return Percentiles(round(q[49], 2), round(q[98], 2), len(ordered))


def summary_count(payload: bytes) -> int:
    """How many readings one windowed-average summary covers."""
    return int(json.loads(payload)["count"])
