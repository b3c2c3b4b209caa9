"""The CBOR and MessagePack example filters against independent encoders (cbor2, msgpack).

Each build (C in examples/filters, Rust in sdk/rust/examples) runs in-process through the real
engine. Generated values are encoded with cbor2 / msgpack, turned into JSON by the filter and
compared with the mapping of docs/binary-payloads.md computed here from the decoder's view of
the same bytes; the JSON of a value goes back through the filter and must decode to the same
value. The awkward cases (indefinite lengths, tags, half floats, bignums, non-UTF-8 strings,
non-text keys, malformed input, nesting) are written out byte by byte from RFC 8949 Appendix A
and the MessagePack spec.
"""

from __future__ import annotations

import base64
import io
import json
import math
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import cbor2
import msgpack  # type: ignore[import-untyped]
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from edged.authoring.runner import load_filter
from edged.engine import Filter
from edged.errors import FilterRejected

ROOT = Path(__file__).resolve().parent.parent.parent
BUILDS = {"c": ROOT / "examples" / "filters", "rust": ROOT / "sdk" / "rust" / "examples"}
LANGS = [lang for lang, d in BUILDS.items() if (d / "cbor_json.wasm").exists()]
FORMATS = ("cbor", "msgpack")
SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
TOPIC = b"sensors/raw"

_filters: dict[tuple[str, str, str], Filter] = {}


def codec(lang: str, fmt: str, direction: str = "to_json") -> Filter:
    """One instance per build, format and direction, kept for the whole run."""
    key = (lang, fmt, direction)
    if key not in _filters:
        path = BUILDS[lang] / f"{fmt}_json.wasm"
        _filters[key] = load_filter(path, {"direction": direction}, io.StringIO())
    return _filters[key]


def run(lang: str, fmt: str, payload: bytes, direction: str = "to_json") -> bytes:
    """The one payload the filter emits, on the input topic."""
    records = codec(lang, fmt, direction).on_message(TOPIC, payload)
    assert len(records) == 1
    topic, out = records[0]
    assert topic == TOPIC
    return out


def rejected(lang: str, fmt: str, payload: bytes, direction: str = "to_json") -> str:
    with pytest.raises(FilterRejected) as info:
        codec(lang, fmt, direction).on_message(TOPIC, payload)
    return info.value.text


def to_json(lang: str, fmt: str, payload: bytes) -> Any:
    text = run(lang, fmt, payload).decode("utf-8")
    return json.loads(text, parse_constant=lambda name: pytest.fail(f"bare {name} in {text}"))


# -- the mapping, computed independently ----------------------------------------------------------


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def float_json(v: float) -> Any:
    if math.isnan(v):
        return {"$float": "NaN"}
    if math.isinf(v):
        return {"$float": "Infinity" if v > 0 else "-Infinity"}
    return v


def cbor_json(v: Any) -> Any:
    """What the filter must emit for the value cbor2 decoded."""
    if v is None or isinstance(v, bool | int | str):
        return v
    if isinstance(v, float):
        return float_json(v)
    if isinstance(v, bytes):
        return {"$bytes": b64(v)}
    if isinstance(v, list | tuple):
        return [cbor_json(x) for x in v]
    if isinstance(v, Mapping):
        if all(isinstance(k, str) for k in v):
            return {k: cbor_json(x) for k, x in v.items()}
        return {"$map": [[cbor_json(k), cbor_json(x)] for k, x in v.items()]}
    if isinstance(v, cbor2.CBORTag):
        return {"$tag": v.tag, "value": cbor_json(v.value)}
    if v is cbor2.undefined:
        return {"$undefined": True}
    if isinstance(v, cbor2.CBORSimpleValue):
        return {"$simple": v.value}
    raise AssertionError(f"no mapping for {v!r}")


def msgpack_json(v: Any) -> Any:
    """What the filter must emit for the value msgpack decoded."""
    if v is None or isinstance(v, bool | int | str):
        return v
    if isinstance(v, float):
        return float_json(v)
    if isinstance(v, bytes):
        return {"$bytes": b64(v)}
    if isinstance(v, msgpack.ExtType):  # a namedtuple: before the sequences
        return {"$ext": v.code, "data": b64(v.data)}
    if isinstance(v, list | tuple):
        return [msgpack_json(x) for x in v]
    if isinstance(v, Mapping):
        if all(isinstance(k, str) for k in v):
            return {k: msgpack_json(x) for k, x in v.items()}
        return {"$map": [[msgpack_json(k), msgpack_json(x)] for k, x in v.items()]}
    if isinstance(v, msgpack.Timestamp):
        return {"$ext": -1, "data": b64(v.to_bytes())}
    raise AssertionError(f"no mapping for {v!r}")


def same(a: Any, b: Any) -> bool:
    """Equal with the same types (1 is not 1.0 nor True), the same key order and signed zeros."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    return bool(a == b)


def assert_same(got: Any, want: Any) -> None:
    assert same(got, want), f"got  {got!r}\nwant {want!r}"


def decode(fmt: str, data: bytes) -> Any:
    if fmt == "cbor":
        return cbor2.loads(data)
    return msgpack.unpackb(data, raw=False, strict_map_key=False, use_list=False)


def mapping(fmt: str, value: Any) -> Any:
    return cbor_json(value) if fmt == "cbor" else msgpack_json(value)


# -- generated values ---------------------------------------------------------------------------

# A text key that starts with "$" could spell one of the mapping's own objects.
keys = st.text(max_size=8).filter(lambda k: not k.startswith("$"))
other_keys = st.one_of(st.integers(-(2**63), 2**64 - 1), st.binary(max_size=6), keys)


def cbor_values() -> st.SearchStrategy[Any]:
    leaves = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**64), 2**64 - 1),
        st.integers(-(2**200), 2**200),
        st.floats(),
        st.text(max_size=20),
        st.binary(max_size=20),
        st.just(cbor2.undefined),
        st.sampled_from([*range(20), *range(32, 256)]).map(cbor2.CBORSimpleValue),
    )
    # Tag numbers cbor2 gives no meaning to, so that its decoder hands the tag back.
    tags = st.integers(100_000, 2**64 - 1)
    return st.recursive(
        leaves,
        lambda children: st.one_of(
            st.lists(children, max_size=5),
            st.dictionaries(keys, children, max_size=5),
            st.dictionaries(other_keys, children, max_size=4),
            st.builds(cbor2.CBORTag, tags, children),
        ),
        max_leaves=25,
    )


def msgpack_values() -> st.SearchStrategy[Any]:
    leaves = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**63), 2**64 - 1),
        st.floats(),
        st.text(max_size=20),
        st.binary(max_size=20),
        st.builds(msgpack.ExtType, st.integers(0, 127), st.binary(max_size=20)),
    )
    return st.recursive(
        leaves,
        lambda children: st.one_of(
            st.lists(children, max_size=5),
            st.dictionaries(keys, children, max_size=5),
            st.dictionaries(other_keys, children, max_size=4),
        ),
        max_leaves=25,
    )


def encode(fmt: str, value: Any, compact: bool) -> bytes:
    """cbor2 canonical writes the smallest exact float; msgpack single floats are float32."""
    if fmt == "cbor":
        return cbor2.dumps(value, canonical=compact)
    try:
        return bytes(msgpack.packb(value, use_bin_type=True, use_single_float=compact))
    except OverflowError:  # a double beyond the float32 range
        return bytes(msgpack.packb(value, use_bin_type=True))


VALUES: dict[str, Callable[[], st.SearchStrategy[Any]]] = {
    "cbor": cbor_values,
    "msgpack": msgpack_values,
}


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("lang", LANGS)
def test_generated_values_to_json(lang: str, fmt: str) -> None:
    @SETTINGS
    @given(value=VALUES[fmt](), compact=st.booleans())
    def check(value: Any, compact: bool) -> None:
        data = encode(fmt, value, compact)
        assert_same(to_json(lang, fmt, data), mapping(fmt, decode(fmt, data)))

    check()


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("lang", LANGS)
def test_generated_values_from_json(lang: str, fmt: str) -> None:
    @SETTINGS
    @given(value=VALUES[fmt]())
    def check(value: Any) -> None:
        want = mapping(fmt, value)
        data = run(lang, fmt, json.dumps(want, ensure_ascii=False).encode(), "from_json")
        assert_same(mapping(fmt, decode(fmt, data)), want)

    check()


@pytest.mark.parametrize("lang", LANGS)
def test_float_text_is_the_shortest_that_reads_back(lang: str) -> None:
    """A float's JSON text is Python's repr of it: the shortest digits, always a float; when
    two shortest candidates are equally near (70368744177664.125), the even last digit."""

    @SETTINGS
    @given(value=st.floats(allow_nan=False, allow_infinity=False))
    @example(value=70368744177664.12)
    @example(value=5e-324)
    @example(value=1e23)
    @example(value=9007199254740992.0)
    @example(value=-0.0)
    @example(value=1.7976931348623157e308)
    def check(value: float) -> None:
        assert run(lang, "cbor", cbor2.dumps(value)).decode() == repr(value)
        back = run(lang, "cbor", repr(value).encode(), "from_json")
        assert_same(cbor2.loads(back), value)

    check()


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("lang", LANGS)
def test_arbitrary_bytes_never_trap(lang: str, fmt: str) -> None:
    """Any payload either converts to valid JSON or is refused with a reason: no trap, no
    bad output, whatever the bytes (mutated encodings reach deep into the readers)."""

    @SETTINGS
    @given(value=VALUES[fmt](), cut=st.integers(0, 64), flips=st.binary(max_size=4))
    def check(value: Any, cut: int, flips: bytes) -> None:
        data = bytearray(encode(fmt, value, False))
        for i, b in enumerate(flips):
            if data:
                data[(cut + 31 * i) % len(data)] ^= b
        payload = bytes(data[: max(0, len(data) - cut % 3)])
        try:
            records = codec(lang, fmt).on_message(TOPIC, payload)
        except FilterRejected as refused:
            assert refused.text.startswith(("CBOR to JSON: ", "MessagePack to JSON: "))
            return
        json.loads(records[0][1])

    check()


@pytest.mark.skipif(len(LANGS) < 2, reason="needs both the C and the Rust builds")
@pytest.mark.parametrize("fmt", FORMATS)
def test_c_and_rust_agree_byte_for_byte(fmt: str) -> None:
    """Both directions give the same bytes (or the same refusal, with the same reason) in C and
    in Rust, for valid and for mutated payloads."""

    def outcome(lang: str, payload: bytes, direction: str) -> bytes | str:
        try:
            return run(lang, fmt, payload, direction)
        except FilterRejected as refused:
            return refused.text

    @SETTINGS
    @given(value=VALUES[fmt](), compact=st.booleans())
    def check(value: Any, compact: bool) -> None:
        data = encode(fmt, value, compact)
        as_json = outcome("c", data, "to_json")
        assert as_json == outcome("rust", data, "to_json")
        assert isinstance(as_json, bytes)
        assert outcome("c", as_json, "from_json") == outcome("rust", as_json, "from_json")

    @SETTINGS
    @given(
        value=VALUES[fmt](), at=st.integers(0, 2**16), flip=st.integers(1, 255), cut=st.booleans()
    )
    def check_mutated(value: Any, at: int, flip: int, cut: bool) -> None:
        data = bytearray(encode(fmt, value, False))
        data[at % len(data)] ^= flip
        payload = bytes(data[: at % len(data)] if cut else data)
        assert outcome("c", payload, "to_json") == outcome("rust", payload, "to_json")

    check()
    check_mutated()


# -- CBOR, case by case -------------------------------------------------------------------------

CBOR_CASES = [
    # RFC 8949 Appendix A, indefinite lengths
    ("5f42010243030405ff", {"$bytes": b64(bytes([1, 2, 3, 4, 5]))}),
    ("7f657374726561646d696e67ff", "streaming"),
    ("5fff", {"$bytes": ""}),
    ("9fff", []),
    ("9f018202039f0405ffff", [1, [2, 3], [4, 5]]),
    ("9f01820203820405ff", [1, [2, 3], [4, 5]]),
    ("83018202039f0405ff", [1, [2, 3], [4, 5]]),
    ("83019f0203ff820405", [1, [2, 3], [4, 5]]),
    ("9f" + bytes(range(1, 24)).hex() + "18181819ff", list(range(1, 26))),
    ("bf61610161629f0203ffff", {"a": 1, "b": [2, 3]}),
    ("826161bf61626163ff", ["a", {"b": "c"}]),
    ("bf6346756ef563416d7421ff", {"Fun": True, "Amt": -2}),
    ("bf01020304ff", {"$map": [[1, 2], [3, 4]]}),
    # tags
    ("c074323031332d30332d32315432303a30343a30305a", {"$tag": 0, "value": "2013-03-21T20:04:00Z"}),
    ("c11a514b67b0", {"$tag": 1, "value": 1363896240}),
    ("c1fb41d452d9ec200000", {"$tag": 1, "value": 1363896240.5}),
    ("d74401020304", {"$tag": 23, "value": {"$bytes": "AQIDBA=="}}),
    ("d818456449455446", {"$tag": 24, "value": {"$bytes": "ZElFVEY="}}),
    (
        "d82076687474703a2f2f7777772e6578616d706c652e636f6d",
        {"$tag": 32, "value": "http://www.example.com"},
    ),
    ("dbffffffffffffffff00", {"$tag": 2**64 - 1, "value": 0}),
    ("d9d9f7c2420100", {"$tag": 55799, "value": 256}),  # self-described bignum
    # half floats (RFC 8949 Appendix A, with the subnormals and the specials)
    ("f90000", 0.0),
    ("f98000", -0.0),
    ("f93c00", 1.0),
    ("f93e00", 1.5),
    ("f97bff", 65504.0),
    ("f90001", 5.960464477539063e-08),
    ("f903ff", 6.097555160522461e-05),
    ("f90400", 6.103515625e-05),
    ("f9c400", -4.0),
    ("f97c00", {"$float": "Infinity"}),
    ("f9fc00", {"$float": "-Infinity"}),
    ("f97e00", {"$float": "NaN"}),
    ("f97e01", {"$float": "NaN"}),
    ("fa47c35000", 100000.0),
    ("fa7f7fffff", 3.4028234663852886e38),
    ("fa7f800000", {"$float": "Infinity"}),
    ("fa7fc00000", {"$float": "NaN"}),
    ("fb3ff199999999999a", 1.1),
    ("fb7e37e43c8800759c", 1e300),
    ("fbc010666666666666", -4.1),
    ("fb7ff8000000000000", {"$float": "NaN"}),
    # integers at the edges and bignums
    ("1bffffffffffffffff", 2**64 - 1),
    ("3bffffffffffffffff", -(2**64)),
    ("c249010000000000000000", 2**64),
    ("c349010000000000000000", -(2**64) - 1),
    ("c240", 0),
    ("c340", -1),
    ("c24300ff01", 0xFF01),
    ("c25f4101420203ff", 0x010203),
    # simple values
    ("f4", False),
    ("f5", True),
    ("f6", None),
    ("f7", {"$undefined": True}),
    ("f0", {"$simple": 16}),
    ("f820", {"$simple": 32}),
    ("f8ff", {"$simple": 255}),
    # strings that are not UTF-8, and escapes
    ("62c328", {"$str_b64": b64(b"\xc3\x28")}),
    ("63eda080", {"$str_b64": b64(b"\xed\xa0\x80")}),
    ("7f6161ff", "a"),
    ("7f61c361a9ff", {"$str_b64": b64(b"\xc3\xa9")}),
    ("6a0a220d5c09017f2fc3a9", '\n"\r\\\t\x01\x7f/é'),
    # maps with other keys than text
    ("a2016161416b02", {"$map": [[1, "a"], [{"$bytes": "aw=="}, 2]]}),
    ("a1a0f6", {"$map": [[{}, None]]}),
    ("a262c32801616101", {"$map": [[{"$str_b64": b64(b"\xc3\x28")}, 1], ["a", 1]]}),
    ("a0", {}),
]


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize(("hex_in", "want"), CBOR_CASES, ids=[c[0][:24] for c in CBOR_CASES])
def test_cbor_cases(lang: str, hex_in: str, want: Any) -> None:
    assert_same(to_json(lang, "cbor", bytes.fromhex(hex_in)), want)


def test_the_bignum_cases_agree_with_cbor2() -> None:
    """The hand-written bignums above decode to the same integers in cbor2."""
    assert cbor2.loads(bytes.fromhex("c249010000000000000000")) == 2**64
    assert cbor2.loads(bytes.fromhex("c349010000000000000000")) == -(2**64) - 1
    assert cbor2.loads(bytes.fromhex("3bffffffffffffffff")) == -(2**64)


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("value", [2**64, -(2**64) - 1, 2**200, -(2**200), 10**300])
def test_cbor_bignums_both_ways(lang: str, value: int) -> None:
    assert to_json(lang, "cbor", cbor2.dumps(value)) == value
    data = run(lang, "cbor", str(value).encode(), "from_json")
    assert cbor2.loads(data) == value
    assert data[0] in (0xC2, 0xC3)  # a bignum tag, not a float


@pytest.mark.parametrize("lang", LANGS)
def test_cbor_writes_the_smallest_exact_float(lang: str) -> None:
    for text, head in [("1.0", 0xF9), ("65504.0", 0xF9), ("5.960464477539063e-08", 0xF9)]:
        assert run(lang, "cbor", text.encode(), "from_json")[0] == head
    assert run(lang, "cbor", b"100000.0", "from_json")[0] == 0xFA
    assert run(lang, "cbor", b"0.1", "from_json")[0] == 0xFB
    assert run(lang, "cbor", b'{"$float":"NaN"}', "from_json") == bytes.fromhex("f97e00")
    assert run(lang, "cbor", b'{"$float":"-Infinity"}', "from_json") == bytes.fromhex("f9fc00")


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize(
    ("text", "want"),
    [
        ('{"$tag":32,"value":"http://x"}', cbor2.dumps(cbor2.CBORTag(32, "http://x"))),
        ('{"value":1,"$tag":1}', bytes.fromhex("c101")),
        ('{"$undefined":true}', bytes.fromhex("f7")),
        ('{"$simple":16}', bytes.fromhex("f0")),
        ('{"$simple":255}', bytes.fromhex("f8ff")),
        ('{"$str_b64":"wyg="}', bytes.fromhex("62c328")),
        ('{"$bytes":""}', bytes.fromhex("40")),
        ('{"$map":[[1,"a"],[[1],null]]}', bytes.fromhex("a20161618101f6")),
        ('"\\ud83d\\ude00\\u00e9\\n"', cbor2.dumps("\U0001f600é\n")),
        ("-0", bytes.fromhex("00")),
        ("18446744073709551615", bytes.fromhex("1bffffffffffffffff")),
        ("-18446744073709551616", bytes.fromhex("3bffffffffffffffff")),
        ("-0.0", bytes.fromhex("f98000")),
        ("1E2", bytes.fromhex("f95640")),
    ],
)
def test_cbor_from_json_cases(lang: str, text: str, want: bytes) -> None:
    assert run(lang, "cbor", text.encode(), "from_json") == want


# -- MessagePack, case by case ------------------------------------------------------------------

MSGPACK_CASES = [
    ("00", 0),
    ("7f", 127),
    ("ff", -1),
    ("e0", -32),
    ("cc80", 128),
    ("cfffffffffffffffff", 2**64 - 1),
    ("d380" + "00" * 7, -(2**63)),
    ("d0ff", -1),
    ("d1ff7f", -129),
    ("d2ffff7fff", -32769),
    ("ca3f800000", 1.0),
    ("ca3dcccccd", 0.10000000149011612),
    ("ca7fc00000", {"$float": "NaN"}),
    ("caff800000", {"$float": "-Infinity"}),
    ("cb3ff199999999999a", 1.1),
    ("cb7ff0000000000000", {"$float": "Infinity"}),
    ("cb8000000000000000", -0.0),
    ("c0", None),
    ("c2", False),
    ("c3", True),
    ("a0", ""),
    ("a2c328", {"$str_b64": b64(b"\xc3\x28")}),
    ("d903616263", "abc"),
    ("c40100", {"$bytes": "AA=="}),
    ("c50000", {"$bytes": ""}),
    ("d4ff00", {"$ext": -1, "data": "AA=="}),
    ("d6ff00000001", {"$ext": -1, "data": "AAAAAQ=="}),
    ("c7030578797a", {"$ext": 5, "data": "eHl6"}),
    ("c700ff", {"$ext": -1, "data": ""}),
    ("9200a0", [0, ""]),
    ("dc000201c0", [1, None]),
    ("82a16101a16202", {"a": 1, "b": 2}),
    ("de0001a16101", {"a": 1}),
    ("8201a161c4016b02", {"$map": [[1, "a"], [{"$bytes": "aw=="}, 2]]}),
    ("81a2c32801", {"$map": [[{"$str_b64": b64(b"\xc3\x28")}, 1]]}),
    ("80", {}),
]


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize(("hex_in", "want"), MSGPACK_CASES, ids=[c[0][:24] for c in MSGPACK_CASES])
def test_msgpack_cases(lang: str, hex_in: str, want: Any) -> None:
    assert_same(to_json(lang, "msgpack", bytes.fromhex(hex_in)), want)


@pytest.mark.parametrize("lang", LANGS)
def test_msgpack_timestamp_and_raw_str(lang: str) -> None:
    ts = msgpack.Timestamp(1_700_000_000, 5)
    assert to_json(lang, "msgpack", msgpack.packb(ts)) == {"$ext": -1, "data": b64(ts.to_bytes())}
    raw = msgpack.packb(b"\xff\xfe", use_bin_type=False)  # old-style str holding bytes
    assert to_json(lang, "msgpack", raw) == {"$str_b64": b64(b"\xff\xfe")}
    back = run(
        lang, "msgpack", b'{"$ext":-1,"data":"' + b64(ts.to_bytes()).encode() + b'"}', "from_json"
    )
    assert msgpack.unpackb(back) == ts


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize(
    "text",
    [
        "18446744073709551616",
        "-9223372036854775809",
        '{"$tag":1,"value":2}',
        '{"$undefined":true}',
        '{"$simple":16}',
        '{"$ext":128,"data":""}',
        '{"$ext":1,"data":"not base64"}',
    ],
)
def test_msgpack_from_json_refuses_what_it_cannot_encode(lang: str, text: str) -> None:
    assert rejected(lang, "msgpack", text.encode(), "from_json").startswith("JSON to MessagePack")


@pytest.mark.parametrize("lang", LANGS)
def test_cbor_from_json_refuses_ext(lang: str) -> None:
    assert rejected(lang, "cbor", b'{"$ext":1,"data":""}', "from_json").startswith("JSON to CBOR")


# -- malformed input and nesting ----------------------------------------------------------------

BAD_CBOR = [
    "",
    "18",  # argument missing
    "1a0000",  # truncated argument
    "6261",  # text shorter than its length
    "8201",  # array missing an element
    "a101",  # map missing a value
    "1c",  # reserved additional information
    "ff",  # break outside an indefinite item
    "5f6161ff",  # text chunk in a byte string
    "5f5f4101ffff",  # indefinite chunk in an indefinite string
    "bf01ff",  # indefinite map with a key and no value
    "9f01",  # indefinite array never ended
    "f810",  # two-byte simple value below 32
    "c201",  # bignum tag on an integer
    "0101",  # bytes after the item
    "c1",  # a tag with no content
    "9b0000000100000000",  # an array longer than the payload
]
BAD_MSGPACK = ["", "c1", "cd00", "a361", "9201", "81a161", "d9", "c70105", "0000", "dd00000005"]


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("hex_in", BAD_CBOR)
def test_malformed_cbor_is_refused(lang: str, hex_in: str) -> None:
    assert rejected(lang, "cbor", bytes.fromhex(hex_in)).startswith("CBOR to JSON: ")


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("hex_in", BAD_MSGPACK)
def test_malformed_msgpack_is_refused(lang: str, hex_in: str) -> None:
    assert rejected(lang, "msgpack", bytes.fromhex(hex_in)).startswith("MessagePack to JSON: ")


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(
    "text",
    [
        "",
        "[1,",
        '{"a" 1}',
        "01",
        "1 2",
        "[1,]",
        '"\\ud800"',
        '"\\x"',
        "nul",
        "1e999",
        "{}}",
        '"\x01"',
    ],
)
def test_malformed_json_is_refused(lang: str, fmt: str, text: str) -> None:
    assert rejected(lang, fmt, text.encode(), "from_json").startswith("JSON to ")


@pytest.mark.parametrize("lang", LANGS)
def test_nesting_limit_is_32(lang: str) -> None:
    """32 levels of arrays, tags or maps decode; 33 are refused as too deep, both ways."""
    assert to_json(lang, "cbor", b"\x81" * 31 + b"\x80") == json.loads("[" * 32 + "]" * 32)
    assert "too deep" in rejected(lang, "cbor", b"\x81" * 32 + b"\x80")
    assert "too deep" in rejected(lang, "cbor", b"\x9f" * 33 + b"\xff" * 33)
    assert "too deep" in rejected(lang, "cbor", b"\xc1" * 33 + b"\x00")
    assert to_json(lang, "msgpack", b"\x91" * 31 + b"\x90") == json.loads("[" * 32 + "]" * 32)
    assert "too deep" in rejected(lang, "msgpack", b"\x81\xa0" * 32 + b"\x80")
    for fmt in FORMATS:
        run(lang, fmt, b"[" * 32 + b"]" * 32, "from_json")
        rejected(lang, fmt, b"[" * 33 + b"]" * 33, "from_json")


@pytest.mark.parametrize("lang", LANGS)
def test_topic_param_and_bad_direction(lang: str) -> None:
    path = BUILDS[lang] / "cbor_json.wasm"
    filt = load_filter(path, {"topic": "json/out"}, io.StringIO())
    assert filt.on_message(TOPIC, b"\x01") == [(b"json/out", b"1")]
    with pytest.raises(Exception, match="init returned"):
        load_filter(path, {"direction": "sideways"}, io.StringIO())


@pytest.mark.parametrize("lang", LANGS)
def test_a_200_byte_message_costs_little(lang: str) -> None:
    """A typical reading (~200 bytes of CBOR) converts in well under a millisecond."""
    reading = {
        "device": "pump-7",
        "ts": 1_733_580_000_123,
        "values": {"temp": 21.5, "pressure": 1013.25, "flow": [1.5, 2.25, 3.0, 0.1]},
        "status": "ok",
        "tags": ["north", "line-2", "shift-b"],
        "raw": bytes(range(40)),
        "alarms": None,
        "seq": 123456,
    }
    data = cbor2.dumps(reading)
    assert 180 <= len(data) <= 220
    filt = codec(lang, "cbor")
    filt.on_message(TOPIC, data)
    start = time.perf_counter()
    for _ in range(200):
        filt.on_message(TOPIC, data)
    per_message = (time.perf_counter() - start) / 200
    assert per_message < 0.002
