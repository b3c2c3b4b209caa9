"""The `http:` section: off unless given, and every mistake with its key path."""

from __future__ import annotations

from pathlib import Path

import pytest

from edged.config import parse_config
from edged.errors import ConfigError
from tests.unit.config.samples import minimal


def test_no_http_section_means_nothing_listens(confdir: Path) -> None:
    """The endpoint is opt-in: a config without `http:` has none."""
    assert parse_config(minimal(), base_dir=confdir).http is None


def test_an_empty_http_section_listens_on_loopback_9108(confdir: Path) -> None:
    """`http: {}` turns it on with the defaults: 127.0.0.1:9108, alive within 30 s, ready
    while every outbox is under 80 % full."""
    http = parse_config({**minimal(), "http": {}}, base_dir=confdir).http
    assert http is not None
    assert (http.listen, http.alive_within, http.ready_outbox_fill) == ("127.0.0.1:9108", 30, 0.8)
    assert http.address == ("127.0.0.1", 9108) and http.loopback


@pytest.mark.parametrize(
    ("listen", "address", "loopback"),
    [
        ("[::1]:9108", ("::1", 9108), True),
        ("0.0.0.0:9108", ("0.0.0.0", 9108), False),
        ("localhost:1", ("localhost", 1), True),
        ("192.0.2.7:9108", ("192.0.2.7", 9108), False),
    ],
)
def test_listen_addresses(confdir: Path, listen: str, address: object, loopback: bool) -> None:
    """IPv4, bracketed IPv6 and names are taken; loopback is told apart for `edged check`."""
    http = parse_config({**minimal(), "http": {"listen": listen}}, base_dir=confdir).http
    assert http is not None and http.address == address and http.loopback is loopback


def test_a_socket_path_counts_as_local(confdir: Path) -> None:
    """A Unix socket path is reachable only from this machine."""
    http = parse_config(
        {**minimal(), "http": {"listen": "/run/edged/http.sock"}}, base_dir=confdir
    ).http
    assert http is not None and http.unix_socket and http.loopback


@pytest.mark.parametrize(
    ("section", "error"),
    [
        ({"listen": "9108"}, 'http.listen: expected "host:port"'),
        ({"listen": "::1:9108"}, "http.listen: an IPv6 address is written in brackets"),
        ({"listen": "127.0.0.1:70000"}, 'http.listen: expected "host:port"'),
        ({"alive_within": 0}, "http.alive_within: must be greater than 0"),
        ({"ready_outbox_fill": 1.5}, "http.ready_outbox_fill: must be between 0 and 1"),
        ({"port": 9108}, "http.port: unknown key"),
    ],
)
def test_mistakes_are_refused_with_the_key_path(
    confdir: Path, section: dict[str, object], error: str
) -> None:
    """Each wrong value is reported at its key, with what was expected."""
    with pytest.raises(ConfigError) as caught:
        parse_config({**minimal(), "http": section}, base_dir=confdir)
    assert error in str(caught.value)
