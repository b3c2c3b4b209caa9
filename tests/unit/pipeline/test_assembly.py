"""Building the pipelines from a parsed config: every problem at once, and pushed modules.

`build_pipelines` loads every module of the config on each call; the engine here keeps its
compiled modules on disk, as the daemon does, so only the first load of each costs a compile
(15-30 ms for an example C filter, under 1 ms from the cache).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import wasmtime
from structlog.testing import capture_logs

from edged.config import Config, ParamValue, parse_config
from edged.engine import WasmtimeEngine
from edged.errors import SetupError
from edged.pipeline import Pipeline
from edged.pipeline.assembly import Pushed, build_pipelines, make_engine, state_dir
from tests.helpers.paths import wasm
from tests.unit.pipeline.wat_filters import TRAP, Outbox


def config(**sections: Any) -> Config:
    """A config with the example filters as modules; `sections` replace or add top-level keys."""
    data: dict[str, Any] = {
        "node_id": "gw-1",
        "broker": {},
        "modules": {
            "threshold": {"file": wasm("threshold"), "params": {"limit": 30, "topic": "hot"}},
            "passthrough": {"file": wasm("passthrough")},
            "average": {"file": wasm("average")},
        },
        "pipelines": [
            {
                "name": "temps",
                "subscribe": ["sensors/#"],
                "filters": ["threshold"],
                "outputs": [{"topic": "{node_id}/{pipeline}/{topic}", "qos": 1}],
            }
        ],
    }
    data.update(sections)
    return parse_config(data)


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> WasmtimeEngine:
    """One engine for this file, with its compiled modules kept on disk."""
    return WasmtimeEngine(cache_dir=tmp_path_factory.mktemp("compiled"))


def build(cfg: Config, engine: WasmtimeEngine, **kwargs: Any) -> tuple[list[Pipeline], Outbox]:
    """The pipelines of `cfg`, all publishing into one outbox."""
    outbox = Outbox()
    return build_pipelines(cfg, engine, outbox, **kwargs), outbox


def problems(cfg: Config, engine: WasmtimeEngine) -> list[str]:
    """The problems `build_pipelines` refuses `cfg` with."""
    with pytest.raises(SetupError) as info:
        build(cfg, engine)
    return info.value.problems


def pushed(engine: WasmtimeEngine, name: str, params: Mapping[str, ParamValue] | None) -> Pushed:
    """The example filter `name` as if it had been deployed over MQTT with `params`."""
    return Pushed(engine.load_file(name, Path(wasm(name))), params)


def alert_limit(pipeline: Pipeline, outbox: Outbox) -> tuple[str, object]:
    """Send a reading far over any limit: the alert's topic and the limit the filter used."""
    outbox.sent.clear()
    pipeline.process(b"sensors/boiler", b'{"value": 1000}')
    (topic,) = outbox.topics
    return topic, json.loads(outbox.payloads[0])["limit"]


def pipeline_using(module: str, **extra: Any) -> dict[str, Any]:
    """A pipeline's config section with one filter of `module` (`extra`: that filter's keys)."""
    return {
        "name": f"uses-{module}",
        "subscribe": ["sensors/#"],
        "filters": [{"module": module, **extra}],
        "outputs": [{"topic": "out/{topic}"}],
    }


def test_a_valid_config_becomes_running_pipelines(engine: WasmtimeEngine, tmp_path: Path) -> None:
    """Each configured pipeline is built with its filters, params, outputs, tick intervals,
    and the config's violation policy and on_quarantine."""
    trap = tmp_path / "trap.wasm"
    trap.write_bytes(wasmtime.wat2wasm(TRAP))
    cfg = config(
        violations={"quarantine_after": 2},
        modules={
            "threshold": {"file": wasm("threshold"), "params": {"limit": 30, "topic": "hot"}},
            "passthrough": {"file": wasm("passthrough")},
            "average": {"file": wasm("average")},
            "trap": {"file": str(trap)},
        },
        pipelines=[
            {
                "name": "temps",
                "subscribe": ["sensors/#"],
                "filters": [{"module": "threshold", "params": {"limit": 40}}, "passthrough"],
                "outputs": [{"topic": "{node_id}/{pipeline}/{topic}", "qos": 1, "retain": True}],
            },
            pipeline_using("average", tick_interval=5),
            {**pipeline_using("trap"), "on_quarantine": "skip"},
        ],
    )
    (temps, averages, traps), outbox = build(cfg, engine)
    assert [p.name for p in (temps, averages, traps)] == ["temps", "uses-average", "uses-trap"]
    assert [s.module for s in temps.steps] == ["threshold", "passthrough"]
    assert averages.steps[0].tick_interval == 5
    assert alert_limit(temps, outbox) == ("gw-1/temps/hot", 40)
    assert outbox.sent[0][2:] == (1, True)
    outbox.sent.clear()
    for payload in (b"1", b"2", b"3"):  # two traps quarantine it, then it is passed by
        traps.process(b"sensors/x", payload)
    assert traps.quarantined[0]["module"] == "trap"
    assert outbox.sent == [("out/sensors/x", b"3", 0, False)]


def test_every_problem_is_listed_with_its_key_path(engine: WasmtimeEngine, tmp_path: Path) -> None:
    """A module that fails to load, a tick on a module without one, a filter over the memory
    budget and a module refusing its params are all reported together, each with its key."""
    broken = tmp_path / "broken.wasm"
    broken.write_bytes(b"not a module")
    cfg = config(
        daemon={"memory_budget": "48 MiB"},
        modules={
            "threshold": {"file": wasm("threshold")},  # no limit: its init refuses
            "passthrough": {"file": wasm("passthrough")},
            "broken": {"file": str(broken)},
        },
        pipelines=[
            pipeline_using("passthrough", tick_interval=10),
            pipeline_using("broken"),
            pipeline_using("threshold"),
            {
                "name": "many",
                "subscribe": ["a/#"],
                "filters": ["passthrough", "passthrough", "passthrough"],
                "outputs": [{"topic": "out/{topic}"}],
            },
        ],
    )
    found = problems(cfg, engine)
    assert found == [
        "modules.broken: not a WebAssembly binary (no \\0asm header)",
        "pipelines[0].filters[0].tick_interval: module 'passthrough' has no edged_on_tick",
        "pipelines[2].filters[0]: module 'threshold' init returned 1 (parameters refused)",
        "pipelines[3].filters[2]: module 'passthrough' memory budget 16 MiB would bring the total "
        "to 64 MiB, over daemon.memory_budget 48 MiB",
    ]
    with pytest.raises(SetupError, match="4 problems with modules"):
        build(cfg, engine)


def test_memory_budget_counts_every_instance(engine: WasmtimeEngine) -> None:
    """The memory caps of all instances in all pipelines are added up; exactly at the budget
    is accepted."""
    two = [pipeline_using("passthrough"), pipeline_using("threshold", params={"limit": 1})]
    two[1]["name"] = "second"
    pipelines, _ = build(config(daemon={"memory_budget": "32 MiB"}, pipelines=two), engine)
    assert len(pipelines) == 2
    small = {"file": wasm("passthrough"), "budgets": {"memory": "8 MiB"}}
    cfg = config(
        daemon={"memory_budget": "32 MiB"},
        modules={"passthrough": {"file": wasm("passthrough")}, "small": small},
        pipelines=[
            {
                "name": "p",
                "subscribe": ["a/#"],
                "filters": ["passthrough", "small", "small", "small"],
                "outputs": [{"topic": "out/{topic}"}],
            }
        ],
    )
    assert problems(cfg, engine) == [
        "pipelines[0].filters[3]: module 'small' memory budget 8 MiB would bring the total to "
        "40 MiB, over daemon.memory_budget 32 MiB"
    ]


def test_pushed_module_stands_in_for_the_configured_file(
    engine: WasmtimeEngine, tmp_path: Path
) -> None:
    """A module deployed over MQTT is used instead of the config's file, which is not even
    read (here it is not a module at all)."""
    broken = tmp_path / "threshold.wasm"
    broken.write_bytes(b"old bytes")
    cfg = config(
        modules={"threshold": {"file": str(broken), "params": {"limit": 30}}},
    )
    (temps,), outbox = build(cfg, engine, pushed={"threshold": pushed(engine, "threshold", None)})
    assert alert_limit(temps, outbox) == ("gw-1/temps/alert", 30)


def test_pushed_params_replace_the_modules_but_the_pipelines_own_win(
    engine: WasmtimeEngine,
) -> None:
    """Params pushed with a module replace the config's module params entirely; params a
    pipeline sets on its filter still win over the pushed ones."""
    cfg = config(
        pipelines=[
            pipeline_using("threshold"),
            {**pipeline_using("threshold", params={"limit": 28}), "name": "own"},
        ]
    )
    (plain, own), outbox = build(cfg, engine)
    assert alert_limit(plain, outbox) == ("out/hot", 30)
    assert alert_limit(own, outbox) == ("out/hot", 28)
    deployed = {"threshold": pushed(engine, "threshold", {"limit": 50})}
    (plain, own), outbox = build(cfg, engine, pushed=deployed)
    # the module's `topic: hot` is gone with the rest of the module's params
    assert alert_limit(plain, outbox) == ("out/alert", 50)
    assert alert_limit(own, outbox) == ("out/alert", 28)


def test_a_renewed_filter_has_the_same_params(engine: WasmtimeEngine) -> None:
    """The fresh instance a quarantine ends with is made with the filter's own params."""
    cfg = config(pipelines=[pipeline_using("threshold", params={"limit": 28})])
    (pipeline,), _ = build(cfg, engine)
    step = pipeline.steps[0]
    assert step.renew is not None
    fresh = step.renew()
    assert fresh is not step.filter
    (record,) = fresh.on_message(b"t", b'{"value": 29}')
    assert json.loads(record[1])["limit"] == 28


def test_a_filters_log_lines_name_its_pipeline_and_module(engine: WasmtimeEngine) -> None:
    """What a filter logs comes out as filter_log with its pipeline and module."""
    cfg = config(pipelines=[pipeline_using("average", tick_interval=1)])
    (pipeline,), _ = build(cfg, engine)
    with capture_logs() as logs:
        for n in range(65):  # the average example keeps 64 topics and warns about the 65th
            pipeline.process(f"room/{n}".encode(), b'{"value": 1}')
    (line,) = [entry for entry in logs if entry["event"] == "filter_log"]
    assert (line["pipeline"], line["module"], line["log_level"]) == (
        "uses-average",
        "average",
        "warning",
    )
    assert line["text"]


def test_state_dir_and_the_compiled_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Compiled modules are kept under the state directory (the config's, else systemd's
    StateDirectory), so a second start finds them compiled."""
    monkeypatch.setenv("STATE_DIRECTORY", f"{tmp_path / 'systemd'}:{tmp_path / 'other'}")
    assert state_dir(config()) == tmp_path / "systemd"
    cfg = config(state_dir=str(tmp_path / "state"))
    assert state_dir(cfg) == tmp_path / "state"
    first = make_engine(cfg)
    first.load_file("passthrough", Path(wasm("passthrough")))
    assert any((tmp_path / "state" / "compiled").iterdir())
    second = make_engine(cfg)
    second.load_file("passthrough", Path(wasm("passthrough")))
    assert (first.cache_hits, second.cache_hits) == (0, 1)
