"""What MQTT 5 properties cost per message, in process: the bytes of a PUBLISH as the broker
sends them, decoded, routed through a pipeline of two example filters, and the output encoded
as it would be written, with no socket in the way (the socket costs the same either way).

Four cases alternate round by round so the machine's drift falls on all of them alike; each is
reported as µs per message and as a ratio to the first (no properties):
1. no properties (only the subscription identifier every delivery carries);
2. a traceparent and two user properties, `properties: pass`;
3. the same, `properties: drop`;
4. the same, through a module that reads and sets properties (tests/modules/setprops.wat)
   in place of the first filter.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Any

import wasmtime

from edged.config import DEFAULT_BUDGETS, OutputRule
from edged.engine import WasmtimeEngine
from edged.mqtt import publish
from edged.mqtt.properties import Properties
from edged.pipeline import Pipeline, Step
from edged.pipeline.outputs import OutputRules

ROOT = Path(__file__).resolve().parent.parent
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
PROPS = Properties(user=(("traceparent", TRACEPARENT), ("site", "north"), ("ts", "1733580000")))


def _packet(props: Properties | None, value: int) -> tuple[int, bytes]:
    wire = b"\x0b\x01" + (props.wire() if props is not None else b"")  # subscription id 1
    packet = publish.encode(
        b"sensors/room1/climate", json.dumps({"temp": value}).encode(), 1, 7, False, True, wire
    )
    header, rest = packet[0], packet[1:]
    while rest[0] & 0x80:
        rest = rest[1:]
    return header, rest[1:]


def _pipeline(rule: str, first: str) -> Pipeline:
    engine = WasmtimeEngine()

    def make(name: str, data: bytes, params: dict[str, Any]) -> Step:
        module = engine.load(name, data)
        return Step(name, module.instantiate(params, lambda *_: None, DEFAULT_BUDGETS))

    first_bytes = (
        bytes(wasmtime.wat2wasm((ROOT / "tests" / "modules" / "setprops.wat").read_text()))
        if first == "setprops"
        else (ROOT / "examples" / "filters" / "passthrough.wasm").read_bytes()
    )
    threshold = (ROOT / "examples" / "filters" / "threshold.wasm").read_bytes()

    def sink(
        topic: str, payload: bytes, qos: int, retain: bool, broker: str, props: bytes = b""
    ) -> bool:
        publish.encode(topic.encode(), payload, qos, 1, retain, True, props)
        return True

    return Pipeline(
        "p",
        [
            make(first, first_bytes, {}),
            make("threshold", threshold, {"limit": 10, "field": "temp"}),
        ],
        OutputRules(
            [OutputRule(topic="out/{topic}", qos=1, properties=rule)], node_id="n", pipeline="p"
        ),
        sink,
    )


def _run(pipeline: Pipeline, packets: list[tuple[int, bytes]]) -> float:
    started = time.perf_counter()
    for header, body in packets:
        message = publish.decode(header, body, True)
        assert message is not None
        pipeline.process(message.topic, message.payload, message.properties)
    return time.perf_counter() - started


def measure(messages: int, rounds: int) -> dict[str, Any]:
    cases = {
        "no properties": (None, "pass", "passthrough"),
        "traceparent + 2 user properties, pass": (PROPS, "pass", "passthrough"),
        "the same, drop": (PROPS, "drop", "passthrough"),
        "the same, a filter that reads and sets properties": (PROPS, "pass", "setprops"),
    }
    prepared = {
        name: (_pipeline(rule, first), [_packet(props, 5 + i % 20) for i in range(messages)])
        for name, (props, rule, first) in cases.items()
    }
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, (pipeline, packets) in prepared.items():
            times[name].append(_run(pipeline, packets) / messages * 1e6)
    base = statistics.median(times["no properties"])
    return {
        "messages": messages,
        "rounds": rounds,
        "rows": [
            {
                "case": name,
                "us_per_message": round(statistics.median(t), 2),
                "ratio": round(statistics.median(t) / base, 3),
            }
            for name, t in times.items()
        ],
    }


def table(section: dict[str, Any]) -> list[str]:
    lines = [
        f"## MQTT 5 properties per message (in process, {section['messages']:,} messages x "
        f"{section['rounds']} alternating rounds, median)",
        "",
        "Decode a QoS 1 PUBLISH, two filters (passthrough or a properties module, then "
        "threshold, half the readings go out), encode the output.",
        "",
        "| case | µs per message | ratio |",
        "|---|---|---|",
    ]
    for row in section["rows"]:
        lines.append(f"| {row['case']} | {row['us_per_message']} | {row['ratio']:.3f}x |")
    return lines


if __name__ == "__main__":
    print("\n".join(table(measure(20_000, 5))))
