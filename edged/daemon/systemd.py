"""sd_notify: tell systemd we are ready, reloading, stopping, still alive, and what we are doing.

The protocol is one datagram to the Unix socket named by $NOTIFY_SOCKET (a path, or an abstract
socket when it starts with '@'), so no library is needed. Outside systemd the variable is unset
and every call is a no-op.
"""

from __future__ import annotations

import os
import socket


class Notifier:
    def __init__(self, address: str | None = None) -> None:
        address = address if address is not None else os.environ.get("NOTIFY_SOCKET")
        self._address: str | bytes | None = None
        if address:
            # '@' marks the abstract namespace, whose names start with a NUL byte.
            self._address = b"\0" + address[1:].encode() if address.startswith("@") else address
        self._sock: socket.socket | None = None

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def notify(self, **fields: str | int) -> bool:
        """Send `KEY=value` lines (READY=1, STATUS=..., STOPPING=1); False if it did not go."""
        if self._address is None:
            return False
        message = "\n".join(f"{key}={value}" for key, value in fields.items()).encode()
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.sendto(message, self._address)
        except OSError:
            return False  # systemd gone or socket full: nothing useful to do about it here
        return True

    # -- what the daemon says, by intent -----------------------------------------------------

    def ready(self, status: str) -> bool:
        """Started (or reloaded, or reconnected): systemd takes the first READY, and `status`."""
        return self.notify(READY=1, STATUS=status)

    def reloading(self) -> bool:
        """A reload began; `ready()` ends it, whether the new config was taken or not."""
        return self.notify(RELOADING=1, STATUS="reloading the config")

    def stopping(self) -> bool:
        return self.notify(STOPPING=1, STATUS="stopping")

    def watchdog(self) -> bool:
        """The loop came round: only a loop that does so says it is alive."""
        return self.notify(WATCHDOG=1)

    def watchdog_interval(self) -> float | None:
        """Seconds between WATCHDOG=1 pings (half of systemd's WatchdogSec), or None if off."""
        usec = os.environ.get("WATCHDOG_USEC")
        pid = os.environ.get("WATCHDOG_PID")
        if not usec or not self.enabled or (pid and pid != str(os.getpid())):
            return None
        try:
            return int(usec) / 2 / 1_000_000
        except ValueError:
            return None

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
