"""The two ceilings: a bare paho receive → republish loop, with the workload done in plain Python
(ceiling 1) or by the same filter module called through wasmtime's raw path (ceiling 2).

    python -m benchmarks.ceiling --port P --workload threshold --qos 0 [--wasm] ...

Both do only what the workload needs: no budgets, no queue, no routing, no metrics. paho acks
QoS 1 deliveries when `on_message` returns. Ticks (windowed average) are checked between network
reads.

The client is edged's own paho subclass (`edged.mqtt._paho.Client`: one 64 KiB `recv` for many
packets, a direct PUBLISH decoder, direct QoS 0 and 1 publishes), and every packet already read
is handled before the outputs are written in one go, as the daemon does. So ceiling and daemon
share one network stack, and edged's ratio to ceiling 2 is the cost of what the daemon adds:
budgets, the intake queue, routing, counters. `--stock-paho` runs the same loop on paho's own
client instead.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import struct
import time
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as paho
import wasmtime
from wasmtime import _bindings as raw

from edged.mqtt._paho import Client

FILTERS = Path(__file__).resolve().parent.parent / "examples" / "filters"
LIMIT = 35

Emitted = list[tuple[bytes, bytes]]


class RawFilter:
    """A filter module on wasmtime's raw call path: memmove in, unchecked call, read the result.

    The engine has neither fuel nor epochs, and no call is timed or counted: the floor.
    """

    def __init__(self, module: str, params: bytes) -> None:
        engine = wasmtime.Engine()
        self.store = store = wasmtime.Store(engine)
        linker = wasmtime.Linker(engine)
        i32 = wasmtime.ValType.i32()
        linker.define_func("edged", "log", wasmtime.FuncType([i32, i32, i32], []), lambda *_: None)
        wasm = wasmtime.Module.from_file(engine, str(FILTERS / f"{module}.wasm"))
        exports = linker.instantiate(store, wasm).exports(store)
        memory = exports["memory"]
        assert isinstance(memory, wasmtime.Memory)
        self.memory = memory
        buffers = exports["edged_buffers"]
        at = buffers(store)  # type: ignore[operator]
        desc = bytes(memory.read(store, at, at + 16))
        self.in_ptr, _, self.out_ptr, _ = struct.unpack("<IIII", desc)
        self.ctx = store._context()
        self.mem_ref = ctypes.byref(memory._memory)
        self.vals = (raw.wasmtime_val_raw * 2)()
        self.arg0, self.arg1 = self.vals[0], self.vals[1]
        self.trap = ctypes.POINTER(raw.wasm_trap_t)()
        self.trap_ref = ctypes.byref(self.trap)
        self.on_message_ref = ctypes.byref(exports["edged_on_message"]._func)  # type: ignore[union-attr]
        tick = exports.get("edged_on_tick")
        self.on_tick_ref = ctypes.byref(tick._func) if tick is not None else None  # type: ignore[union-attr]
        init = exports.get("edged_init")
        if init is not None:
            memory.write(store, params, self.in_ptr)
            if init(store, len(params)) != 0:  # type: ignore[operator]
                raise SystemExit(f"{module}: init refused {params!r}")

    def _base(self) -> int:
        return ctypes.addressof(raw._wasmtime_memory_data(self.ctx, self.mem_ref).contents)

    def _call(self, func_ref: object, nargs: int) -> int:
        if raw._wasmtime_func_call_unchecked(self.ctx, func_ref, self.vals, nargs, self.trap_ref):
            raise SystemExit("the filter call failed")
        if self.trap:
            raise SystemExit("the filter trapped")
        return int(self.arg0.i32)

    def on_message(self, topic: bytes, payload: bytes) -> int:
        at = self._base() + self.in_ptr
        tlen = len(topic)
        ctypes.memmove(at, topic, tlen)
        ctypes.memmove(at + tlen, payload, len(payload))
        self.arg0.i32 = tlen
        self.arg1.i32 = len(payload)
        return self._call(self.on_message_ref, 2)

    def on_tick(self, now_ms: int) -> int:
        self.arg0.i64 = now_ms
        return self._call(self.on_tick_ref, 1)

    def emitted(self) -> Emitted:
        base = self._base() + self.out_ptr
        (used,) = struct.unpack("<I", ctypes.string_at(base, 4))
        area = ctypes.string_at(base + 4, used)
        records, pos = [], 0
        while pos < used:
            tlen, plen = struct.unpack_from("<II", area, pos)
            pos += 8
            records.append((area[pos : pos + tlen], area[pos + tlen : pos + tlen + plen]))
            pos += tlen + plen
        return records


def python_logic(workload: str) -> tuple[Callable[[bytes, bytes], Emitted], Callable[[], Emitted]]:
    """The workload in plain Python: `(on_message, on_tick)`, each returning what to publish."""
    if workload == "passthrough":
        return (lambda topic, payload: [(topic, payload)]), list

    if workload == "threshold":
        value_text = json.dumps  # floats print in their shortest round-trip form, as received

        def threshold(topic: bytes, payload: bytes) -> Emitted:
            value = json.loads(payload).get("value")
            if isinstance(value, int | float) and value > LIMIT:
                alert = (
                    f'{{"topic":{json.dumps(topic.decode())},"field":"value",'
                    f'"value":{value_text(value)},"limit":{LIMIT}}}'
                )
                return [(b"alert", alert.encode())]
            return []

        return threshold, list

    windows: dict[bytes, list[float]] = {}  # topic -> [count, sum, min, max]

    def average(topic: bytes, payload: bytes) -> Emitted:
        value = json.loads(payload).get("value")
        if not isinstance(value, int | float):
            return []
        w = windows.get(topic)
        if w is None:
            w = windows[topic] = [0, 0.0, 0.0, 0.0]
        if w[0] == 0:
            w[1], w[2], w[3] = 0.0, value, value
        w[0] += 1
        w[1] += value
        w[2] = min(w[2], value)
        w[3] = max(w[3], value)
        return []

    def tick() -> Emitted:
        now_ms = int(time.time() * 1000)
        out: Emitted = []
        for topic, w in windows.items():
            if w[0]:
                body = (
                    f'{{"avg":{w[1] / w[0]:.2f},"min":{w[2]:.2f},"max":{w[3]:.2f},'
                    f'"count":{int(w[0])},"ts":{now_ms}}}'
                )
                out.append((topic + b"/avg", body.encode()))
                w[0] = 0
        return out

    return average, tick


def wasm_logic(workload: str) -> tuple[Callable[[bytes, bytes], Emitted], Callable[[], Emitted]]:
    params = {"threshold": b"limit\x00%d\x00topic\x00alert\x00" % LIMIT}.get(workload, b"")
    filt = RawFilter(workload, params)
    forward, emit = 1, 2

    def on_message(topic: bytes, payload: bytes) -> Emitted:
        code = filt.on_message(topic, payload)
        if code == forward:
            return [(topic, payload)]
        return filt.emitted() if code == emit else []

    def on_tick() -> Emitted:
        return filt.emitted() if filt.on_tick(int(time.time() * 1000)) == emit else []

    return on_message, on_tick


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--mqtt-version", choices=("5", "3.1.1"), default="5")
    parser.add_argument("--workload", choices=("passthrough", "threshold", "average"))
    parser.add_argument("--qos", type=int, choices=(0, 1), default=0)
    parser.add_argument("--prefix", required=True, help="reads PREFIX/in/#, writes PREFIX/out/")
    parser.add_argument("--tick", type=float, default=0.1)
    parser.add_argument("--wasm", action="store_true", help="ceiling 2: the filter in Wasm")
    parser.add_argument("--stock-paho", action="store_true", help="paho's client, not edged's")
    args = parser.parse_args()

    on_message, on_tick = (wasm_logic if args.wasm else python_logic)(args.workload)
    out = args.prefix + "/out/"
    qos = args.qos
    v5 = args.mqtt_version == "5"
    client = (paho.Client if args.stock_paho else Client)(
        paho.CallbackAPIVersion.VERSION2,
        client_id=f"ceiling-{args.prefix.replace('/', '-')}",
        protocol=paho.MQTTv5 if v5 else paho.MQTTv311,
    )

    # edged's own direct publishes, as the daemon uses them (QoS 0 and 1)
    direct = None
    if isinstance(client, Client):
        direct = client.publish_qos0 if qos == 0 else client.publish_qos1
    out_bytes = out.encode()

    def filtered(in_topic: bytes, in_payload: bytes) -> None:
        for topic, payload in on_message(in_topic, in_payload):
            if direct is not None:
                direct(out_bytes + topic, payload)
            else:
                client.publish(out + topic.decode(), payload, qos)

    if isinstance(client, Client):
        client.on_received = lambda msg: filtered(msg.topic, msg.payload)
    else:
        client.on_message = lambda _c, _u, msg: filtered(msg._topic, msg.payload)
    client.on_connect = lambda c, *_: c.subscribe(args.prefix + "/in/#", qos)
    client.connect(args.host, args.port)
    next_tick = time.monotonic() + args.tick
    ticking = args.workload == "average"
    buffered = client.buffered if isinstance(client, Client) else (lambda: 0)
    while True:
        client.loop(min(1.0, max(0.0, next_tick - time.monotonic())) if ticking else 1.0)
        if buffered():
            # Publishes made inside paho's callbacks wait for the next write: all in one.
            while buffered():
                client.loop_read()
            client.loop_write()
        if ticking and time.monotonic() >= next_tick:
            next_tick += args.tick
            for topic, payload in on_tick():
                client.publish(out + topic.decode(), payload, qos)


if __name__ == "__main__":
    main()
