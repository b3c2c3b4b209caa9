"""Every test here talks to a real mosquitto or runs edged as a subprocess: marked so that
`pytest -m "not integration"` runs the fast in-process tests alone."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from edged.mqtt.mosquitto import PrivateBroker
from tests.helpers.daemon import DaemonProcess, write_config

_HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _HERE in item.path.parents:
            item.add_marker(pytest.mark.integration)


#: `start(config, control_broker)`: `edged run` on a config dict, watched on that broker
Start = Callable[..., DaemonProcess]


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Start]:
    """Start `edged run` on a config dict; every daemon started is stopped at the end."""
    started: list[DaemonProcess] = []

    def run(data: dict[str, Any], control: PrivateBroker | None = None) -> DaemonProcess:
        name = f"{data['node_id']}-{len(started)}"
        path = write_config(tmp_path / f"{name}.yaml", data)
        status = f"{data.get('topic_prefix', 'edged')}/{data['node_id']}/status"
        daemon = DaemonProcess(path, status, control)
        started.append(daemon)
        return daemon

    yield run
    for daemon in started:
        daemon.stop()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "toolchains: builds filters with Go or Zig (scripts/toolchains.sh installs them)"
    )
