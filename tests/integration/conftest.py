"""Every test here talks to a real mosquitto or runs edged as a subprocess: marked so that
`pytest -m "not integration"` runs the fast in-process tests alone."""

from __future__ import annotations

from pathlib import Path

import pytest

_HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _HERE in item.path.parents:
            item.add_marker(pytest.mark.integration)
