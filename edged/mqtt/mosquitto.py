"""A private mosquitto on a free loopback port, for `edged demo`, the tests and the benchmarks."""

from __future__ import annotations

import getpass
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

from edged.errors import EdgedError

# mosquitto's default of 1000 queued messages per client drops part of any fast burst; a test or
# benchmark that counts messages must never count the broker's drops as ours. Nagle's algorithm
# (on by default) would hold small packets back for tens of milliseconds behind delayed ACKs,
# which is the broker's latency, not the clients'.
_CONF = """\
listener {port} 127.0.0.1
{listener_options}allow_anonymous {anonymous}
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
# After the `listener` line, so they apply to it: TLS with a client certificate required, whose
# Common Name becomes the client's user name (what an ACL names).
_TLS = """\
cafile {cafile}
certfile {certfile}
keyfile {keyfile}
require_certificate {require}
use_identity_as_username {require}
"""


# Ports are taken below the kernel's ephemeral range. A client that keeps reconnecting to a
# stopped broker on a port inside that range can be given that very port as its own source port
# and connect to itself (TCP simultaneous open), and then the broker cannot listen there again
# when it restarts: seen once in the test suite as mosquitto's "Address already in use".
_EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_LOWEST = 10_000


def free_port() -> int:
    """A loopback TCP port nothing listens on, outside the ephemeral range where possible."""
    try:
        low = int(_EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 0
    if low > _LOWEST + 1000:
        for _ in range(200):
            port = random.randrange(_LOWEST, low)
            with socket.socket() as sock:
                try:
                    sock.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
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

    For the tests of brokers that check who connects (all off by default, and the config is
    then exactly the plain one):

    - `cafile`, `certfile`, `keyfile`: the listener speaks TLS with this CA and server
      certificate; with `require_certificate` (the default) a client must show a certificate
      the CA signed, and its Common Name is the client's user name.
    - `passwords`: user name to password; the broker admits only these users
      (`allow_anonymous false`, a password file made with mosquitto_passwd).
    - `acl`: the text of an ACL file (mosquitto.conf(5), acl_file): what each user may read and
      write; anything it does not grant is refused.
    - `log_connections`: log each connection with its client id and user name (`log`).
    - `extra_conf`: lines added at the end of the config, for anything else.
    """

    def __init__(
        self,
        port: int | None = None,
        *,
        persistence: bool = False,
        max_queued_messages: int = 0,
        max_inflight_messages: int = 0,
        cafile: Path | None = None,
        certfile: Path | None = None,
        keyfile: Path | None = None,
        require_certificate: bool = True,
        passwords: Mapping[str, str] | None = None,
        acl: str | None = None,
        log_connections: bool = False,
        extra_conf: str = "",
    ) -> None:
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.persistence = persistence
        self.max_queued_messages = max_queued_messages
        self.max_inflight_messages = max_inflight_messages
        tls = (cafile, certfile, keyfile)
        if any(tls) and not all(tls):
            raise ValueError("cafile, certfile and keyfile go together")
        self.cafile, self.certfile, self.keyfile = cafile, certfile, keyfile
        self.require_certificate = require_certificate
        self.passwords = dict(passwords) if passwords is not None else None
        self.acl = acl
        self.log_connections = log_connections
        self.extra_conf = extra_conf
        self._proc: subprocess.Popen[bytes] | None = None
        self._dir: tempfile.TemporaryDirectory[str] | None = None

    @property
    def tls(self) -> bool:
        return self.cafile is not None

    def _config(self, directory: Path) -> str:
        listener_options = ""
        if self.cafile is not None:
            listener_options = _TLS.format(
                cafile=self.cafile,
                certfile=self.certfile,
                keyfile=self.keyfile,
                require=str(self.require_certificate).lower(),
            )
        text = _CONF.format(
            port=self.port,
            listener_options=listener_options,
            anonymous="false" if self.passwords is not None else "true",
            max_queued=self.max_queued_messages,
            max_inflight=self.max_inflight_messages,
        )
        # Started as root, mosquitto switches to its own user before it reads the certificates,
        # the password and ACL files (and, with persistence, writes its database): it must stay
        # us to read them in our private directory.
        if self.persistence:
            text += _PERSISTENCE.format(directory=directory, user=getpass.getuser())
        elif self.tls or self.passwords is not None or self.acl is not None:
            text += f"user {getpass.getuser()}\n"
        if self.passwords is not None:
            text += f"password_file {self._password_file(directory)}\n"
        if self.acl is not None:
            acl = directory / "acl"
            acl.write_text(self.acl)
            text += f"acl_file {acl}\n"
        if self.log_connections:
            text += "connection_messages true\nlog_type notice\n"
        if self.extra_conf:
            text += self.extra_conf.rstrip("\n") + "\n"
        return text

    def _password_file(self, directory: Path) -> Path:
        assert self.passwords is not None
        tool = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
        path = directory / "passwords"
        path.unlink(missing_ok=True)
        for user, password in self.passwords.items():
            # -c makes the file for the first user; -b takes the password from the command line
            create = ["-c"] if not path.exists() else []
            subprocess.run(
                [tool, "-b", *create, str(path), user, password],
                check=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
        if not self.passwords:
            path.write_text("")
        return path

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
        conf.write_text(self._config(Path(self._dir.name)))
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


def listener_ports(conf: Path) -> set[int]:
    """The TCP ports a mosquitto config listens on (`listener`, `port`, in its `include_dir`s
    too); mosquitto's default 1883 when it names none."""
    ports: set[int] = set()

    def scan(path: Path) -> None:
        try:
            lines = path.read_text(errors="replace").splitlines()
        except OSError:
            return
        for line in lines:
            words = line.split()
            if len(words) >= 2 and words[0] in ("listener", "port") and words[1].isdigit():
                ports.add(int(words[1]))
            elif len(words) >= 2 and words[0] == "include_dir":
                directory = path.parent / words[1]
                for part in sorted(directory.glob("*.conf")) if directory.is_dir() else ():
                    scan(part)

    scan(conf)
    return ports or {1883}


def session_warnings(
    host: str,
    session_expiry: int,
    conf: Path = SYSTEM_CONF,
    key: str = "broker",
    port: int | None = None,
) -> list[str]:
    """What a local mosquitto's config would lose of what edged's session relies on (see
    docs/delivery.md); nothing when the broker is elsewhere, listens on another `port` than any
    of that config's (another broker, with a config of its own), or its config cannot be read.
    `key` is the broker's place in the config (`broker`, or `brokers.<name>`)."""
    if session_expiry == 0:
        return [
            f"{key}.session_expiry is 0: a clean session on every connect, so messages "
            "published while edged is stopped or disconnected are not delivered to it"
        ]
    if host not in _LOCAL_HOSTS or not conf.is_file():
        return []
    if port is not None and port not in listener_ports(conf):
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
