"""The running daemon: the one loop, its timers, reload, reports, systemd and logging set-up."""

from edged.daemon.daemon import Daemon

__all__ = ["Daemon"]
