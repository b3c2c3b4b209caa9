"""Configs the config tests start from, and helpers to write them and collect their errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from edged.config import ConfigError, parse_config

MIB = 1024 * 1024

SECRET = "hunter2-Zq9"

FULL = """\
node_id: gw-1
topic_prefix: site/edged
state_dir: state
broker:
  host: mqtt.example.net
  port: 8884
  client_id: gateway-one
  keepalive: 45
  mqtt_version: "3.1.1"
  username: edge
  password: hunter2-Zq9
  tls:
    ca_file: certs/ca.pem
    cert_file: certs/client.pem
    key_file: certs/client.key
  reconnect_min_delay: 0.5
  reconnect_max_delay: 30
modules:
  threshold:
    file: filters/threshold.wasm
    params: {limit: 30, field: temp, strict: true, scale: 1.5}
  passthrough:
    file: filters/passthrough.wasm
    budgets: {memory: 4 MiB, deadline_ms: 20}
pipelines:
  - name: temperature
    subscribe:
      - topic: sensors/+/temperature
        qos: 1
      - sensors/+/temp
    filters:
      - module: threshold
        params: {limit: 28}
        tick_interval: 10
      - passthrough
    outputs:
      - match: alerts/#
        topic: "out/{node_id}/{pipeline}/{topic}"
        qos: 2
        retain: true
      - topic: "out/{topic}"
    on_quarantine: skip
budgets:
  memory: 8 MiB
  fuel: 5000000
  deadline_ms: 50
  max_emits: 16
  max_emit_bytes: 16 KiB
  table_elements: 500
engine:
  wasm_stack: 1 MiB
  epoch_tick_ms: 5
daemon:
  memory_budget: 1 GiB
  queue_size: 500
  overload: block
violations:
  dead_letter_topic: "dlq/{node_id}/{prefix}"
  dead_letter_qos: 1
  quarantine_after: 3
  window: 2.5
  cooldown: 0
metrics:
  interval: 0
log:
  level: debug
  format: json
  summary_interval: 15
"""


def write(directory: Path, text: str, name: str = "edged.yaml") -> Path:
    path = directory / name
    path.write_text(text)
    return path


def minimal() -> dict[str, Any]:
    return {
        "node_id": "gw-1",
        "broker": {},
        "modules": {
            "threshold": {"file": "filters/threshold.wasm", "params": {"limit": 30}},
            "passthrough": {"file": "filters/passthrough.wasm"},
        },
        "pipelines": [
            {
                "name": "temperature",
                "subscribe": ["sensors/+/temperature"],
                "filters": ["threshold"],
                "outputs": [{"topic": "out/{topic}"}],
            }
        ],
    }


def errors_of(data: object, base_dir: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(data, base_dir=base_dir)
    return caught.value.errors
