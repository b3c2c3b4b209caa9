"""The directory a config test's files live in."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def confdir(tmp_path: Path) -> Path:
    """A config directory holding two dummy module files and TLS files (any bytes will do)."""
    directory = tmp_path / "conf"
    (directory / "filters").mkdir(parents=True)
    (directory / "certs").mkdir()
    for name in ("threshold", "passthrough"):
        (directory / "filters" / f"{name}.wasm").write_bytes(b"\0asm\1\0\0\0")
    for name in ("ca.pem", "client.pem", "client.key"):
        (directory / "certs" / name).write_text("dummy\n")
    return directory
