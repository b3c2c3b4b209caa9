"""`edged check` reads a local mosquitto's config and says what would lose edged's session."""

from __future__ import annotations

from pathlib import Path

from edged.mqtt.mosquitto import read_settings, session_warnings


def conf(tmp_path: Path, text: str, extra: str | None = None) -> Path:
    path = tmp_path / "mosquitto.conf"
    path.write_text(text)
    if extra is not None:
        (tmp_path / "conf.d").mkdir()
        (tmp_path / "conf.d" / "edged.conf").write_text(extra)
    return path


def test_debian_defaults_warn_about_the_queue_only(tmp_path: Path) -> None:
    """Debian's file turns persistence on and leaves max_queued_messages at 1000: one warning,
    naming the file and the number."""
    path = conf(tmp_path, "# comment\npersistence true\npersistence_location /var/lib/mosquitto/\n")
    (warning,) = session_warnings("localhost", 86400, path)
    assert str(path) in warning and "max_queued_messages is 1000" in warning


def test_include_dir_files_count_and_a_good_config_says_nothing(tmp_path: Path) -> None:
    """Settings from include_dir files override the main file's, as mosquitto reads them."""
    path = conf(
        tmp_path,
        "persistence false\ninclude_dir conf.d\n",
        extra="persistence true\nmax_queued_messages 0\n",
    )
    assert read_settings(path)["persistence"] == "true"
    assert session_warnings("127.0.0.1", 86400, path) == []


def test_persistence_off_is_said(tmp_path: Path) -> None:
    """Without persistence a restart of mosquitto forgets edged's session."""
    path = conf(tmp_path, "max_queued_messages 0\n")
    (warning,) = session_warnings("::1", 3600, path)
    assert "persistence is off" in warning


def test_a_remote_broker_or_an_unreadable_config_gives_no_guess(tmp_path: Path) -> None:
    """Only a broker on this machine, whose config is there to read, is judged."""
    path = conf(tmp_path, "persistence false\n")
    assert session_warnings("broker.example", 86400, path) == []
    assert session_warnings("localhost", 86400, tmp_path / "missing.conf") == []


def test_a_clean_session_is_always_said(tmp_path: Path) -> None:
    """session_expiry 0 keeps nothing for a stopped edged, wherever the broker is."""
    (warning,) = session_warnings("broker.example", 0, tmp_path / "missing.conf")
    assert "session_expiry is 0" in warning


def test_a_broker_on_a_port_the_system_config_does_not_listen_on_is_not_judged(
    tmp_path: Path,
) -> None:
    """A private mosquitto on port 18830 with its own config is not the one whose file is read:
    no warning about that file. On the port it does listen on (1883 when it names none, or its
    `listener` lines, include_dir files too), the warning stands."""
    path = conf(tmp_path, "persistence true\n")
    assert session_warnings("localhost", 86400, path, port=18830) == []
    (warning,) = session_warnings("localhost", 86400, path, port=1883)
    assert "max_queued_messages is 1000" in warning
    path = conf(tmp_path, "persistence true\ninclude_dir conf.d\n", extra="listener 18830\n")
    (warning,) = session_warnings("localhost", 86400, path, port=18830)
    assert session_warnings("localhost", 86400, path, port=1883) == []
