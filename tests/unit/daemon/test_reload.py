"""What a reload rebuilds: only what the changed part of the config depends on."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from edged.config import Config, parse_config
from edged.daemon.reload import plan_reload
from tests.helpers.paths import wasm

BASE: dict[str, Any] = {
    "node_id": "gw-1",
    "state_dir": "state",
    "broker": {"host": "127.0.0.1", "port": 1883},
    "modules": {"threshold": {"file": wasm("threshold"), "params": {"limit": 30}}},
    "pipelines": [
        {
            "name": "alerts",
            "subscribe": ["sensors/+/temperature"],
            "filters": ["threshold"],
            "outputs": [{"topic": "alerts/{topic}"}],
        }
    ],
}


def config(change: dict[str, Any] | None = None) -> Config:
    data = copy.deepcopy(BASE)
    for key, value in (change or {}).items():
        section, _, field = key.partition(".")
        if field:
            data.setdefault(section, {})[field] = value
        else:
            data[section] = value
    return parse_config(data, base_dir=Path.cwd())


def test_the_same_config_keeps_everything() -> None:
    """Reloading an unchanged file keeps the engine, the intake and the connection."""
    plan = plan_reload(config(), config())
    assert (plan.new_engine, plan.new_intake, plan.new_link) == (False, False, False)
    assert plan.keeps_connection


def test_pipelines_and_params_alone_keep_the_connection() -> None:
    """New pipelines, params or budgets are rebuilt in place: no reconnect, no new engine."""
    changed = config({"pipelines": [{**BASE["pipelines"][0], "subscribe": ["other/#"]}]})
    assert plan_reload(config(), changed) == plan_reload(config(), config())
    params = config({"modules": {"threshold": {"file": wasm("threshold"), "params": {"limit": 5}}}})
    assert plan_reload(config(), params).keeps_connection


@pytest.mark.parametrize(
    ("change", "rebuilt"),
    [
        ({"broker.port": 1884}, "new_link"),
        ({"broker.client_id": "another"}, "new_link"),
        ({"broker.mqtt_version": "3.1.1"}, "new_link"),
        ({"topic_prefix": "site"}, "new_link"),  # the status topic moves with the prefix
        ({"node_id": "gw-2"}, "new_link"),  # the client id and status topic derive from it
        ({"outbox.max_bytes": "1 MiB"}, "new_link"),  # the outbox belongs to the link
        ({"daemon.queue_size": 50}, "new_intake"),
        ({"daemon.overload": "drop_newest"}, "new_intake"),
        ({"engine.epoch_tick_ms": 5}, "new_engine"),
        ({"state_dir": "elsewhere"}, "new_engine"),  # the compiled-module cache lives there
    ],
)
def test_each_change_rebuilds_only_what_depends_on_it(change: dict[str, Any], rebuilt: str) -> None:
    """A changed broker reconnects; a changed queue replaces the intake; a changed engine or
    state directory recompiles; nothing else is rebuilt along with it."""
    plan = plan_reload(config(), config(change))
    flags = {
        "new_engine": plan.new_engine,
        "new_intake": plan.new_intake,
        "new_link": plan.new_link,
    }
    assert [name for name, on in flags.items() if on] == [rebuilt]


def test_a_password_file_is_compared_by_path_not_by_what_it_holds(tmp_path: Path) -> None:
    """A new password in the same file keeps the link (it reconnects with the new one, as for
    renewed certificates); another file is another broker setting and rebuilds it."""
    secret = tmp_path / "pw"
    secret.write_text("one\n")
    settings = {"broker.username": "edge", "broker.password_file": str(secret)}
    before = config(settings)
    secret.write_text("two\n")
    assert plan_reload(before, config(settings)).keeps_connection
    other = tmp_path / "pw2"
    other.write_text("two\n")
    assert plan_reload(before, config({**settings, "broker.password_file": str(other)})).new_link
