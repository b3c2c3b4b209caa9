"""The Sparkplug B example filters (docs/sparkplug.md) against an independent implementation.

The oracle is pysparkplug (PyPI): it builds the BIRTH, DATA and DEATH payloads the decode filter
reads, and decodes the rebirth requests and the payloads the encode filter writes. Everything
runs through the real wasmtime engine on the committed modules; the end-to-end test runs the
daemon as a subprocess against a real mosquitto.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import json
import os
import shutil
import struct
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from edged.config import ParamValue
from edged.config.model import DEFAULT_BUDGETS, Budgets
from edged.engine import SavedState, WasmtimeEngine
from edged.engine.wasmtime_engine import WasmtimeModule
from edged.engine.wasmtime_filter import WasmtimeFilter
from edged.errors import FilterRejected
from edged.mqtt.mosquitto import PrivateBroker
from tests.helpers.daemon import DaemonProcess, write_config
from tests.helpers.mqtt import Client
from tests.helpers.paths import FILTERS, ROOT

spb = pytest.importorskip("pysparkplug", reason="pysparkplug (scripts/setup.sh installs it)")
pb = pytest.importorskip("pysparkplug._protobuf")

DT = spb.DataType
UTC = datetime.UTC
T0 = 1_733_580_000_000

#: one value of every datatype the filters take, in the oracle's terms
SAMPLES: dict[Any, Any] = {
    DT.INT8: -5,
    DT.INT16: -300,
    DT.INT32: -70_000,
    DT.INT64: -(2**40),
    DT.UINT8: 250,
    DT.UINT16: 65_000,
    DT.UINT32: 4_000_000_000,
    DT.UINT64: 2**63 + 5,
    DT.FLOAT: 21.3,
    DT.DOUBLE: 0.1,
    DT.BOOLEAN: True,
    DT.STRING: 'h\u00e9llo "x" / +#',
    DT.DATETIME: datetime.datetime(2024, 12, 7, 14, 0, 0, 125_000, tzinfo=UTC),
    DT.TEXT: "two\nlines",
    DT.UUID: str(uuid.UUID(int=0x1234)),
    DT.BYTES: b"\x00\x01\xfe\xff",
    DT.FILE: b"%PDF-1.7 ...",
    DT.INT8_ARRAY: (-1, 2, -128, 127),
    DT.INT16_ARRAY: (-32768, 0, 32767),
    DT.INT32_ARRAY: (-(2**31), 5),
    DT.INT64_ARRAY: (-(2**63), 2**63 - 1),
    DT.UINT8_ARRAY: (0, 255),
    DT.UINT16_ARRAY: (65_535, 1),
    DT.UINT32_ARRAY: (2**32 - 1,),
    DT.UINT64_ARRAY: (2**64 - 1, 0),
    DT.FLOAT_ARRAY: (1.5, -0.1, 3.4e38),
    DT.DOUBLE_ARRAY: (0.1, 1e300, -2.5),
    DT.BOOLEAN_ARRAY: (True, False, True, True, False, False, False, False, True),
    DT.STRING_ARRAY: ("a", "", "\u00fc"),
    DT.DATETIME_ARRAY: (
        datetime.datetime(2024, 1, 1, tzinfo=UTC),
        datetime.datetime(2025, 6, 30, 12, 0, 0, 1000, tzinfo=UTC),
    ),
}

#: the datatype names docs/sparkplug.md shows in "datatype"
NAMES = {
    DT.UINT8: "UInt8",
    DT.UINT16: "UInt16",
    DT.UINT32: "UInt32",
    DT.UINT64: "UInt64",
    DT.UUID: "UUID",
    DT.DATETIME: "DateTime",
    DT.BOOLEAN_ARRAY: "BooleanArray",
    DT.STRING_ARRAY: "StringArray",
    DT.DATETIME_ARRAY: "DateTimeArray",
}


def type_name(dt: Any) -> str:
    """The specification's name of a datatype (Int8, UInt32Array, ...)."""
    if dt in NAMES:
        return NAMES[dt]
    if dt.name.startswith("UINT"):
        return "UInt" + dt.name[4:].replace("_ARRAY", "Array")
    return "".join(part.capitalize() for part in dt.name.split("_"))


def as_json(dt: Any, value: Any) -> Any:
    """What the decode filter should say for an oracle value: DateTime as ms, bytes as base64,
    arrays as lists."""
    if isinstance(value, datetime.datetime):
        return round(value.timestamp() * 1000)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, tuple):
        return [as_json(dt, v) for v in value]
    return value


def same(dt: Any, got: Any, want: Any) -> bool:
    """Equal values; Float and FloatArray compared as float32, the precision they travel in."""
    if dt in (DT.FLOAT, DT.FLOAT_ARRAY):
        f32 = lambda v: struct.pack("<f", v)  # noqa: E731
        if isinstance(want, list):
            return [f32(v) for v in got] == [f32(v) for v in want]
        return bool(f32(got) == f32(want))
    return bool(got == want)


@pytest.fixture(scope="module")
def engine() -> WasmtimeEngine:
    return WasmtimeEngine()


@pytest.fixture(scope="module")
def decode_module(engine: WasmtimeEngine) -> WasmtimeModule:
    return engine.load_file("sparkplug_decode", FILTERS / "sparkplug_decode.wasm")


class Decoder:
    """One instance of the decode filter, restartable through its saved state."""

    def __init__(
        self,
        module: WasmtimeModule,
        params: dict[str, ParamValue] | None = None,
        budgets: Budgets = DEFAULT_BUDGETS,
    ):
        self.module = module
        self.params: dict[str, ParamValue] = params or {}
        self.budgets = budgets
        self.logs: list[tuple[str, str]] = []
        self.filt: WasmtimeFilter = self._fresh()

    def _fresh(self) -> WasmtimeFilter:
        return self.module.instantiate(
            self.params, lambda lvl, txt: self.logs.append((lvl, txt)), self.budgets
        )

    def restart(self) -> SavedState:
        """Save the state, throw the instance away, load the state into a fresh one."""
        saved = self.filt.save_state()
        assert saved is not None
        self.filt = self._fresh()
        self.filt.load_state(saved)
        return saved

    def msg(self, topic: str, payload: bytes) -> list[tuple[str, dict[str, Any]]]:
        out = list(self.filt.on_message(topic.encode(), payload))
        return [(t.decode(), json.loads(p)) for t, p in out]

    def reject(self, topic: str, payload: bytes) -> FilterRejected:
        with pytest.raises(FilterRejected) as info:
            list(self.filt.on_message(topic.encode(), payload))
        return info.value

    def stats(self) -> dict[str, Any]:
        out = list(self.filt.on_tick(T0))
        assert len(out) == 1 and out[0][0] == b"sparkplug/$stats"
        stats: dict[str, Any] = json.loads(out[0][1])
        return stats


@pytest.fixture
def dec(decode_module: WasmtimeModule) -> Decoder:
    return Decoder(decode_module)


def birth_metrics(base_alias: int) -> list[Any]:
    return [
        spb.Metric(
            timestamp=T0, name=f"m/{type_name(dt)}", datatype=dt, value=v, alias=base_alias + i
        )
        for i, (dt, v) in enumerate(SAMPLES.items())
    ]


def data_metrics(base_alias: int) -> list[Any]:
    return [
        spb.Metric(timestamp=T0 + 5, name=None, datatype=dt, value=v, alias=base_alias + i)
        for i, (dt, v) in enumerate(SAMPLES.items())
    ]


def check_metrics(
    got: list[tuple[str, dict[str, Any]]],
    oracle: Any,
    names: dict[int, str],
    kind: str,
    device: str | None,
) -> None:
    """Every metric of the oracle's decoded payload came out, in order, with its value."""
    assert len(got) == len(oracle.metrics)
    for (topic, msg), metric in zip(got, oracle.metrics, strict=True):
        name = metric.name or names[metric.alias]
        dev = f"/{device}" if device else ""
        assert topic == f"sparkplug/G1/E1{dev}/{name}"
        want_head = {"group": "G1", "edge_node": "E1", "type": kind, "seq": oracle.seq}
        if device:
            want_head["device"] = device
        assert {k: msg[k] for k in want_head} == want_head
        assert msg["metric"] == name
        assert msg["alias"] == metric.alias
        assert msg["timestamp"] == metric.timestamp
        want = as_json(metric.datatype, metric.value)
        assert same(metric.datatype, msg["value"], want), (name, msg["value"], want)
        assert "error" not in msg


def test_every_datatype_through_births_a_restart_and_data(dec: Decoder) -> None:
    """NBIRTH and DBIRTH with every scalar and array datatype, a restart (state saved and loaded
    into a fresh instance), then NDATA and DDATA by alias only: every value comes out as the
    oracle decodes it, with the name and datatype the BIRTH gave."""
    nbirth = spb.NBirth(timestamp=T0, seq=0, metrics=tuple(birth_metrics(1)))
    dbirth = spb.DBirth(timestamp=T0, seq=1, metrics=tuple(birth_metrics(101)))
    got = dec.msg("spBv1.0/G1/NBIRTH/E1", nbirth.encode())
    check_metrics(got, spb.NBirth.decode(nbirth.encode()), {}, "NBIRTH", None)
    for (_, msg), (dt, _) in zip(got, SAMPLES.items(), strict=True):
        assert msg["datatype"] == type_name(dt)
    got = dec.msg("spBv1.0/G1/DBIRTH/E1/D1", dbirth.encode())
    check_metrics(got, spb.DBirth.decode(dbirth.encode()), {}, "DBIRTH", "D1")

    saved = dec.restart()
    assert saved.format == 1

    ndata = spb.NData(timestamp=T0 + 5, seq=2, metrics=tuple(data_metrics(1))).encode()
    ddata = spb.DData(timestamp=T0 + 5, seq=3, metrics=tuple(data_metrics(101))).encode()
    names_n = {1 + i: f"m/{type_name(dt)}" for i, dt in enumerate(SAMPLES)}
    names_d = {101 + i: f"m/{type_name(dt)}" for i, dt in enumerate(SAMPLES)}
    got = dec.msg("spBv1.0/G1/NDATA/E1", ndata)
    check_metrics(got, spb.NData.decode(ndata, birth=nbirth), names_n, "NDATA", None)
    for (_, msg), (dt, _) in zip(got, SAMPLES.items(), strict=True):
        assert msg["datatype"] == type_name(dt)
    got = dec.msg("spBv1.0/G1/DDATA/E1/D1", ddata)
    check_metrics(got, spb.DData.decode(ddata, birth=dbirth), names_d, "DDATA", "D1")
    assert dec.stats() == {
        "edge_nodes": 1,
        "aliases": 2 * len(SAMPLES),
        "rebirth_requests": 0,
        "seq_gaps": 0,
        "rejected": 0,
    }


def test_the_json_of_one_metric(dec: Decoder) -> None:
    """The documented message: one Float metric with a quality property, then null values."""
    birth = pb.Payload()
    birth.timestamp = T0
    birth.seq = 0
    m = birth.metrics.add()
    m.name, m.alias, m.datatype, m.float_value = "Temp", 7, DT.FLOAT, 21.5
    m.properties.keys.append("Quality")
    q = m.properties.values.add()
    q.type, q.int_value = DT.INT32, 192
    dec.msg("spBv1.0/G/NBIRTH/E", birth.SerializeToString())
    dec.msg("spBv1.0/G/DBIRTH/E/D", birth.SerializeToString())
    data = pb.Payload()
    data.timestamp, data.seq = T0, 2
    m = data.metrics.add()
    m.alias, m.float_value = 7, 21.5
    m.properties.keys.append("Quality")
    q = m.properties.values.add()
    q.type, q.int_value = DT.INT32, 192
    [(topic, msg)] = dec.msg("spBv1.0/G/DDATA/E/D", data.SerializeToString())
    assert topic == "sparkplug/G/E/D/Temp"
    assert msg == {
        "group": "G",
        "edge_node": "E",
        "device": "D",
        "type": "DDATA",
        "seq": 2,
        "metric": "Temp",
        "alias": 7,
        "datatype": "Float",
        "value": 21.5,
        "timestamp": T0,
        "quality": 192,
    }
    null = spb.DData(
        timestamp=T0,
        seq=3,
        metrics=(spb.Metric(timestamp=T0, name=None, alias=7, datatype=DT.FLOAT, is_null=True),),
    )
    [(_, msg)] = dec.msg("spBv1.0/G/DDATA/E/D", null.encode())
    assert msg["value"] is None


def test_topics_keep_name_folders_and_replace_wildcards(dec: Decoder) -> None:
    """A metric name's '/' become topic levels, '+' and '#' become '_'; the prefix is a param."""
    custom = Decoder(dec.module, {"prefix": "plant/spb"})
    birth = spb.NBirth(
        timestamp=T0,
        seq=0,
        metrics=(
            spb.Metric(timestamp=T0, name="Motor 1/rpm+#", datatype=DT.INT32, value=3, alias=1),
        ),
    )
    [(topic, msg)] = custom.msg("spBv1.0/G/NBIRTH/E", birth.encode())
    assert topic == "plant/spb/G/E/Motor 1/rpm__"
    assert msg["metric"] == "Motor 1/rpm+#"


def ndata(seq: int, alias: int, ts: int = T0) -> bytes:
    metric = spb.Metric(timestamp=ts, name=None, alias=alias, datatype=DT.INT32, value=1)
    return bytes(spb.NData(timestamp=ts, seq=seq, metrics=(metric,)).encode())


def nbirth(seq: int = 0) -> bytes:
    metric = spb.Metric(timestamp=T0, name="Count", alias=1, datatype=DT.INT32, value=0)
    return bytes(spb.NBirth(timestamp=T0, seq=seq, metrics=(metric,)).encode())


def rebirth_request(records: list[tuple[bytes, bytes]], group: str, node: str) -> Any:
    """The one record of a rejection, checked to be an NCMD the oracle reads as a rebirth."""
    [(topic, payload)] = records
    assert topic.decode() == f"spBv1.0/{group}/NCMD/{node}"
    cmd = spb.NCmd.decode(payload)
    [metric] = cmd.metrics
    assert metric.name == "Node Control/Rebirth"
    assert metric.datatype == DT.BOOLEAN
    assert metric.value is True
    return cmd


def test_an_unknown_alias_is_rejected_and_asks_for_a_rebirth_once(dec: Decoder) -> None:
    """NDATA with an alias no BIRTH named: REJECT with the reason, and an NCMD Node
    Control/Rebirth = true to spBv1.0/<group>/NCMD/<edge node>; again only after 10 s of
    payload time or after the NBIRTH came."""
    rejected = dec.reject("spBv1.0/G/NDATA/E", ndata(4, 9))
    assert rejected.text == "NDATA: unknown alias 9: no BIRTH named it; rebirth requested"
    cmd = rebirth_request(rejected.records, "G", "E")
    assert cmd.timestamp == T0

    again = dec.reject("spBv1.0/G/NDATA/E", ndata(5, 9, T0 + 9_999))
    assert again.text.endswith("rebirth already requested")
    assert again.records == []
    # a restart keeps the mark
    dec.restart()
    assert dec.reject("spBv1.0/G/NDATA/E", ndata(6, 9, T0 + 5_000)).records == []
    later = dec.reject("spBv1.0/G/NDATA/E", ndata(7, 9, T0 + 10_000))
    rebirth_request(later.records, "G", "E")

    dec.msg("spBv1.0/G/NBIRTH/E", nbirth())
    assert dec.msg("spBv1.0/G/NDATA/E", ndata(1, 1))[0][1]["metric"] == "Count"
    after = dec.reject("spBv1.0/G/NDATA/E", ndata(2, 9))
    rebirth_request(after.records, "G", "E")
    # other edge nodes are asked for their own
    other = dec.reject("spBv1.0/G/NDATA/F", ndata(0, 1))
    rebirth_request(other.records, "G", "F")
    stats = dec.stats()
    assert stats["rebirth_requests"] == 4
    assert stats["rejected"] == 6


def test_an_unknown_device_metric_by_name_is_rejected(dec: Decoder) -> None:
    """DDATA naming a metric (no alias, no datatype) its DBIRTH did not have is refused too."""
    dec.msg("spBv1.0/G/NBIRTH/E", nbirth())
    data = pb.Payload()
    data.timestamp, data.seq = T0, 1
    m = data.metrics.add()
    m.name, m.int_value = "Ghost", 3
    rejected = dec.reject("spBv1.0/G/DDATA/E/D", data.SerializeToString())
    assert rejected.text.startswith('DDATA: unknown metric "Ghost": no BIRTH named it')
    rebirth_request(rejected.records, "G", "E")


def test_sequence_gaps_are_counted_and_wrap_at_256(dec: Decoder) -> None:
    """seq runs 0..255 and wraps; a jump counts as a gap, an NBIRTH starts over."""
    dec.msg("spBv1.0/G/NBIRTH/E", nbirth(0))
    for seq in range(1, 256):
        dec.msg("spBv1.0/G/NDATA/E", ndata(seq, 1))
    dec.msg("spBv1.0/G/NDATA/E", ndata(0, 1))
    assert dec.stats()["seq_gaps"] == 0
    dec.msg("spBv1.0/G/NDATA/E", ndata(3, 1))
    dec.msg("spBv1.0/G/NDATA/E", ndata(3, 1))
    assert dec.stats()["seq_gaps"] == 2
    dec.restart()
    dec.msg("spBv1.0/G/NDATA/E", ndata(4, 1))
    dec.msg("spBv1.0/G/NBIRTH/E", nbirth(0))
    dec.msg("spBv1.0/G/NDATA/E", ndata(2, 1))
    assert dec.stats()["seq_gaps"] == 3


def test_datasets_and_templates_are_named_but_not_decoded(dec: Decoder) -> None:
    """A DataSet or Template metric comes out with "value": null and an "error" saying so; the
    other metrics of the payload are decoded as usual."""
    birth = pb.Payload()
    birth.timestamp, birth.seq = T0, 0
    ds = birth.metrics.add()
    ds.name, ds.alias, ds.datatype = "Table", 1, DT.DATASET
    ds.dataset_value.num_of_columns = 1
    ds.dataset_value.columns.append("c")
    ds.dataset_value.types.append(DT.INT32)
    ds.dataset_value.rows.add().elements.add().int_value = 4
    tp = birth.metrics.add()
    tp.name, tp.alias, tp.datatype = "Motor", 2, 19
    tp.template_value.template_ref = "MotorType"
    tp.template_value.metrics.add().name = "rpm"
    ok = birth.metrics.add()
    ok.name, ok.alias, ok.datatype, ok.boolean_value = "Running", 3, DT.BOOLEAN, True
    got = dec.msg("spBv1.0/G/NBIRTH/E", birth.SerializeToString())
    assert [m["metric"] for _, m in got] == ["Table", "Motor", "Running"]
    assert got[0][1]["datatype"] == "DataSet"
    assert got[0][1]["value"] is None
    assert got[0][1]["error"] == "DataSet values are not decoded by this filter"
    assert got[1][1]["datatype"] == "Template"
    assert got[1][1]["error"] == "Template values are not decoded by this filter"
    assert got[2][1]["value"] is True


def test_deaths_say_who_died(dec: Decoder) -> None:
    """NDEATH and DDEATH each give one message on <prefix>/<group>/<node>[/<device>]/$death."""
    dec.msg("spBv1.0/G/NBIRTH/E", nbirth())
    ddeath = spb.DDeath(timestamp=T0 + 1, seq=1).encode()
    [(topic, msg)] = dec.msg("spBv1.0/G/DDEATH/E/D", ddeath)
    assert topic == "sparkplug/G/E/D/$death"
    assert msg == {
        "group": "G",
        "edge_node": "E",
        "device": "D",
        "type": "DDEATH",
        "seq": 1,
        "timestamp": T0 + 1,
    }
    ndeath = spb.NDeath(
        timestamp=T0 + 2,
        bd_seq_metric=spb.Metric(timestamp=None, name="bdSeq", datatype=DT.INT64, value=0),
    ).encode()
    [(topic, msg)] = dec.msg("spBv1.0/G/NDEATH/E", ndeath)
    assert topic == "sparkplug/G/E/$death"
    assert msg["type"] == "NDEATH"


def test_commands_state_and_other_topics(dec: Decoder) -> None:
    """NCMD, DCMD and STATE are dropped (the filter's own rebirth requests come back to it);
    a topic outside spBv1.0 or a payload that is not Sparkplug B is rejected with the reason."""
    assert dec.msg("spBv1.0/G/NCMD/E", b"\x08\x01") == []
    assert dec.msg("spBv1.0/STATE/host", b'{"online":true}') == []
    assert dec.reject("plant/temp", b"{}").text.startswith("not a Sparkplug B topic")
    assert dec.reject("spBv1.0/G/NDATA/E", b"\xff\xff").text == "NDATA: not a Sparkplug B payload"


def test_fresh_build_matches_the_committed_modules(tmp_path: Path) -> None:
    """`make sparkplug` (nanopb's generator from the dev extras, its runtime from
    third_party/nanopb) gives the committed .wasm files byte for byte."""
    generator = Path(sys.executable).parent / "nanopb_generator"
    missing = [tool for tool in ("make", "clang", "wasm-ld") if shutil.which(tool) is None]
    if missing or not generator.exists():
        pytest.skip(f"not installed: {', '.join(missing) or generator}")
    repo = tmp_path.resolve() / "repo"
    filters = repo / "examples" / "filters"
    filters.mkdir(parents=True)
    shutil.copy2(FILTERS / "Makefile", filters)
    for src in FILTERS.glob("sparkplug_*.c"):
        shutil.copy2(src, filters)
    shutil.copytree(
        FILTERS / "sparkplug", filters / "sparkplug", ignore=shutil.ignore_patterns("build")
    )
    shutil.copytree(ROOT / "sdk" / "c", repo / "sdk" / "c")
    shutil.copytree(ROOT / "third_party" / "nanopb", repo / "third_party" / "nanopb")
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS")}
    result = subprocess.run(
        ["make", "-C", str(filters), "sparkplug", f"NANOPB_GEN={generator}"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "warning" not in result.stderr
    built = sorted(p.name for p in filters.glob("*.wasm"))
    assert built == sorted(p.name for p in FILTERS.glob("sparkplug_*.wasm"))
    for name in built:
        assert (filters / name).read_bytes() == (FILTERS / name).read_bytes(), name


def test_end_to_end_a_restart_keeps_the_aliases_and_an_unknown_one_asks_for_a_rebirth(
    broker: PrivateBroker, tmp_path: Path
) -> None:
    """The daemon with docs/sparkplug.md's pipeline against a real mosquitto: BIRTHs, a restart
    (SIGTERM, start), DDATA by alias still named; then NDATA with an alias never born lands on
    the dead-letter topic with the reason, and the NCMD rebirth request reaches the broker."""
    root = f"t/{uuid.uuid4().hex[:8]}"
    group = f"G{uuid.uuid4().hex[:6]}"
    node_id = f"n{uuid.uuid4().hex[:6]}"
    config = tmp_path / "edged.yaml"
    write_config(
        config,
        {
            "node_id": node_id,
            "topic_prefix": root,
            "state_dir": str(tmp_path / "state"),
            "broker": {"host": broker.host, "port": broker.port},
            "modules": {"sparkplug_decode": {"file": str(FILTERS / "sparkplug_decode.wasm")}},
            "pipelines": [
                {
                    "name": "sparkplug",
                    "subscribe": [{"topic": f"spBv1.0/{group}/#", "qos": 1}],
                    "filters": [
                        {"module": "sparkplug_decode", "params": {"prefix": f"{root}/spb"}}
                    ],
                    "outputs": [
                        {"match": "spBv1.0/+/NCMD/+", "topic": "{topic}", "qos": 1},
                        {"match": f"{root}/spb/#", "topic": "{topic}", "qos": 1},
                    ],
                }
            ],
        },
    )
    status = f"{root}/{node_id}/status"
    watcher = Client(broker, persistent=True)
    watcher.subscribe(f"{root}/spb/#")
    watcher.subscribe(f"{root}/{node_id}/deadletter")
    watcher.subscribe(f"spBv1.0/{group}/NCMD/#")
    edge = Client(broker)

    daemon = DaemonProcess(config, status, broker)
    daemon.wait_online()
    birth = spb.NBirth(
        timestamp=T0,
        seq=0,
        metrics=(spb.Metric(timestamp=T0, name="Temp", datatype=DT.FLOAT, value=20.5, alias=7),),
    )
    edge.publish(f"spBv1.0/{group}/NBIRTH/E", birth.encode())
    [(topic, payload)] = watcher.collect(1)
    assert topic == f"{root}/spb/{group}/E/Temp"
    assert json.loads(payload)["value"] == 20.5
    assert daemon.stop() == 0

    daemon = DaemonProcess(config, status, broker)
    daemon.wait_online()
    data = spb.NData(
        timestamp=T0 + 1,
        seq=1,
        metrics=(spb.Metric(timestamp=T0 + 1, name=None, datatype=DT.FLOAT, value=21.5, alias=7),),
    )
    edge.publish(f"spBv1.0/{group}/NDATA/E", data.encode())
    [(topic, payload)] = watcher.collect(1)
    assert topic == f"{root}/spb/{group}/E/Temp"
    assert json.loads(payload)["value"] == 21.5

    edge.publish(f"spBv1.0/{group}/NDATA/E", ndata(2, 99))
    got = dict((t, p) for t, p in watcher.collect(2))
    dead = json.loads(got[f"{root}/{node_id}/deadletter"])
    assert dead["reason"] == "rejected"
    assert "unknown alias 99" in json.dumps(dead)
    rebirth_request(
        [(b"spBv1.0/" + group.encode() + b"/NCMD/E", got[f"spBv1.0/{group}/NCMD/E"])], group, "E"
    )
    assert watcher.quiet(0.5) == []
    assert daemon.stop() == 0
    watcher.close()
    edge.close()


@pytest.fixture(scope="module")
def encode_module(engine: WasmtimeEngine) -> WasmtimeModule:
    return engine.load_file("sparkplug_encode", FILTERS / "sparkplug_encode.wasm")


def reading(metrics: list[dict[str, Any]], device: str | None = None, ts: int = T0) -> bytes:
    body: dict[str, Any] = {"timestamp": ts, "metrics": metrics}
    if device:
        body["device"] = device
    return json.dumps(body).encode()


def every_datatype() -> list[dict[str, Any]]:
    return [
        {"name": f"m/{type_name(dt)}", "datatype": type_name(dt), "value": as_json(dt, v)}
        for dt, v in SAMPLES.items()
    ]


class Encoder(Decoder):
    def records(self, payload: bytes, topic: str = "readings") -> list[tuple[str, bytes]]:
        return [(t.decode(), p) for t, p in self.filt.on_message(topic.encode(), payload)]


def check_values(metrics: Any, want: list[dict[str, Any]]) -> None:
    by_name = {m["name"]: m for m in want}
    for metric in metrics:
        w = by_name[metric.name]
        assert type_name(metric.datatype) == w["datatype"]
        assert same(metric.datatype, as_json(metric.datatype, metric.value), w["value"]), w


def test_encode_every_datatype_births_then_data_the_oracle_reads(
    encode_module: WasmtimeModule,
) -> None:
    """Readings of every datatype: the first makes the NBIRTH (seq 0, bdSeq, Node
    Control/Rebirth, every metric with its alias and value), the next an NDATA by alias; a
    device's first reading a DBIRTH, its next a DDATA; seq counts on through a restart. The
    oracle decodes each with the BIRTH and gets the values back."""
    enc = Encoder(encode_module, {"group": "G", "edge_node": "E"})
    want = every_datatype()
    [(topic, raw)] = enc.records(reading(want))
    assert topic == "spBv1.0/G/NBIRTH/E"
    nbirth = spb.NBirth.decode(raw)
    assert nbirth.seq == 0 and nbirth.timestamp == T0
    names = [m.name for m in nbirth.metrics]
    assert names[:2] == ["bdSeq", "Node Control/Rebirth"]
    check_values(nbirth.metrics[2:], want)
    assert len({m.alias for m in nbirth.metrics[2:]}) == len(want)

    [(topic, raw)] = enc.records(reading(want, ts=T0 + 1))
    assert topic == "spBv1.0/G/NDATA/E"
    ndata = spb.NData.decode(raw, birth=nbirth)
    assert ndata.seq == 1
    assert all(not m.HasField("name") for m in pb.Payload.FromString(raw).metrics)
    for metric, w in zip(ndata.metrics, want, strict=True):
        assert nbirth.get_name(metric.alias) == w["name"]
        assert same(metric.datatype, as_json(metric.datatype, metric.value), w["value"])

    enc.restart()
    [(topic, raw)] = enc.records(reading(want, device="D"))
    assert topic == "spBv1.0/G/DBIRTH/E/D"
    dbirth = spb.DBirth.decode(raw)
    assert dbirth.seq == 2
    check_values(dbirth.metrics, want)
    [(topic, raw)] = enc.records(reading(want, device="D"))
    assert topic == "spBv1.0/G/DDATA/E/D"
    ddata = spb.DData.decode(raw, birth=dbirth)
    assert ddata.seq == 3
    for metric, w in zip(ddata.metrics, want, strict=True):
        assert same(metric.datatype, as_json(metric.datatype, metric.value), w["value"])


def test_encode_seq_wraps_and_the_decoder_counts_no_gap(
    encode_module: WasmtimeModule, decode_module: WasmtimeModule
) -> None:
    """600 readings: seq runs 0..255 and wraps to 0; the decode filter, fed the encoder's
    output, resolves every alias and counts no sequence gap."""
    enc = Encoder(encode_module, {"group": "G", "edge_node": "E"})
    dec = Decoder(decode_module)
    seqs = []
    for i in range(600):
        metrics = [{"name": "Temp", "datatype": "Float", "value": 20 + i / 10}]
        [(topic, raw)] = enc.records(reading(metrics, device="D" if i % 2 else None, ts=T0 + i))
        seqs.append(pb.Payload.FromString(raw).seq)
        [msg] = [m for _, m in dec.msg(topic, raw) if m["metric"] == "Temp"]
        assert msg["value"] == round(20 + i / 10, 1)
        if i == 300:
            enc.restart()
    assert seqs == [i % 256 for i in range(600)]
    assert dec.stats()["seq_gaps"] == 0
    assert dec.stats()["rebirth_requests"] == 0


def test_encode_new_metric_rebirth_request_and_refusals(encode_module: WasmtimeModule) -> None:
    """A metric the BIRTH lacked brings a new DBIRTH; an NCMD Node Control/Rebirth brings the
    NBIRTH and every DBIRTH again; DataSet, bad values and a changed datatype are refused."""
    enc = Encoder(encode_module, {"group": "G", "edge_node": "E"})
    enc.records(reading([{"name": "a", "value": 1}]))
    enc.records(reading([{"name": "x", "value": 1.5}], device="D"))
    [(topic, raw)] = enc.records(reading([{"name": "y", "value": True}], device="D"))
    assert topic == "spBv1.0/G/DBIRTH/E/D"
    birth = spb.DBirth.decode(raw)
    assert [(m.name, m.is_null, m.value) for m in birth.metrics] == [
        ("x", True, None),
        ("y", False, True),
    ]
    cmd = spb.NCmd(
        timestamp=T0,
        metrics=(
            spb.Metric(timestamp=T0, name="Node Control/Rebirth", datatype=DT.BOOLEAN, value=True),
        ),
    ).encode()
    got = enc.records(cmd, "spBv1.0/G/NCMD/E")
    assert [t for t, _ in got] == ["spBv1.0/G/NBIRTH/E", "spBv1.0/G/DBIRTH/E/D"]
    assert spb.NBirth.decode(got[0][1]).seq == 0
    assert spb.DBirth.decode(got[1][1]).seq == 1
    for bad, why in [
        ({"name": "t", "datatype": "DataSet", "value": 1}, "DataSet"),
        ({"name": "a", "datatype": "Int8", "value": 1}, "differs"),
        ({"name": "b", "datatype": "Int8", "value": 128}, "range"),
        ({"name": "c", "datatype": "Bytes", "value": "!!"}, "base64"),
    ]:
        with pytest.raises(FilterRejected) as info:
            enc.records(reading([bad]))
        assert why in info.value.text


def test_encode_a_refused_reading_leaves_nothing_behind(encode_module: WasmtimeModule) -> None:
    """A reading refused for a bad value adds no metric and uses no seq: the next good reading
    of that metric is born first, with the seq that follows the last one sent."""
    enc = Encoder(encode_module, {"group": "G", "edge_node": "E"})
    enc.records(reading([{"name": "a", "value": 1}]))
    with pytest.raises(FilterRejected):
        enc.records(reading([{"name": "b", "datatype": "Int8", "value": 300}], device="D"))
    [(topic, raw)] = enc.records(
        reading([{"name": "b", "datatype": "Int8", "value": 3}], device="D")
    )
    assert topic == "spBv1.0/G/DBIRTH/E/D"
    birth = spb.DBirth.decode(raw)
    assert birth.seq == 1
    assert [(m.name, m.value) for m in birth.metrics] == [("b", 3)]


def test_more_metrics_than_max_metrics_are_refused_whole(decode_module: WasmtimeModule) -> None:
    """A payload with more metrics than the param max_metrics (default 64, the host's default
    max_emits) is refused with the reason and teaches no alias; raising it lets it through."""
    metrics = tuple(
        spb.Metric(timestamp=T0, name=f"m{i}", datatype=DT.INT32, value=i, alias=i)
        for i in range(65)
    )
    big = spb.NBirth(timestamp=T0, seq=0, metrics=metrics).encode()
    dec = Decoder(decode_module)
    rejected = dec.reject("spBv1.0/G/NBIRTH/E", big)
    assert rejected.text == (
        "NBIRTH: 65 metrics, over max_metrics (64): raise the param and the module's "
        "budgets.max_emits"
    )
    assert dec.stats()["aliases"] == 0
    budgets = dataclasses.replace(DEFAULT_BUDGETS, max_emits=65)
    roomy = Decoder(decode_module, {"max_metrics": 65}, budgets)
    assert len(roomy.msg("spBv1.0/G/NBIRTH/E", big)) == 65
