"""MQTT 5 brokers other than mosquitto, as real processes on a free loopback port, with the
interface of `edged.mqtt.mosquitto.PrivateBroker` (host, port, start, halt, stop, pid, log, a
context manager), so that a test written for one runs on the others.

MochiBroker   Mochi MQTT v2 (Go), tests/brokers/mochi: a small main around the server library
HiveMQBroker  HiveMQ Community Edition (Java), tests/brokers/hivemq: the embedded edition
make_broker   one of them, or a mosquitto PrivateBroker, by name, with the options they share

scripts/brokers.sh builds them once per machine into a cache outside the clone (scripts/test
runs it first); `need_build` finds a build there, or skips the test with the reason it is
missing (no toolchain, or not built yet). EDGED_NO_OTHER_BROKERS=1 skips them all.

The options they share with PrivateBroker:

- `persistence`: sessions, subscriptions, queued and retained messages are kept on disk, so
  `halt()` and `start()` bring the broker back as it left (mochi: its bolt storage hook;
  HiveMQ: its file persistence). Without it a restart forgets everything.
- `max_inflight_messages`: the broker's Receive Maximum, announced in CONNACK: how many QoS 1/2
  publishes a client may have unacknowledged to it. 0: 65535, the most MQTT allows. (Which the
  broker sends a client is bounded by that client's own Receive Maximum, under MQTT 5.)
- `max_queued_messages`: QoS 1/2 messages kept per client (offline or behind its window);
  0: as many as the broker can (mochi: 65535, its packet identifiers; HiveMQ: 10 million).
- `max_packet_size`: the Maximum Packet Size the broker enforces (0: its default, none).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

import pytest

from edged.errors import EdgedError
from edged.mqtt.mosquitto import PrivateBroker, free_port
from tests.helpers.paths import ROOT

SOURCES = ROOT / "tests" / "brokers"
NO_OTHER_BROKERS_ENV = "EDGED_NO_OTHER_BROKERS"
#: the names scripts/brokers.sh builds
OTHER_BROKERS = ("mochi", "hivemq")
#: what each is, for test ids and messages (the versions are those of go.mod and pom.xml)
DESCRIPTIONS = {
    "mosquitto": "mosquitto 2.0",
    "mochi": "Mochi MQTT 2.7.9",
    "hivemq": "HiveMQ CE 2025.5",
}


class Broker(Protocol):
    """What the tests use of a broker, whichever it is."""

    host: str
    port: int

    def start(self) -> Any: ...
    def halt(self, sig: int = ...) -> None: ...
    def stop(self) -> None: ...
    @property
    def log(self) -> str: ...
    @property
    def pid(self) -> int | None: ...


def cache_dir() -> Path:
    """Where scripts/brokers.sh keeps the builds (the same rule as there)."""
    if os.environ.get("EDGED_BROKERS_CACHE"):
        return Path(os.environ["EDGED_BROKERS_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "edged" / "brokers"


def source_hash(name: str) -> str:
    """The hash scripts/brokers.sh names a build by: `sha256sum` of each source file, sorted by
    path as `LC_ALL=C sort` does (build outputs left out), hashed again; 16 hex digits."""
    directory = SOURCES / name
    paths = sorted(
        (
            "./" + path.relative_to(directory).as_posix()
            for path in directory.rglob("*")
            if path.is_file() and path.relative_to(directory).parts[0] != "target"
        ),
        key=lambda p: p.encode(),
    )
    listing = "".join(
        f"{hashlib.sha256((directory / p).read_bytes()).hexdigest()}  {p}\n" for p in paths
    )
    return hashlib.sha256(listing.encode()).hexdigest()[:16]


def need_build(name: str) -> Path:
    """The folder of `name`'s build for its current sources, or skip the test saying why."""
    if os.environ.get(NO_OTHER_BROKERS_ENV):
        pytest.skip(f"{NO_OTHER_BROKERS_ENV} is set: no test against {DESCRIPTIONS[name]}")
    digest = source_hash(name)
    built = cache_dir() / f"{name}-{digest}"
    if built.is_dir():
        return built
    why = cache_dir() / f"{name}-{digest}.unavailable"
    if why.is_file():
        pytest.skip(f"{DESCRIPTIONS[name]} could not be built here: {why.read_text().strip()}")
    pytest.skip(
        f"{DESCRIPTIONS[name]} is not built for these sources: run scripts/brokers.sh "
        "(scripts/test does), which builds it once per machine"
    )


class _ProcessBroker:
    """A broker process of the tests' own, with its files in a private directory."""

    name = ""
    #: how long it may take to listen, and to stop on SIGTERM
    start_timeout = 10.0
    stop_timeout = 10.0

    def __init__(
        self,
        port: int | None = None,
        *,
        persistence: bool = False,
        max_inflight_messages: int = 0,
        max_queued_messages: int = 0,
        max_packet_size: int = 0,
    ) -> None:
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.persistence = persistence
        self.max_inflight_messages = max_inflight_messages
        self.max_queued_messages = max_queued_messages
        self.max_packet_size = max_packet_size
        self.tls = False
        self._proc: subprocess.Popen[bytes] | None = None
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self._log: Path | None = None

    def __repr__(self) -> str:
        return f"<{DESCRIPTIONS[self.name]} on {self.host}:{self.port}>"

    @property
    def receive_maximum(self) -> int:
        """What the broker announces as its Receive Maximum."""
        return self.max_inflight_messages or 65535

    def _command(self, directory: Path) -> list[str]:
        raise NotImplementedError

    def start(self) -> _ProcessBroker:
        if self._dir is None:
            self._dir = tempfile.TemporaryDirectory(prefix=f"edged-{self.name}-")
        directory = Path(self._dir.name)
        command = self._command(directory)
        # Its log goes to a file, not a pipe: nobody reads a pipe during a long run, and a full
        # pipe would stall the broker. Appended to across restarts.
        self._log = directory / f"{self.name}.log"
        with open(self._log, "ab") as sink:
            self._proc = subprocess.Popen(
                command, stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                err = self.log
                self.stop()
                raise EdgedError(f"{self.name} exited at start: {err.strip()[-3000:]}")
            try:
                socket.create_connection((self.host, self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        err = self.log
        self.stop()
        raise EdgedError(
            f"{self.name} did not listen on port {self.port} within {self.start_timeout} s: "
            f"{err.strip()[-3000:]}"
        )

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def log(self) -> str:
        """What the broker wrote, over all its starts."""
        if self._log is None or not self._log.exists():
            return ""
        return self._log.read_text(errors="replace")

    def halt(self, sig: int = signal.SIGTERM) -> None:
        """Stop the broker but keep its files, for `start()` to bring it back as it left."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(sig)
            try:
                self._proc.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None

    def stop(self) -> None:
        """Stop the broker and remove its files: nothing of it is kept, so it is killed
        (SIGKILL) rather than asked to save anything (a JVM takes seconds for that)."""
        self.halt(signal.SIGKILL)
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def __enter__(self) -> _ProcessBroker:
        return self.start()

    def __exit__(
        self,
        _t: type[BaseException] | None,
        _e: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        self.stop()


class MochiBroker(_ProcessBroker):
    """Mochi MQTT v2.7.9 (tests/brokers/mochi/main.go): MQTT 5, 3.1.1 and 3.1."""

    name = "mochi"

    def _command(self, directory: Path) -> list[str]:
        binary = need_build("mochi") / "mochi-broker"
        command = [
            str(binary),
            "-listen",
            f"{self.host}:{self.port}",
            "-receive-maximum",
            str(self.receive_maximum),
            "-max-queued",
            str(self.max_queued_messages or 65535),
            "-max-packet-size",
            str(self.max_packet_size),
            "-log-level",
            "warn",
        ]
        if self.persistence:
            data = directory / "data"
            data.mkdir(exist_ok=True)
            command += ["-data", str(data)]
        return command


# A listener on loopback only; anonymous usage statistics off (no calls out); the limits of
# the options. Without persistence, everything is in memory and a restart starts empty.
_HIVEMQ_CONFIG = """\
<?xml version="1.0"?>
<hivemq>
  <listeners>
    <tcp-listener>
      <port>{port}</port>
      <bind-address>{host}</bind-address>
    </tcp-listener>
  </listeners>
  <mqtt>
    <queued-messages>
      <max-queue-size>{queued}</max-queue-size>
      <strategy>discard</strategy>
    </queued-messages>
    <receive-maximum>
      <server-receive-maximum>{receive_maximum}</server-receive-maximum>
    </receive-maximum>
{packets}  </mqtt>
  <persistence>
    <mode>{mode}</mode>
  </persistence>
  <anonymous-usage-statistics>
    <enabled>false</enabled>
  </anonymous-usage-statistics>
</hivemq>
"""
_HIVEMQ_PACKETS = """\
    <packets>
      <max-packet-size>{size}</max-packet-size>
    </packets>
"""
# Warnings and errors only, to the process's output (a file): INFO says a few lines per start.
_HIVEMQ_LOGBACK = """\
<configuration scan="false">
  <appender name="CONSOLE" class="ch.qos.logback.core.ConsoleAppender">
    <encoder><pattern>%d %level - %msg%n%ex</pattern></encoder>
  </appender>
  <root level="WARN"><appender-ref ref="CONSOLE"/></root>
  <logger name="jetbrains.exodus" level="ERROR"/>
  <logger name="oshi" level="ERROR"/>
</configuration>
"""


class HiveMQBroker(_ProcessBroker):
    """HiveMQ Community Edition 2025.5, embedded (tests/brokers/hivemq): MQTT 5, 3.1.1, 3.1.

    A JVM: it listens ~3 s after its start, and may take a few seconds to stop."""

    name = "hivemq"
    start_timeout = 60.0
    stop_timeout = 30.0

    def _command(self, directory: Path) -> list[str]:
        build = need_build("hivemq")
        java = shutil.which("java")
        if java is None:
            pytest.skip("HiveMQ CE needs java (Java 11 or newer), which is not on PATH")
        config = directory / "conf"
        config.mkdir(exist_ok=True)
        packets = _HIVEMQ_PACKETS.format(size=self.max_packet_size) if self.max_packet_size else ""
        (config / "config.xml").write_text(
            _HIVEMQ_CONFIG.format(
                host=self.host,
                port=self.port,
                queued=self.max_queued_messages or 10_000_000,
                receive_maximum=self.receive_maximum,
                packets=packets,
                mode="file" if self.persistence else "in-memory",
            )
        )
        (config / "logback.xml").write_text(_HIVEMQ_LOGBACK)
        return [
            java,
            "-Xms64m",
            "-Xmx1g",
            "-jar",
            str(build / "hivemq-broker.jar"),
            str(config),
            str(directory / "data"),
            str(directory / "extensions"),
        ]


def make_broker(name: str, **options: Any) -> Broker:
    """A broker (start it, or use it in `with`) of that name: mosquitto, mochi or hivemq.
    `options`: persistence, max_inflight_messages, max_queued_messages, max_packet_size."""
    if name == "mosquitto":
        size = options.pop("max_packet_size", 0)
        if size:
            options["extra_conf"] = f"max_packet_size {size}\n" + options.get("extra_conf", "")
        return PrivateBroker(**options)
    kinds: dict[str, type[_ProcessBroker]] = {"mochi": MochiBroker, "hivemq": HiveMQBroker}
    return kinds[name](**options)
