"""A deploy's request is acknowledged once recorded, and a recorded deploy survives a stop."""

from __future__ import annotations

import json
import time
from pathlib import Path

import wasmtime

from edged.config import Config, load_config
from edged.deploy import manifest
from edged.deploy.manager import DeployManager
from edged.deploy.store import ModuleStore
from edged.engine import WasmtimeEngine
from edged.pipeline import Pipeline
from edged.pipeline.assembly import build_pipelines
from edged.statedir import StateDir
from tests.helpers.daemon import write_config
from tests.helpers.paths import FILTERS

# passthrough with other bytes: forwards every message
FORWARD = bytes(
    wasmtime.wat2wasm("""
(module
  (memory (export "memory") 1)
  (data (i32.const 0) "\\40\\00\\00\\00\\c0\\ef\\00\\00\\00\\f0\\00\\00\\00\\10\\00\\00")
  (func (export "edged_abi_version") (result i32) (i32.const 1))
  (func (export "edged_buffers") (result i32) (i32.const 0))
  (func (export "edged_on_message") (param i32 i32) (result i32) (i32.const 1)))
""")
)


class Node:
    """A DeployManager over a real engine, store and pipeline; acks kept as they are sent."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.engine = WasmtimeEngine()
        self.acks: list[dict[str, object]] = []
        self.pipelines: list[Pipeline] = []
        self.manager = DeployManager(
            config,
            self.engine,
            ModuleStore(StateDir.of(config).modules),
            lambda: self.pipelines,
            self._publish,
        )
        self.pipelines = build_pipelines(
            config, self.engine, lambda *_: True, pushed=self.manager.restore()
        )

    def _publish(self, topic: str, payload: bytes, qos: int, retain: bool) -> bool:
        if topic == self.manager.ack_topic:
            self.acks.append(json.loads(payload))
        return True

    def finish(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while self.manager.busy:
            assert time.monotonic() < deadline, "the compile did not finish"
            time.sleep(0.005)
            self.manager.poll(time.monotonic())

    def close(self) -> None:
        self.manager.close()
        self.engine.close()


def _config(tmp_path: Path) -> Config:
    return load_config(
        write_config(
            tmp_path / "edged.yaml",
            {
                "node_id": "gw-1",
                "state_dir": str(tmp_path / "state"),
                "broker": {"host": "127.0.0.1", "port": 1883},
                "modules": {"filt": {"file": str(FILTERS / "passthrough.wasm")}},
                "pipelines": [
                    {
                        "name": "p",
                        "subscribe": ["in/#"],
                        "filters": [{"module": "filt"}],
                        "outputs": [{"topic": "out/{topic}"}],
                    }
                ],
                "deploy": {"allow_unsigned": True},
            },
        )
    )


def test_a_deploy_request_is_acknowledged_before_its_compile_and_survives_a_stop(
    tmp_path: Path,
) -> None:
    """The request's MQTT message is released as soon as the deploy is recorded (so the inputs
    behind it do not wait for the compile); a stop before the swap leaves the record, and the
    next start activates the version and acknowledges the request by its id."""
    config = _config(tmp_path)
    topic = f"{config.topic_prefix}/{config.node_id}/deploy".encode()
    request = manifest.build("filt", 2, FORWARD, key=None, request_id="r-1")

    first = Node(config)
    released: list[bool] = []
    first.manager.handle(topic, request, lambda: released.append(first.manager.busy))
    assert released == [True]  # released while still compiling
    assert first.acks == []
    first.close()  # stopped before the swap

    second = Node(config)
    second.manager.resume_pending()
    second.finish()
    assert [(a["request_id"], a["result"], a["version"]) for a in second.acks] == [
        ("r-1", "activated", 2)
    ]
    assert second.manager.store.pending() is None
    second.close()

    third = Node(config)  # nothing left to resume; the version is restored
    third.manager.resume_pending()
    assert not third.manager.busy and third.acks == []
    assert third.pipelines[0].steps[0].identity[0] == second.pipelines[0].steps[0].identity[0]
    third.close()
