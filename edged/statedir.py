"""The state directory's layout, in one place: every file edged keeps there is named here.

    compiled/               compiled modules, by digest and engine (edged.engine.cache)
    modules/                modules deployed over MQTT, and the active versions (edged.deploy.store)
    outbox.sqlite3          the outbox of the broker `default` (edged.mqtt.outbox) ...
    outbox-<name>.sqlite3   ... and of each other named broker
    filter-state.sqlite3    the filters' saved states (edged.daemon.statestore)
    edged.lock              held by the one daemon that uses this directory (edged.daemon.statelock)

Where the directory is: `state_dir` in the config, else systemd's StateDirectory, else
`~/.local/state/edged`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from edged.config import BrokerConfig, Config


@dataclass(frozen=True, slots=True)
class StateDir:
    root: Path

    @classmethod
    def of(cls, config: Config) -> StateDir:
        if config.state_dir is not None:
            return cls(config.state_dir)
        if env := os.environ.get("STATE_DIRECTORY"):
            return cls(Path(env.split(":")[0]))
        return cls(Path.home() / ".local" / "state" / "edged")

    @property
    def compiled(self) -> Path:
        return self.root / "compiled"

    @property
    def modules(self) -> Path:
        return self.root / "modules"

    def outbox(self, broker: BrokerConfig) -> Path:
        # the one broker of `broker:` keeps the name it had before there were several
        return self.root / broker.outbox_file

    @property
    def filter_state(self) -> Path:
        return self.root / "filter-state.sqlite3"

    @property
    def lock(self) -> Path:
        return self.root / "edged.lock"
