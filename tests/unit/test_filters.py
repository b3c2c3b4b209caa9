"""The example filters in examples/filters, run through the real wasmtime engine.

Each test states one behaviour documented in examples/filters/README.md, sdk/c/README.md or
docs/filter-abi.md and checks it on the committed .wasm files, byte for byte.
"""

from __future__ import annotations

import json
import random
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, localcontext
from pathlib import Path

import pytest

from edged.config import ParamValue
from edged.engine import Filter, Record, SavedState, WasmtimeEngine
from edged.engine.wasmtime_engine import WasmtimeModule
from edged.errors import FilterCallError, ModuleError

ROOT = Path(__file__).resolve().parent.parent.parent
FILTERS = ROOT / "examples" / "filters"

ALL_FILTERS = ("passthrough", "threshold", "deadband", "average", "convert")
C_FILTERS = ("threshold", "deadband", "average", "convert")
#: input area sizes: the WAT example's descriptor, and the C SDK's default EDGED_INPUT_CAP
INPUT_CAP = {"passthrough": 61376} | dict.fromkeys(C_FILTERS, 64 * 1024)
#: params that make every filter usable; threshold has a required one
BASE_PARAMS: dict[str, dict[str, ParamValue]] = {"threshold": {"limit": 30}}

Logs = list[tuple[str, str]]


@dataclass
class Running:
    """One filter instance and the log lines it has written."""

    filt: Filter
    logs: Logs

    def msg(self, topic: bytes, payload: bytes) -> list[Record]:
        return list(self.filt.on_message(topic, payload))

    def tick(self, now_ms: int) -> list[Record]:
        return list(self.filt.on_tick(now_ms))


class Filters:
    """The committed example modules, loaded once; fresh instances per test."""

    def __init__(self, engine: WasmtimeEngine) -> None:
        self.modules: dict[str, WasmtimeModule] = {
            name: engine.load_file(name, FILTERS / f"{name}.wasm") for name in ALL_FILTERS
        }

    def start(self, name: str, params: Mapping[str, ParamValue] | None = None) -> Running:
        logs: Logs = []
        filt = self.modules[name].instantiate(
            dict(params or {}), lambda level, text: logs.append((level, text))
        )
        return Running(filt, logs)

    def refuse(self, name: str, params: Mapping[str, ParamValue]) -> tuple[str, Logs]:
        """The reason the module gives for refusing `params`, and what it logged."""
        logs: Logs = []
        with pytest.raises(ModuleError) as info:
            self.modules[name].instantiate(
                dict(params), lambda level, text: logs.append((level, text))
            )
        return info.value.reason, logs


@pytest.fixture(scope="module")
def engine() -> WasmtimeEngine:
    return WasmtimeEngine()


@pytest.fixture(scope="module")
def filters(engine: WasmtimeEngine) -> Filters:
    return Filters(engine)


def reading(value: str) -> bytes:
    return b'{"value": ' + value.encode() + b"}"


def half_up(value: float, decimals: int) -> str:
    """`value` with `decimals` digits, rounded half away from zero, without a sign on zero."""
    with localcontext() as ctx:
        ctx.prec = 200
        rounded = Decimal(value).quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP)
    text = format(rounded, "f")
    return text.lstrip("-") if rounded == 0 else text


# -- all filters -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ALL_FILTERS)
def test_exports_match_the_documented_shape(filters: Filters, name: str) -> None:
    """Only average takes ticks; every SDK filter takes params, the hand-written WAT one none;
    deadband and average keep state."""
    module = filters.modules[name]
    assert module.has_tick == (name == "average")
    assert module.has_init == (name != "passthrough")
    assert module.has_state == (name in ("deadband", "average"))


def outcome_for_42(name: str, topic: bytes, payload: bytes) -> list[Record]:
    """What each filter (with BASE_PARAMS) does with a `"value": 42` reading."""
    if name in ("passthrough", "deadband"):
        return [(topic, payload)]
    if name == "threshold":
        alert = b'{"topic":"' + topic + b'","field":"value","value":42,"limit":30}'
        return [(b"alert", alert)]
    if name == "convert":
        return [(topic, b'{"value":42.00}')]
    return []


@pytest.mark.parametrize("name", ALL_FILTERS)
def test_message_filling_the_input_area_exactly_reaches_the_filter(
    filters: Filters, name: str
) -> None:
    """A message of exactly the input area's size is processed; one byte more is refused."""
    running = filters.start(name, BASE_PARAMS.get(name))
    topic = b"cap/edge"
    body = b'{"value":42}'
    payload = b" " * (INPUT_CAP[name] - len(topic) - len(body)) + body
    assert running.msg(topic, payload) == outcome_for_42(name, topic, payload)
    with pytest.raises(FilterCallError) as info:
        running.msg(topic, b" " + payload)
    assert info.value.reason == "input_too_large"


GARBAGE: dict[str, bytes] = {
    "random_60k": random.Random(20240601).randbytes(60 * 1024),
    "deep_array": b"[" * 10000,
    "deep_object_in_field": b'{"value":' + b"{" * 10000,
    "deep_before_field": b'{"a":' + b"[" * 10000 + b',"value":42}',
    "deep_kept_field": b'{"value":1,"ts":' + b"[" * 10000,
    "huge_number": b'{"value":1' + b"0" * 60000 + b"}",
    "huge_exponent": b'{"value":1e' + b"9" * 60000 + b"}",
    "tiny_fraction": b'{"value":0.' + b"0" * 60000 + b"1}",
    "backslashes": b'{"' + b"\\" * 60000,
    "unterminated_string": b'{"value":"' + b"x" * 60000,
}


@pytest.mark.parametrize("garbage", GARBAGE, ids=list(GARBAGE))
@pytest.mark.parametrize("name", ALL_FILTERS)
def test_garbage_input_neither_traps_nor_exhausts_fuel(
    filters: Filters, name: str, garbage: str
) -> None:
    """Random bytes, deep nesting or huge tokens get an outcome, and the filter keeps working."""
    running = filters.start(name, BASE_PARAMS.get(name))
    topic = b"garbage/in"
    payload = GARBAGE[garbage]
    try:
        outcome = running.msg(topic, payload)
    except FilterCallError as exc:
        assert exc.reason == "input_too_large", f"{exc.reason}: {exc.detail}"
        assert len(topic) + len(payload) > INPUT_CAP[name]
    else:
        assert len(topic) + len(payload) <= INPUT_CAP[name]
        assert all(isinstance(t, bytes) and isinstance(p, bytes) for t, p in outcome)

    after = b'{"value":42}'
    assert running.msg(b"after", after) == outcome_for_42(name, b"after", after)
    if name == "average":
        summary = b'{"avg":42.00,"min":42.00,"max":42.00,"count":1,"ts":1}'
        # Garbage that still holds a reading (deep_kept_field, tiny_fraction) is summarised first.
        assert running.tick(1)[-1] == (b"after/avg", summary)


def test_garbage_values_are_not_mistaken_for_readings(filters: Filters) -> None:
    """Out-of-range numbers (1e60000) and malformed kept fields yield nothing from convert."""
    convert = filters.start("convert", {"keep": "ts"})
    for key in ("huge_number", "huge_exponent", "deep_kept_field", "deep_object_in_field"):
        assert convert.msg(b"g", GARBAGE[key]) == [], key
    assert convert.msg(b"g", GARBAGE["tiny_fraction"]) == [(b"g", b'{"value":0.00}')]


@pytest.mark.parametrize("name", C_FILTERS)
def test_sdk_refuses_params_beyond_its_capacity(filters: Filters, name: str) -> None:
    """More than 4096 bytes or more than 32 params make the SDK's init return -1 with a log."""
    base = BASE_PARAMS.get(name, {})
    reason, logs = filters.refuse(name, {**base, "pad": "x" * 5000})
    assert reason == "init returned -1 (parameters refused)"
    assert logs == [("error", "edged: params exceed EDGED_PARAMS_CAP")]

    many: dict[str, ParamValue] = {f"p{i}": i for i in range(33)}
    reason, logs = filters.refuse(name, {**base, **many})
    assert reason == "init returned -1 (parameters refused)"
    assert logs == [("error", "edged: more params than EDGED_MAX_PARAMS")]


# -- passthrough --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [b'{"value": 31.5}', b"", bytes(range(256)), b"\x00" * 1000],
    ids=["json", "empty", "all_bytes", "nuls"],
)
def test_passthrough_forwards_unchanged(filters: Filters, payload: bytes) -> None:
    """Passthrough forwards topic and payload exactly as received."""
    running = filters.start("passthrough")
    assert running.msg(b"plant/boiler", payload) == [(b"plant/boiler", payload)]
    assert running.msg("sensé/€".encode(), payload) == [("sensé/€".encode(), payload)]


def test_passthrough_takes_no_params(filters: Filters) -> None:
    """Passthrough has no edged_init, so configuring params for it is refused."""
    reason, _ = filters.refuse("passthrough", {"limit": 1})
    assert reason == "takes no parameters (no edged_init export)"


# -- threshold ----------------------------------------------------------------------------------


def test_threshold_readme_example(filters: Filters) -> None:
    """A reading above the limit becomes exactly one alert on "alert" in the documented form."""
    running = filters.start("threshold", {"limit": 30})
    assert running.msg(b"plant/boiler", b'{"value": 31.5, "unit": "C"}') == [
        (b"alert", b'{"topic":"plant/boiler","field":"value","value":31.5,"limit":30}')
    ]
    assert running.logs == []


@pytest.mark.parametrize(
    "payload",
    [
        b'{"value": 30}',
        b'{"value": 30.0}',
        b'{"value": 3e1}',
        b'{"value": 29.999}',
        b'{"value": -100}',
        b'{"status": "ok"}',
        b"not JSON",
        b"",
        b'{"value": "31"}',
        b'{"value": true}',
        b'{"value": null}',
        b'{"value": [31]}',
        b'{"value": {"v": 31}}',
        b'{"value": 031}',
        b'{"value": +31}',
        b'{"value": NaN}',
        b'[{"value": 31}]',
        b'{"a": {"value": 99}, "value": 1}',
    ],
)
def test_threshold_drops_everything_not_above_the_limit(filters: Filters, payload: bytes) -> None:
    """Readings equal to or below the limit, missing or non-numeric fields and non-JSON drop."""
    running = filters.start("threshold", {"limit": 30})
    assert running.msg(b"plant/boiler", payload) == []


def test_threshold_copies_value_and_limit_as_written(filters: Filters) -> None:
    """The value and limit text appear in the alert exactly as in the payload and the config."""
    running = filters.start("threshold", {"limit": "3e1"})
    assert running.msg(b"t", b'{"value": 3.1e1}') == [
        (b"alert", b'{"topic":"t","field":"value","value":3.1e1,"limit":3e1}')
    ]
    assert running.msg(b"t", b'{"value": 30}') == []


@pytest.mark.parametrize(
    ("limit", "text", "above"),
    [
        (30, b"30", b"30.000001"),
        (30.5, b"30.5", b"30.6"),
        (-0.5, b"-0.5", b"-0.25"),
        (1e16, b"1e+16", b"2e16"),
        ("0", b"0", b"0.001"),
    ],
)
def test_threshold_limit_reaches_the_module_as_text(
    filters: Filters, limit: ParamValue, text: bytes, above: bytes
) -> None:
    """Int, float and string limits are compared numerically and echoed as their config text."""
    running = filters.start("threshold", {"limit": limit})
    assert running.msg(b"t", b'{"value": ' + above + b"}") == [
        (b"alert", b'{"topic":"t","field":"value","value":' + above + b',"limit":' + text + b"}")
    ]
    assert running.msg(b"t", b'{"value": ' + text + b"}") == []


def test_threshold_configured_topic_and_field(filters: Filters) -> None:
    """`topic` sets the alert topic and `field` the key that is read and named in the alert."""
    running = filters.start("threshold", {"limit": 50, "field": "temp", "topic": "alarms/high"})
    assert running.msg(b"plant/boiler", b'{"value": 99, "temp": 51}') == [
        (b"alarms/high", b'{"topic":"plant/boiler","field":"temp","value":51,"limit":50}')
    ]
    assert running.msg(b"plant/boiler", b'{"value": 99}') == []
    assert running.msg(b"plant/boiler", b'{"temp": 50}') == []


def test_threshold_accepts_any_json_whitespace_and_field_order(filters: Filters) -> None:
    """Whitespace around tokens and other fields before the reading do not matter."""
    running = filters.start("threshold", {"limit": 30})
    payload = b'\t\r\n{ "a" : "}\\"" ,\n "b": [1, {"c": "]"}], "value"\r:\t31 }'
    assert running.msg(b"x", payload) == [
        (b"alert", b'{"topic":"x","field":"value","value":31,"limit":30}')
    ]


@pytest.mark.parametrize(
    "topic",
    ['plant/"boiler"', "back\\slash", "tab\there", "new\nline", "ctl\x01\x1f", "sensé/€/温度"],
)
def test_threshold_escapes_the_input_topic_in_the_alert(filters: Filters, topic: str) -> None:
    """Topics with quotes, backslashes, control or non-ASCII characters give valid JSON."""
    running = filters.start("threshold", {"limit": 30})
    [(alert_topic, payload)] = running.msg(topic.encode(), b'{"value": 31}')
    assert alert_topic == b"alert"
    assert json.loads(payload) == {"topic": topic, "field": "value", "value": 31, "limit": 30}


def test_threshold_escape_bytes_are_exact(filters: Filters) -> None:
    """Quote, backslash and control characters are escaped as \\", \\\\, \\n and \\u00XX."""
    running = filters.start("threshold", {"limit": 30})
    assert running.msg(b'a"b\\c\nd\x01', b'{"value": 31}') == [
        (b"alert", b'{"topic":"a\\"b\\\\c\\nd\\u0001","field":"value","value":31,"limit":30}')
    ]


def test_threshold_field_name_is_escaped(filters: Filters) -> None:
    """The field name is matched byte for byte and written JSON-escaped in the alert."""
    running = filters.start("threshold", {"limit": 0, "field": "a\\b"})
    assert running.msg(b"t", b'{"a\\b": 1}') == [
        (b"alert", b'{"topic":"t","field":"a\\\\b","value":1,"limit":0}')
    ]


def test_threshold_alert_too_large_for_the_output_area_is_dropped(filters: Filters) -> None:
    """An alert that does not fit the 64 KiB output area is dropped, not truncated."""
    running = filters.start("threshold", {"limit": 30})
    fits = b'"' * 30000
    [(_, payload)] = running.msg(fits, b'{"value": 31}')
    assert json.loads(payload)["topic"] == fits.decode()
    assert running.msg(b'"' * 33000, b'{"value": 31}') == []


@pytest.mark.parametrize(
    "params",
    [{}, {"limit": "abc"}, {"limit": ""}, {"limit": " 30"}, {"limit": "0x1E"}, {"limit": True}],
    ids=["missing", "word", "empty", "space", "hex", "bool"],
)
def test_threshold_refuses_missing_or_non_numeric_limit(
    filters: Filters, params: dict[str, ParamValue]
) -> None:
    """Without a numeric `limit`, init fails with code 1 and says why."""
    reason, logs = filters.refuse("threshold", params)
    assert reason == "init returned 1 (parameters refused)"
    assert logs == [("error", "threshold: param 'limit' is required and must be a number")]


@pytest.mark.parametrize("topic", ["", "alerts/+", "alerts/#"])
def test_threshold_refuses_an_invalid_alert_topic(filters: Filters, topic: str) -> None:
    """An empty topic or one with a wildcard fails init with code 2."""
    reason, logs = filters.refuse("threshold", {"limit": 30, "topic": topic})
    assert reason == "init returned 2 (parameters refused)"
    assert logs == [("error", "threshold: param 'topic' is not a valid topic")]


# -- deadband -----------------------------------------------------------------------------------


def test_deadband_readme_sequence(filters: Filters) -> None:
    """With deadband 0.5: 20.0, 20.2, 20.6, 20.7 are forwarded, dropped, forwarded, dropped."""
    running = filters.start("deadband", {"deadband": 0.5})
    got = [running.msg(b"room/1", reading(v)) for v in ("20.0", "20.2", "20.6", "20.7")]
    assert got == [
        [(b"room/1", reading("20.0"))],
        [],
        [(b"room/1", reading("20.6"))],
        [],
    ]


def test_deadband_default_is_half(filters: Filters) -> None:
    """Without params the deadband is 0.5."""
    running = filters.start("deadband")
    assert [len(running.msg(b"t", reading(v))) for v in ("1", "1.4", "1.5", "1.9")] == [1, 0, 1, 0]


def test_deadband_change_equal_to_the_band_is_forwarded(filters: Filters) -> None:
    """A move of exactly the deadband, up or down, is forwarded; the reference moves with it."""
    running = filters.start("deadband", {"deadband": 0.5})
    values = ("20.0", "20.5", "20.0", "20.25", "19.5", "19.75")
    assert [len(running.msg(b"t", reading(v))) for v in values] == [1, 1, 1, 0, 1, 0]


def test_deadband_tracks_topics_separately(filters: Filters) -> None:
    """Each topic has its own first reading and its own last forwarded value."""
    running = filters.start("deadband", {"deadband": 0.5})
    assert running.msg(b"room/1", reading("20.0")) == [(b"room/1", reading("20.0"))]
    assert running.msg(b"room/2", reading("20.2")) == [(b"room/2", reading("20.2"))]
    assert running.msg(b"room/1", reading("20.2")) == []
    assert running.msg(b"room/2", reading("20.6")) == []
    assert running.msg(b"room/1", reading("20.6")) == [(b"room/1", reading("20.6"))]
    assert running.msg(b"room/2", reading("20.7")) == [(b"room/2", reading("20.7"))]


@pytest.mark.parametrize(
    "payload",
    [b'{"status": "ok"}', b'{"value": "20.1"}', b'{"value": null}', b"not JSON", b""],
)
def test_deadband_forwards_what_it_does_not_understand(filters: Filters, payload: bytes) -> None:
    """Messages without a numeric field pass unchanged and do not move the reference value."""
    running = filters.start("deadband", {"deadband": 0.5})
    assert running.msg(b"t", reading("20.0")) == [(b"t", reading("20.0"))]
    assert running.msg(b"t", payload) == [(b"t", payload)]
    assert running.msg(b"t", payload) == [(b"t", payload)]
    assert running.msg(b"t", reading("20.2")) == []


def test_deadband_custom_field_and_band(filters: Filters) -> None:
    """`field` picks the reading and `deadband` the minimum change; the payload is untouched."""
    running = filters.start("deadband", {"field": "temp", "deadband": 2})
    payloads = [b'{"temp": %d, "value": 1}' % t for t in (10, 11, 12, 13, 8)]
    assert [running.msg(b"t", p) for p in payloads] == [
        [(b"t", payloads[0])],
        [],
        [(b"t", payloads[2])],
        [],
        [(b"t", payloads[4])],
    ]


def test_deadband_zero_forwards_every_reading(filters: Filters) -> None:
    """A deadband of 0 forwards repeated identical readings."""
    running = filters.start("deadband", {"deadband": 0})
    assert [running.msg(b"t", reading("5")) for _ in range(3)] == [[(b"t", reading("5"))]] * 3


@pytest.mark.parametrize("value", [-0.1, "abc", "", True])
def test_deadband_refuses_negative_or_non_numeric_band(filters: Filters, value: ParamValue) -> None:
    """A negative or non-numeric deadband fails init with code 1."""
    reason, logs = filters.refuse("deadband", {"deadband": value})
    assert reason == "init returned 1 (parameters refused)"
    assert logs == [("error", "deadband: param 'deadband' must be a number >= 0")]


def test_deadband_full_topic_table_forwards_new_topics_unfiltered(filters: Filters) -> None:
    """Past 128 topics new topics pass unfiltered with one warning; known ones stay filtered."""
    running = filters.start("deadband")
    for i in range(128):
        assert running.msg(f"t/{i}".encode(), reading("1")) == [(f"t/{i}".encode(), reading("1"))]
    assert running.msg(b"t/0", reading("1")) == []
    for _ in range(3):
        assert running.msg(b"t/new", reading("1")) == [(b"t/new", reading("1"))]
    assert running.msg(b"t/other", reading("1")) == [(b"t/other", reading("1"))]
    assert running.msg(b"t/127", reading("1.2")) == []
    assert running.logs == [("warning", "deadband: topic table full, new topics pass unfiltered")]


def test_deadband_full_topic_pool_forwards_new_topics_unfiltered(filters: Filters) -> None:
    """Once 16 KiB of topic text is stored, further new topics pass unfiltered."""
    running = filters.start("deadband")
    big = b"p" * (16 * 1024)
    assert running.msg(big, reading("1")) == [(big, reading("1"))]
    assert running.msg(big, reading("1")) == []
    assert running.msg(b"q", reading("1")) == [(b"q", reading("1"))]
    assert running.msg(b"q", reading("1")) == [(b"q", reading("1"))]
    assert running.logs == [("warning", "deadband: topic table full, new topics pass unfiltered")]


# -- average ------------------------------------------------------------------------------------


def test_average_tick_without_messages_emits_nothing(filters: Filters) -> None:
    """A tick with no readings since the start emits nothing."""
    running = filters.start("average")
    assert running.tick(1700000000000) == []


def test_average_readme_example(filters: Filters) -> None:
    """20.0, 20.2, 20.6 on room/1 give the documented summary on room/1/avg at the tick."""
    running = filters.start("average")
    for value in ("20.0", "20.2", "20.6"):
        assert running.msg(b"room/1", b'{"value":' + value.encode() + b"}") == []
    assert running.tick(1700000000000) == [
        (b"room/1/avg", b'{"avg":20.27,"min":20.00,"max":20.60,"count":3,"ts":1700000000000}')
    ]
    assert running.logs == []


def test_average_messages_are_always_dropped(filters: Filters) -> None:
    """Every message, reading or not, is dropped by average."""
    running = filters.start("average")
    for payload in (reading("1"), b'{"status": "ok"}', b"not JSON", b""):
        assert running.filt.on_message(b"t", payload) == ()


def test_average_emits_topics_in_first_seen_order(filters: Filters) -> None:
    """Summaries come in the order topics were first seen, not the order of recent readings."""
    running = filters.start("average")
    running.msg(b"b", reading("1"))
    running.msg(b"a", reading("2"))
    running.msg(b"c", reading("3"))
    running.msg(b"b", reading("3"))
    assert running.tick(10) == [
        (b"b/avg", b'{"avg":2.00,"min":1.00,"max":3.00,"count":2,"ts":10}'),
        (b"a/avg", b'{"avg":2.00,"min":2.00,"max":2.00,"count":1,"ts":10}'),
        (b"c/avg", b'{"avg":3.00,"min":3.00,"max":3.00,"count":1,"ts":10}'),
    ]
    running.msg(b"c", reading("4"))
    running.msg(b"b", reading("5"))
    assert running.tick(20) == [
        (b"b/avg", b'{"avg":5.00,"min":5.00,"max":5.00,"count":1,"ts":20}'),
        (b"c/avg", b'{"avg":4.00,"min":4.00,"max":4.00,"count":1,"ts":20}'),
    ]


def test_average_window_starts_over_after_a_tick(filters: Filters) -> None:
    """After a tick only new readings count, and a tick without new readings emits nothing."""
    running = filters.start("average")
    running.msg(b"t", reading("100"))
    running.msg(b"t", reading("-100"))
    assert running.tick(1) == [
        (b"t/avg", b'{"avg":0.00,"min":-100.00,"max":100.00,"count":2,"ts":1}')
    ]
    assert running.tick(2) == []
    running.msg(b"t", reading("7.5"))
    assert running.tick(3) == [(b"t/avg", b'{"avg":7.50,"min":7.50,"max":7.50,"count":1,"ts":3}')]


@pytest.mark.parametrize("now_ms", [0, 1, 1700000000000, 2**62, 2**63 - 1])
def test_average_ts_is_the_tick_time(filters: Filters, now_ms: int) -> None:
    """The summary's ts is exactly the now_ms given to the tick."""
    running = filters.start("average")
    running.msg(b"t", reading("1"))
    summary = b'{"avg":1.00,"min":1.00,"max":1.00,"count":1,"ts":%d}' % now_ms
    assert running.tick(now_ms) == [(b"t/avg", summary)]


def test_average_ignores_messages_without_a_numeric_field(filters: Filters) -> None:
    """Missing, string-valued and non-JSON readings are not counted."""
    running = filters.start("average")
    for payload in (reading("4"), b'{"status":"ok"}', b'{"value":"9"}', b"not JSON", reading("6")):
        running.msg(b"t", payload)
    running.msg(b"only/garbage", b'{"value": null}')
    assert running.tick(5) == [(b"t/avg", b'{"avg":5.00,"min":4.00,"max":6.00,"count":2,"ts":5}')]


def test_average_suffix_field_and_decimals(filters: Filters) -> None:
    """`suffix`, `field` and `decimals` shape the summary topic, input and number format."""
    running = filters.start("average", {"suffix": "/mean", "field": "t", "decimals": 3})
    running.msg(b"n", b'{"t":1,"value":100}')
    running.msg(b"n", b'{"value":100}')
    running.msg(b"n", b'{"t":2.0005}')
    assert running.tick(9) == [
        (b"n/mean", b'{"avg":1.500,"min":1.000,"max":2.001,"count":2,"ts":9}')
    ]


def test_average_empty_suffix_and_zero_decimals(filters: Filters) -> None:
    """An empty suffix keeps the topic; decimals 0 rounds half away from zero with no point."""
    running = filters.start("average", {"suffix": "", "decimals": 0})
    for value in ("-1.5", "2.5", "4"):
        running.msg(b"n", reading(value))
    assert running.tick(7) == [(b"n", b'{"avg":2,"min":-2,"max":4,"count":3,"ts":7}')]


def test_average_ignores_readings_of_1e15_or_more(filters: Filters) -> None:
    """Readings of magnitude 1e15 or more are dropped with one warning."""
    running = filters.start("average")
    for value in ("1e15", "-1e15", "5", "2e20", "999999999999999"):
        running.msg(b"t", reading(value))
    expected = b'{"avg":500000000000002.00,"min":5.00,"max":999999999999999.00,"count":2,"ts":1}'
    assert running.tick(1) == [(b"t/avg", expected)]
    assert running.logs == [("warning", "average: ignoring readings of magnitude 1e15 or more")]


def test_average_topic_limits(filters: Filters) -> None:
    """Only 64 topics of up to 200 bytes are summarised; others are dropped with one warning."""
    running = filters.start("average")
    topics = [f"t/{i}".encode() for i in range(64)]
    for topic in topics:
        running.msg(topic, reading("1"))
    running.msg(b"t/64", reading("1"))
    running.msg(b"x" * 201, reading("1"))
    got = running.tick(3)
    one = b'{"avg":1.00,"min":1.00,"max":1.00,"count":1,"ts":3}'
    assert got == [(topic + b"/avg", one) for topic in topics]
    assert running.logs == [
        (
            "warning",
            "average: more than 64 topics or a topic over 200 bytes; its readings are dropped",
        )
    ]


def test_average_topic_of_200_bytes_with_200_byte_suffix(filters: Filters) -> None:
    """The longest topic and the longest suffix still make a summary."""
    suffix = "/" + "s" * 199
    running = filters.start("average", {"suffix": suffix, "decimals": 20})
    topic = b"y" * 200
    running.msg(topic, reading("-123456789012345.5"))
    tail = b',"count":1,"ts":-9223372036854775808}'
    number = b"-123456789012345.50000000000000000000"
    assert running.tick(-(2**63)) == [
        (
            topic + suffix.encode(),
            b'{"avg":' + number + b',"min":' + number + b',"max":' + number + tail,
        )
    ]


@pytest.mark.parametrize("suffix", ["/a+", "#", "/x/+/y", "s" * 201])
def test_average_refuses_a_bad_suffix(filters: Filters, suffix: str) -> None:
    """A suffix with a wildcard or over 200 bytes fails init with code 1."""
    reason, logs = filters.refuse("average", {"suffix": suffix})
    assert reason == "init returned 1 (parameters refused)"
    assert logs == [("error", "average: param 'suffix' must be topic text of at most 200 bytes")]


@pytest.mark.parametrize("decimals", [-1, 21, 2.5, 1e300, "two", ""])
def test_average_refuses_bad_decimals(filters: Filters, decimals: ParamValue) -> None:
    """Decimals outside the integers 0..20 fail init with code 2."""
    reason, logs = filters.refuse("average", {"decimals": decimals})
    assert reason == "init returned 2 (parameters refused)"
    assert logs == [("error", "average: param 'decimals' must be an integer 0..20")]


# -- convert ------------------------------------------------------------------------------------

README_CONVERT: dict[str, ParamValue] = {
    "scale": 1.8,
    "offset": 32,
    "as": "temp_f",
    "decimals": 2,
    "keep": "ts",
}


def test_convert_readme_examples(filters: Filters) -> None:
    """20 °C and -40 °C become temp_f on the same topic; a payload without the field drops."""
    running = filters.start("convert", README_CONVERT)
    topic = b"sensors/t1"
    assert running.msg(topic, b'{"value": 20, "ts": 1700000000, "unit": "C"}') == [
        (topic, b'{"temp_f":68.00,"ts":1700000000}')
    ]
    assert running.msg(topic, b'{"value": -40}') == [(topic, b'{"temp_f":-40.00}')]
    assert running.msg(topic, b'{"ts": 1700000000}') == []
    assert running.logs == []


def test_convert_decimals_zero(filters: Filters) -> None:
    """With decimals 0 the converted value has no decimal point."""
    running = filters.start("convert", {**README_CONVERT, "decimals": 0})
    assert running.msg(b"s", b'{"value": 20, "ts": 1700000000}') == [
        (b"s", b'{"temp_f":68,"ts":1700000000}')
    ]
    assert running.msg(b"s", b'{"value": 20.3}') == [(b"s", b'{"temp_f":69}')]


def test_convert_defaults(filters: Filters) -> None:
    """Without params the field keeps its name, scale 1, offset 0, two decimals, nothing kept."""
    running = filters.start("convert")
    assert running.msg(b"s", b'{"value": 3, "ts": 1}') == [(b"s", b'{"value":3.00}')]


@pytest.mark.parametrize(
    "payload",
    [
        b'{"ts": 1700000000}',
        b'{"value": "20"}',
        b'{"value": true}',
        b'{"value": null}',
        b'{"value": [20]}',
        b"not JSON",
        b"",
        b'{"value": 1e15}',
        b'{"value": -1e15}',
        b'{"value": 1e400}',
    ],
)
def test_convert_drops_non_numeric_and_out_of_range(filters: Filters, payload: bytes) -> None:
    """A payload without a numeric field, or with a result of magnitude 1e15 or more, drops."""
    running = filters.start("convert", README_CONVERT)
    assert running.msg(b"s", payload) == []


def test_convert_result_range_is_checked_after_scaling(filters: Filters) -> None:
    """The 1e15 limit applies to the converted value, not the input."""
    running = filters.start("convert", {"scale": 1e10})
    assert running.msg(b"s", b'{"value": 100000}') == []
    assert running.msg(b"s", b'{"value": 99999.99}') == [(b"s", b'{"value":999999900000000.00}')]


def test_convert_keep_order_missing_and_repeats(filters: Filters) -> None:
    """Kept fields follow in listed order, verbatim; missing ones, repeats and `as` are skipped."""
    running = filters.start(
        "convert", {"as": "temp_f", "keep": " unit , ts,missing,,unit, temp_f ,value"}
    )
    payload = b'{"value": 1, "ts": {"a": [1, "]"]}, "unit": "C", "temp_f": 9}'
    assert running.msg(b"s", payload) == [
        (b"s", b'{"temp_f":1.00,"unit":"C","ts":{"a": [1, "]"]},"value":1}')
    ]
    assert running.msg(b"s", b'{"value": 2}') == [(b"s", b'{"temp_f":2.00,"value":2}')]


def test_convert_drops_payload_malformed_before_a_kept_field(filters: Filters) -> None:
    """A kept field behind malformed JSON drops the message; one before the damage is kept."""
    running = filters.start("convert", {"keep": "ts"})
    assert running.msg(b"s", b'{"value": 1, "oops" 3, "ts": 1}') == []
    assert running.msg(b"s", b'{"value": 1, "ts": 1, "oops"') == [(b"s", b'{"value":1.00,"ts":1}')]


def test_convert_escapes_the_output_name(filters: Filters) -> None:
    """An `as` name with a quote is written as an escaped JSON string."""
    running = filters.start("convert", {"as": 'a"b'})
    [(_, payload)] = running.msg(b"s", b'{"value": 1.005}')
    assert payload == b'{"a\\"b":1.00}'
    assert json.loads(payload) == {'a"b': 1.0}


@pytest.mark.parametrize(
    ("value", "decimals", "text"),
    [
        ("0.125", 2, "0.13"),
        ("-0.125", 2, "-0.13"),
        ("2.675", 2, "2.67"),
        ("0.5", 0, "1"),
        ("2.5", 0, "3"),
        ("-2.5", 0, "-3"),
        ("-0.001", 2, "0.00"),
        ("-0", 2, "0.00"),
        ("5e-324", 20, "0.00000000000000000000"),
        ("0.1", 20, "0.10000000000000000555"),
        ("999999999999999", 0, "999999999999999"),
        ("99999999999999.5", 0, "100000000000000"),
    ],
)
def test_convert_fixed_point_rounding(
    filters: Filters, value: str, decimals: int, text: str
) -> None:
    """Fixed-point output rounds the exact binary value half away from zero, never signs zero."""
    running = filters.start("convert", {"decimals": decimals})
    assert running.msg(b"s", b'{"value":' + value.encode() + b"}") == [
        (b"s", b'{"value":' + text.encode() + b"}")
    ]


def test_convert_fixed_point_matches_exact_decimal_rounding(filters: Filters) -> None:
    """For thousands of readings and every decimals 0..20, output equals exact half-up rounding."""
    rnd = random.Random(7)
    for decimals in range(21):
        running = filters.start("convert", {"decimals": decimals})
        for _ in range(150):
            digits = rnd.randint(1, 15)
            mantissa = str(rnd.randint(1, 10**digits - 1))
            exponent = rnd.randint(-22, 15 - len(mantissa))
            text = ("-" if rnd.random() < 0.3 else "") + f"{mantissa}e{exponent}"
            value = float(text)
            got = running.msg(b"s", b'{"value":' + text.encode() + b"}")
            want = b'{"value":' + half_up(value, decimals).encode() + b"}"
            assert got == [(b"s", want)], (text, decimals)


def test_convert_scale_and_offset_follow_float_arithmetic(filters: Filters) -> None:
    """The output is value * scale + offset in double precision, printed with `decimals`."""
    rnd = random.Random(11)
    scale, offset = 0.1, -273.15
    running = filters.start("convert", {"scale": scale, "offset": offset, "decimals": 6})
    for _ in range(200):
        value = round(rnd.uniform(-1e6, 1e6), rnd.randint(0, 6))
        got = running.msg(b"s", b'{"value":' + repr(value).encode() + b"}")
        want = b'{"value":' + half_up(value * scale + offset, 6).encode() + b"}"
        assert got == [(b"s", want)], value


@pytest.mark.parametrize(
    ("params", "code", "log"),
    [
        ({"scale": "x"}, 1, "convert: params 'scale' and 'offset' must be numbers"),
        ({"offset": "1,5"}, 1, "convert: params 'scale' and 'offset' must be numbers"),
        ({"scale": True}, 1, "convert: params 'scale' and 'offset' must be numbers"),
        ({"decimals": 21}, 2, "convert: param 'decimals' must be an integer 0..20"),
        ({"decimals": -1}, 2, "convert: param 'decimals' must be an integer 0..20"),
        ({"decimals": 1.5}, 2, "convert: param 'decimals' must be an integer 0..20"),
        (
            {"keep": ",".join(f"k{i}" for i in range(17))},
            3,
            "convert: param 'keep' lists more than 16 fields",
        ),
    ],
    ids=["scale", "offset", "scale_bool", "decimals_21", "decimals_neg", "decimals_frac", "keep"],
)
def test_convert_refuses_bad_params(
    filters: Filters, params: dict[str, ParamValue], code: int, log: str
) -> None:
    """Bad scale/offset, decimals or more than 16 keep fields fail init with codes 1, 2, 3."""
    reason, logs = filters.refuse("convert", params)
    assert reason == f"init returned {code} (parameters refused)"
    assert logs == [("error", log)]


def test_convert_keep_limit_counts_distinct_names(filters: Filters) -> None:
    """Sixteen distinct keep fields are accepted, with repeats and the `as` name not counted."""
    names = [f"k{i}" for i in range(16)]
    running = filters.start("convert", {"keep": ",".join([*names, "k0", "value", "k15"])})
    payload = "{" + ",".join(f'"{n}":{i}' for i, n in enumerate(["value", *names])) + "}"
    expected = '{"value":0.00,' + ",".join(f'"{n}":{i + 1}' for i, n in enumerate(names)) + "}"
    assert running.msg(b"s", payload.encode()) == [(b"s", expected.encode())]


# -- state: deadband and average ----------------------------------------------------------------


def blob(*parts: tuple[str, object]) -> bytes:
    """A state blob from `(kind, value)` parts: u32, u64, f64, or str (u32 length and bytes)."""
    out = b""
    for kind, value in parts:
        if kind == "str":
            assert isinstance(value, bytes)
            out += struct.pack("<I", len(value)) + value
        else:
            out += struct.pack({"u32": "<I", "u64": "<Q", "f64": "<d"}[kind], value)
    return out


def reload(filters: Filters, name: str, running: Running) -> Running:
    """A fresh instance given `running`'s saved state, as a node does on a reload."""
    saved = running.filt.save_state()
    assert saved is not None
    fresh = filters.start(name)
    fresh.filt.load_state(saved)
    return fresh


def test_deadband_state_keeps_the_last_forwarded_values(filters: Filters) -> None:
    """After a reload a topic's next reading is judged against its last forwarded value, not
    forwarded as if it were the first."""
    running = filters.start("deadband")
    running.msg(b"a", reading("20.0"))
    running.msg(b"bb", reading("5"))
    running.msg(b"a", reading("20.3"))
    saved = running.filt.save_state()
    assert saved == SavedState(
        1, blob(("u32", 2), ("str", b"a"), ("f64", 20.0), ("str", b"bb"), ("f64", 5.0))
    )
    after = reload(filters, "deadband", running)
    assert after.msg(b"a", reading("20.4")) == []
    assert after.msg(b"bb", reading("5.5")) == [(b"bb", reading("5.5"))]
    assert after.msg(b"new", reading("1")) == [(b"new", reading("1"))]


def test_deadband_state_of_a_full_table(filters: Filters) -> None:
    """A full table (128 topics) saves in 4 + sum(12 + topic length) bytes, loads back slot for
    slot, and new topics still pass unfiltered."""
    running = filters.start("deadband")
    topics = [f"t/{i}".encode() for i in range(128)]
    for topic in topics:
        running.msg(topic, reading("1"))
    saved = running.filt.save_state()
    assert saved is not None
    assert len(saved.data) == 4 + sum(12 + len(t) for t in topics)
    after = reload(filters, "deadband", running)
    assert after.filt.save_state() == saved
    assert after.msg(b"t/127", reading("1.2")) == []
    assert after.msg(b"t/new", reading("1")) == [(b"t/new", reading("1"))]
    assert after.msg(b"t/new", reading("1")) == [(b"t/new", reading("1"))]


def test_average_state_keeps_windows_and_their_order(filters: Filters) -> None:
    """A reload between two ticks loses no readings: the summaries after it are those an
    uninterrupted filter gives, in first-seen order, and emptied windows save as zeros."""
    running = filters.start("average")
    running.msg(b"b", reading("1"))
    running.msg(b"a", reading("2"))
    running.tick(5)
    running.msg(b"a", reading("4"))
    running.msg(b"a", reading("6"))
    saved = running.filt.save_state()
    assert saved == SavedState(
        1,
        blob(
            ("u32", 2),
            ("str", b"b"),
            *(("u64", 0), ("f64", 0.0), ("f64", 0.0), ("f64", 0.0)),
            ("str", b"a"),
            *(("u64", 2), ("f64", 10.0), ("f64", 4.0), ("f64", 6.0)),
        ),
    )
    after = reload(filters, "average", running)
    after.msg(b"b", reading("3"))
    running.msg(b"b", reading("3"))
    assert after.tick(9) == running.tick(9)
    assert after.tick(9) == []


def test_average_state_of_64_topics(filters: Filters) -> None:
    """64 topics save in 4 + sum(36 + topic length) bytes."""
    running = filters.start("average")
    topics = [f"room/{i:02d}".encode() for i in range(64)]
    for topic in topics:
        running.msg(topic, reading("1"))
    saved = running.filt.save_state()
    assert saved is not None
    assert len(saved.data) == 4 + sum(36 + len(t) for t in topics)
    after = reload(filters, "average", running)
    assert after.tick(1) == running.tick(1)


STATE_REFUSALS: dict[str, tuple[str, SavedState, int]] = {
    "deadband_format_2": ("deadband", SavedState(2, blob(("u32", 0))), 1),
    "deadband_too_many": ("deadband", SavedState(1, blob(("u32", 129))), 2),
    "deadband_twice": (
        "deadband",
        SavedState(1, blob(("u32", 2), *(("str", b"a"), ("f64", 1.0)) * 2)),
        3,
    ),
    "deadband_truncated": ("deadband", SavedState(1, blob(("u32", 1), ("str", b"a"))), -1),
    "deadband_trailing": ("deadband", SavedState(1, blob(("u32", 0), ("u32", 0))), -2),
    "average_format_0": ("average", SavedState(0, b""), 1),
    "average_too_many": ("average", SavedState(1, blob(("u32", 65))), 2),
    "average_long_topic": (
        "average",
        SavedState(1, blob(("u32", 1), ("str", b"x" * 201), ("u64", 0), *[("f64", 0.0)] * 3)),
        2,
    ),
    "average_empty": ("average", SavedState(1, b""), -1),
    "average_trailing": ("average", SavedState(1, blob(("u32", 0), ("u32", 0))), -2),
}


@pytest.mark.parametrize("case", STATE_REFUSALS, ids=list(STATE_REFUSALS))
def test_examples_refuse_state_they_cannot_take(filters: Filters, case: str) -> None:
    """An unknown format, more than the filter keeps, a topic twice, or a blob that is short or
    too long is refused with the code its source documents (the SDK's -1 and -2 for the last
    two)."""
    name, state, code = STATE_REFUSALS[case]
    running = filters.start(name)
    with pytest.raises(FilterCallError) as info:
        running.filt.load_state(state)
    assert info.value.reason == "state_refused"
    assert info.value.detail.endswith(f"returned {code}")
