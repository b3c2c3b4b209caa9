"""One daemon per state directory."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from edged.daemon.statelock import lock_state_dir
from edged.errors import StateError


def test_a_second_daemon_on_the_same_state_dir_is_refused(tmp_path: Path) -> None:
    """While one holder has the directory, a second is refused with the holder's pid and what
    to do; once the first lets go, the directory can be taken again."""
    first = lock_state_dir(tmp_path / "state")
    with pytest.raises(StateError) as caught:
        lock_state_dir(tmp_path / "state")
    assert f"in use by another edged (pid {os.getpid()})" in str(caught.value)
    assert "give each node its own state_dir" in str(caught.value)
    first.close()
    lock_state_dir(tmp_path / "state").close()


def test_an_unusable_state_dir_says_which(tmp_path: Path) -> None:
    """A state directory that cannot be created is a StateError naming it (exit 2)."""
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(StateError) as caught:
        lock_state_dir(blocker / "state")
    assert str(blocker / "state") in str(caught.value)
