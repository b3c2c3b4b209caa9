"""One daemon per state directory: its outboxes, module store and compiled cache are its own.

Two nodes started with the same state directory (two configs on one host, with shared
subscriptions, both left at the default) would replay each other's outbox entries and swap
each other's deployed modules. The first daemon holds an advisory lock on `edged.lock` there
for as long as it runs; the second refuses to start, saying which process holds it.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO

from edged.errors import StateError
from edged.statedir import StateDir


def lock_state_dir(directory: Path) -> IO[str]:
    """Lock `directory` for this process; the lock lasts until the returned file is closed
    (or the process ends, however it ends: the kernel drops the lock with the file)."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        handle = open(StateDir(directory).lock, "a+")  # noqa: SIM115 (held while the daemon runs)
    except OSError as exc:
        raise StateError(
            f"cannot use the state directory {directory}: {exc.strerror or exc}"
        ) from None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        raise StateError(
            f"the state directory {directory} is in use by another edged (pid {holder}): "
            "give each node its own state_dir"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle
