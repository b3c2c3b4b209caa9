"""A private mosquitto on a free loopback port, for `edged demo`, the tests and the benchmarks."""

from __future__ import annotations

import getpass
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from edged.errors import EdgedError

# mosquitto's default of 1000 queued messages per client drops part of any fast burst; a test or
# benchmark that counts messages must never count the broker's drops as ours. Nagle's algorithm
# (on by default) would hold small packets back for tens of milliseconds behind delayed ACKs,
# which is the broker's latency, not the clients'.
_CONF = """\
listener {port} 127.0.0.1
allow_anonymous true
max_queued_messages {max_queued}
max_inflight_messages {max_inflight}
set_tcp_nodelay true
log_dest stderr
log_type error
log_type warning
"""
# With persistence the broker keeps sessions, subscriptions and queued messages across its own
# restart; it writes them when it stops (and every autosave_interval seconds). Started as root,
# mosquitto would switch to its own user, which cannot write in our private directory.
_PERSISTENCE = """\
persistence true
persistence_location {directory}/
autosave_interval 1
user {user}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def find_mosquitto() -> str | None:
    return shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if Path(p).exists()),
        None,
    )


class PrivateBroker:
    """`with PrivateBroker() as broker:` gives a running mosquitto on `broker.port`.

    With `persistence`, `halt()` stops it and `start()` brings it back on the same port with
    what it saved; `max_queued_messages` is what it queues per offline client and
    `max_inflight_messages` what it sends a client before that client acknowledges (0: no
    limit; mosquitto's own defaults are 1000 and 20).
    """

    def __init__(
        self,
        port: int | None = None,
        *,
        persistence: bool = False,
        max_queued_messages: int = 0,
        max_inflight_messages: int = 0,
    ) -> None:
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.persistence = persistence
        self.max_queued_messages = max_queued_messages
        self.max_inflight_messages = max_inflight_messages
        self._proc: subprocess.Popen[bytes] | None = None
        self._dir: tempfile.TemporaryDirectory[str] | None = None

    def start(self) -> PrivateBroker:
        binary = find_mosquitto()
        if binary is None:
            raise EdgedError(
                "mosquitto is not installed; on Debian or Raspberry Pi OS: "
                "sudo apt-get install mosquitto"
            )
        if self._dir is None:
            self._dir = tempfile.TemporaryDirectory(prefix="edged-broker-")
        conf = Path(self._dir.name) / "mosquitto.conf"
        text = _CONF.format(
            port=self.port,
            max_queued=self.max_queued_messages,
            max_inflight=self.max_inflight_messages,
        )
        if self.persistence:
            text += _PERSISTENCE.format(directory=self._dir.name, user=getpass.getuser())
        conf.write_text(text)
        # Its log goes to a file, not a pipe: nobody reads a pipe during a long run, and a full
        # pipe would stall the broker.
        self._log = Path(self._dir.name) / "mosquitto.log"
        with open(self._log, "wb") as sink:
            self._proc = subprocess.Popen(
                [binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=sink
            )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                err = self._log.read_text(errors="replace")
                self.stop()
                raise EdgedError(f"mosquitto exited at start: {err.strip()}")
            try:
                socket.create_connection((self.host, self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise EdgedError(f"mosquitto did not listen on port {self.port} within 10 s")

    @property
    def pid(self) -> int | None:
        """The running mosquitto's process id (the benchmarks read its CPU time)."""
        return self._proc.pid if self._proc is not None else None

    @property
    def log(self) -> str:
        """What mosquitto wrote (errors and warnings)."""
        return self._log.read_text(errors="replace") if self._dir is not None else ""

    def halt(self, sig: int = signal.SIGTERM) -> None:
        """Stop the broker but keep its files, for `start()` to bring it back as it left."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(sig)
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None

    def stop(self) -> None:
        self.halt()
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def __enter__(self) -> PrivateBroker:
        return self.start()

    def __exit__(
        self,
        _t: type[BaseException] | None,
        _e: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        self.stop()


# -- what a local mosquitto's own config says about edged's persistent session -----------------

SYSTEM_CONF = Path("/etc/mosquitto/mosquitto.conf")
_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "ip6-localhost"})
#: mosquitto's own default for max_queued_messages (mosquitto.conf(5))
MOSQUITTO_QUEUE_DEFAULT = 1000


def read_settings(conf: Path) -> dict[str, str]:
    """The options of a mosquitto config file, with the files of its `include_dir`s (later
    files win, as mosquitto reads them); empty if it cannot be read."""
    settings: dict[str, str] = {}
    try:
        lines = conf.read_text(errors="replace").splitlines()
    except OSError:
        return settings
    for line in lines:
        key, _, value = line.strip().partition(" ")
        if not key or key.startswith("#"):
            continue
        if key == "include_dir":
            directory = conf.parent / value.strip()
            for part in sorted(directory.glob("*.conf")) if directory.is_dir() else ():
                settings.update(read_settings(part))
        else:
            settings[key] = value.strip()
    return settings


def session_warnings(host: str, session_expiry: int, conf: Path = SYSTEM_CONF) -> list[str]:
    """What a local mosquitto's config would lose of what edged's session relies on (see
    docs/delivery.md); nothing when the broker is elsewhere or its config cannot be read."""
    if session_expiry == 0:
        return [
            "broker.session_expiry is 0: a clean session on every connect, so messages "
            "published while edged is stopped or disconnected are not delivered to it"
        ]
    if host not in _LOCAL_HOSTS or not conf.is_file():
        return []
    settings = read_settings(conf)
    warnings = []
    if settings.get("persistence", "false").lower() not in ("true", "1"):
        warnings.append(
            f"{conf}: persistence is off, so mosquitto forgets edged's session and what it "
            "queued for edged when mosquitto itself restarts: set `persistence true`"
        )
    queued = settings.get("max_queued_messages", str(MOSQUITTO_QUEUE_DEFAULT))
    if queued.isdigit() and int(queued) > 0:
        warnings.append(
            f"{conf}: max_queued_messages is {queued}: while edged is stopped, mosquitto keeps at "
            "most that many messages for it and drops the rest: set it to cover the longest "
            "stop you expect (messages per second times seconds), or 0 for no limit"
        )
    return warnings
