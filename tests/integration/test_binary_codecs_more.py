"""CBOR and MessagePack to JSON and back in the Go, Zig and AssemblyScript SDKs: the examples
`cbor_json` and `msgpack_json` of each follow the mapping of docs/binary-payloads.md, checked
against independent encoders (cbor2, msgpack) on generated values of every type and on the
awkward cases by hand (indefinite lengths from RFC 8949 Appendix A, tags, float16, bignums,
text that is not UTF-8, keys that are not text, malformed, truncated and too deep payloads).

Every message goes through the real engine under the default budgets. Go and Zig modules are
built here (cached like tests/integration/test_sdks_wasi.py's, skipped saying why without the
compiler); AssemblyScript's are the committed builds in sdk/assemblyscript/examples.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import os
import re
import shutil
import struct
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cbor2
import msgpack
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from edged.engine import Filter, WasmtimeEngine
from edged.engine.wasmtime_engine import WasmtimeModule
from tests.helpers.paths import ROOT
from tests.integration.test_sdks_wasi import CACHE, GO_GRANTS, Toolchain, _go, _make_env, _zig

pytestmark = pytest.mark.toolchains

SDK = ROOT / "sdk"
LANGS = ("go", "zig", "as")
FORMATS = ("cbor", "msgpack")
MAX_DEPTH = 32
SETTINGS = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# -- building and loading the six modules -------------------------------------------------------


def _digest(tool: Toolchain, files: list[Path]) -> str:
    digest = hashlib.sha256(tool.version.encode())
    for path in sorted(files):
        digest.update(path.relative_to(SDK).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def _run(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False
    )


def _build_go(tool: Toolchain) -> dict[str, Path] | str:
    folder = SDK / "go"
    files = [
        *folder.glob("edged/**/*.go"),
        *(
            p
            for pattern in ("*.go", "go.mod", "go.sum")
            for p in folder.glob(f"examples/*_json/{pattern}")
        ),
    ]
    dest = CACHE / "sdk-builds" / f"go-codecs-{_digest(tool, files)}"
    names = [f"{fmt}_json" for fmt in FORMATS]
    if not all((dest / f"{n}.wasm").is_file() for n in names):
        work = dest.with_name(dest.name + f".tmp{os.getpid()}")
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        for name in names:
            cwd = folder / "examples" / name
            # the library versions are pinned in go.mod/go.sum; they come from the module cache
            # or the module proxy
            got = _run([*tool.command, "mod", "download"], cwd, tool.env)
            if got.returncode != 0:
                return f"the Go modules of {name} could not be downloaded: {got.stderr.strip()}"
            args = ["build", "-trimpath", "-buildmode=c-shared", "-o", str(work / f"{name}.wasm")]
            done = _run([*tool.command, *args, "."], cwd, tool.env)
            assert done.returncode == 0, done.stderr
        shutil.rmtree(dest, ignore_errors=True)
        work.rename(dest)
    return {n: dest / f"{n}.wasm" for n in names}


def _build_zig(tool: Toolchain) -> dict[str, Path] | str:
    folder = SDK / "zig"
    files = [folder / "Makefile", *folder.glob("*.zig"), *folder.glob("examples/*_json.zig")]
    dest = CACHE / "sdk-builds" / f"zig-codecs-{_digest(tool, files)}"
    names = [f"{fmt}_json" for fmt in FORMATS]
    if not all((dest / f"{n}.wasm").is_file() for n in names):
        work = dest.with_name(dest.name + f".tmp{os.getpid()}")
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        zig = " ".join(tool.command)
        targets = [str(work / f"{n}.wasm") for n in names]
        done = _run(
            ["make", "-C", str(folder), f"ZIG={zig}", f"DEST={work}", *targets],
            ROOT,
            _make_env(tool),
        )
        assert done.returncode == 0, done.stdout + done.stderr
        shutil.rmtree(dest, ignore_errors=True)
        work.rename(dest)
    return {n: dest / f"{n}.wasm" for n in names}


def _committed_as() -> dict[str, Path] | str:
    paths = {
        f"{fmt}_json": SDK / "assemblyscript" / "examples" / f"{fmt}_json.wasm" for fmt in FORMATS
    }
    missing = [p.name for p in paths.values() if not p.is_file()]
    return f"no committed AssemblyScript build: {missing}" if missing else paths


@dataclass
class Codec:
    """One example module of one language, instantiated once per direction."""

    lang: str
    fmt: str
    module: WasmtimeModule
    size: int
    logs: list[tuple[str, str]] = field(default_factory=list)
    instances: dict[str, Filter] = field(default_factory=dict)

    def filt(self, direction: str) -> Filter:
        if direction not in self.instances:
            grants = GO_GRANTS if self.lang == "go" else frozenset()
            self.instances[direction] = self.module.instantiate(
                {"direction": direction},
                lambda level, text: self.logs.append((level, text)),
                capabilities=grants,
            )
        return self.instances[direction]

    def call(self, direction: str, payload: bytes) -> bytes | None:
        """The converted payload, or None when the message was dropped."""
        out = self.filt(direction).on_message(b"in/topic", payload)
        if not out:
            return None
        assert len(out) == 1 and out[0][0] == b"in/topic"
        return bytes(out[0][1])

    def refused(self, direction: str, payload: bytes) -> bool:
        """True when the message is dropped with a warning in the log (not a violation)."""
        before = len(self.logs)
        result = self.call(direction, payload)
        warned = any(level == "warning" for level, _ in self.logs[before:])
        return result is None and warned


class Codecs:
    """The six modules, each language built (or found) on first use."""

    def __init__(self) -> None:
        self.engine = WasmtimeEngine()
        self.found: dict[tuple[str, str], Codec | str] = {}

    def get(self, lang: str, fmt: str) -> Codec | str:
        if (lang, fmt) not in self.found:
            paths: dict[str, Path] | str
            if lang == "as":
                paths = _committed_as()
            else:
                tool = _go() if lang == "go" else _zig()
                if isinstance(tool, str):
                    paths = tool
                else:
                    paths = _build_go(tool) if lang == "go" else _build_zig(tool)
            for f in FORMATS:
                name = f"{f}_json"
                if isinstance(paths, str):
                    self.found[lang, f] = paths
                else:
                    module = self.engine.load_file(f"{lang}-{name}", paths[name])
                    self.found[lang, f] = Codec(lang, f, module, paths[name].stat().st_size)
        return self.found[lang, fmt]


@pytest.fixture(scope="module")
def codecs() -> Iterator[Codecs]:
    found = Codecs()
    yield found
    found.engine.close()


def codec(codecs: Codecs, lang: str, fmt: str) -> Codec:
    got = codecs.get(lang, fmt)
    if isinstance(got, str):
        pytest.skip(got)
    return got


# -- the mapping, computed in Python ------------------------------------------------------------


class Obj(tuple[tuple[str, Any], ...]):
    """A JSON object with its members in order."""


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def jfloat(v: float) -> Any:
    if math.isnan(v):
        return Obj((("$float", "NaN"),))
    if math.isinf(v):
        return Obj((("$float", "Infinity" if v > 0 else "-Infinity"),))
    return v


def jtext(data: bytes) -> Any:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return Obj((("$str_b64", b64(data)),))


def jmap(
    pairs: list[tuple[Any, Any]], is_text: Callable[[Any], bool], conv: Callable[[Any], Any]
) -> Any:
    if all(is_text(k) for k, _ in pairs):
        return Obj((conv(k), conv(v)) for k, v in pairs)
    return Obj((("$map", [[conv(k), conv(v)] for k, v in pairs]),))


# Wrappers that make cbor2 write the forms its defaults never write.
@dataclass(frozen=True)
class Half:
    value: float


@dataclass(frozen=True)
class Single:
    value: float


@dataclass(frozen=True)
class RawText:
    data: bytes


@dataclass(frozen=True)
class IndefArray:
    items: list[Any]


@dataclass(frozen=True)
class IndefBytes:
    chunks: list[bytes]


def cbor_default(encoder: Any, value: Any) -> None:
    if isinstance(value, Half):
        encoder.write(b"\xf9" + struct.pack(">e", value.value))
    elif isinstance(value, Single):
        encoder.write(b"\xfa" + struct.pack(">f", value.value))
    elif isinstance(value, IndefArray):
        encoder.write(b"\x9f")
        for item in value.items:
            encoder.encode(item)
        encoder.write(b"\xff")
    elif isinstance(value, IndefBytes):
        encoder.write(b"\x5f")
        for chunk in value.chunks:
            encoder.encode(chunk)
        encoder.write(b"\xff")
    else:
        raise TypeError(value)


def cbor_head(major: int, n: int) -> bytes:
    if n < 24:
        return bytes([major << 5 | n])
    for ai, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if n < 1 << (8 * size):
            return bytes([major << 5 | ai]) + n.to_bytes(size, "big")
    raise ValueError(n)


def cbor_dumps(value: Any) -> bytes:
    def default(encoder: Any, v: Any) -> None:
        if isinstance(v, RawText):
            encoder.write(cbor_head(3, len(v.data)) + v.data)
        else:
            cbor_default(encoder, v)

    return cbor2.dumps(value, default=default)


def expect_cbor(v: Any) -> Any:
    """What to_json must give for a value cbor2 encodes (wrappers included)."""
    if v is None or isinstance(v, bool | int | str):
        return v
    if isinstance(v, float):
        return jfloat(v)
    if isinstance(v, Half | Single):
        return jfloat(v.value)
    if isinstance(v, bytes):
        return Obj((("$bytes", b64(v)),))
    if isinstance(v, IndefBytes):
        return Obj((("$bytes", b64(b"".join(v.chunks))),))
    if isinstance(v, RawText):
        return jtext(v.data)
    if isinstance(v, list):
        return [expect_cbor(x) for x in v]
    if isinstance(v, IndefArray):
        return [expect_cbor(x) for x in v.items]
    if isinstance(v, dict):
        return jmap(list(v.items()), lambda k: isinstance(k, str), expect_cbor)
    if isinstance(v, cbor2.CBORTag):
        return Obj((("$tag", v.tag), ("value", expect_cbor(v.value))))
    if v is cbor2.undefined:
        return Obj((("$undefined", True),))
    if isinstance(v, cbor2.CBORSimpleValue):
        return Obj((("$simple", v.value),))
    raise TypeError(v)


def expect_msgpack(v: Any) -> Any:
    """What to_json must give for a value msgpack encodes (or decodes, with surrogateescape)."""
    if v is None or isinstance(v, bool | int):
        return v
    if isinstance(v, str):
        return jtext(v.encode("utf-8", "surrogateescape"))
    if isinstance(v, float):
        return jfloat(v)
    if isinstance(v, bytes):
        return Obj((("$bytes", b64(v)),))
    if isinstance(v, msgpack.ExtType):  # a named tuple: before the arrays
        return Obj((("$ext", v.code), ("data", b64(v.data))))
    if isinstance(v, msgpack.Timestamp):
        return Obj((("$ext", -1), ("data", b64(v.to_bytes()))))
    if isinstance(v, list | tuple):
        return [expect_msgpack(x) for x in v]
    if isinstance(v, dict):
        return jmap(list(v.items()), lambda k: isinstance(k, str), expect_msgpack)
    raise TypeError(v)


def canon(v: Any) -> Any:
    """A form where equal means the same JSON: type-tagged, floats by their bits, order kept."""
    if isinstance(v, Obj):
        return ("obj", tuple((k, canon(x)) for k, x in v))
    if isinstance(v, list):
        return ("arr", tuple(canon(x) for x in v))
    if isinstance(v, bool):
        return ("bool", v)
    if isinstance(v, int):
        return ("int", v)
    if isinstance(v, float):
        return ("float", v.hex())
    return (type(v).__name__, v)


def parse(text: bytes) -> Any:
    return json.loads(text, object_pairs_hook=Obj)


def _plain(x: Any) -> Any:
    if isinstance(x, Obj):
        return {k: _plain(y) for k, y in x}
    if isinstance(x, list):
        return [_plain(y) for y in x]
    return x


def dumps(v: Any) -> bytes:
    """JSON text for a mapped value, written by Python's json (independent of the SDKs), with
    spaces and "\\u" escapes that the SDKs' readers must take."""
    return json.dumps(_plain(v)).encode()


def compact(v: Any) -> bytes:
    """The exact text every SDK writes for a mapped value: Python's compact JSON, floats as its
    repr, non-ASCII as UTF-8."""
    return json.dumps(_plain(v), ensure_ascii=False, separators=(",", ":")).encode()


# -- generated values ---------------------------------------------------------------------------

# cbor2 turns some tag numbers into Python objects; these numbers it leaves as CBORTag
TAGS = (
    st.integers(6, 20)
    | st.integers(40, 51)
    | st.integers(1005, 55798)
    | st.integers(2**20, 2**64 - 1)
)
TEXT = st.text(max_size=12).filter(lambda s: not s.startswith("$"))
FLOATS = st.floats(allow_nan=True, allow_infinity=True)


def cbor_values() -> st.SearchStrategy[Any]:
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**64), 2**64 - 1),
        st.integers(-(2**200), 2**200),
        FLOATS,
        st.floats(width=16).map(Half),
        st.floats(width=32).map(Single),
        TEXT,
        st.binary(max_size=12),
        st.lists(st.binary(max_size=4), max_size=3).map(IndefBytes),
        st.binary(max_size=6).map(RawText),
        st.just(cbor2.undefined),
        st.integers(0, 19).map(cbor2.CBORSimpleValue),
        st.integers(32, 255).map(cbor2.CBORSimpleValue),
    )

    def containers(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        return st.one_of(
            st.lists(inner, max_size=4),
            st.lists(inner, max_size=4).map(IndefArray),
            st.dictionaries(TEXT, inner, max_size=4),
            st.dictionaries(st.integers(-1000, 1000) | st.binary(max_size=3), inner, max_size=3),
            st.builds(cbor2.CBORTag, TAGS, inner),
        )

    return st.recursive(scalars, containers, max_leaves=12)


def msgpack_values() -> st.SearchStrategy[Any]:
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**63), 2**64 - 1),
        FLOATS,
        TEXT,
        st.binary(max_size=12),
        st.builds(msgpack.ExtType, st.integers(0, 127), st.binary(max_size=20)),
        st.builds(msgpack.Timestamp, st.integers(-(2**40), 2**40), st.integers(0, 999_999_999)),
    )

    def containers(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        return st.one_of(
            st.lists(inner, max_size=4),
            st.dictionaries(TEXT, inner, max_size=4),
            st.dictionaries(st.integers(-1000, 1000) | st.binary(max_size=3), inner, max_size=3),
        )

    return st.recursive(scalars, containers, max_leaves=12)


def single_floats(v: Any) -> Any:
    """v with every float rounded to float32, as msgpack's use_single_float writes it."""
    if isinstance(v, float):
        try:
            return float(struct.unpack("<f", struct.pack("<f", v))[0])
        except OverflowError:
            return math.copysign(math.inf, v)
    if isinstance(v, list):
        return [single_floats(x) for x in v]
    if isinstance(v, dict):
        return {k: single_floats(x) for k, x in v.items()}
    return v


def cbor_decode(data: bytes) -> Any:
    return cbor2.loads(data, str_errors="surrogateescape")


def expect_cbor_decoded(v: Any) -> Any:
    """The mapping of what cbor2 decoded (its text may hold surrogate escapes)."""
    if isinstance(v, str):
        return jtext(v.encode("utf-8", "surrogateescape"))
    if isinstance(v, list | tuple):
        return [expect_cbor_decoded(x) for x in v]
    if isinstance(v, Mapping):  # a map inside a tag comes as cbor2's frozendict
        return jmap(list(v.items()), lambda k: isinstance(k, str), expect_cbor_decoded)
    if isinstance(v, cbor2.CBORTag):
        return Obj((("$tag", v.tag), ("value", expect_cbor_decoded(v.value))))
    return expect_cbor(v)


def msgpack_decode(data: bytes) -> Any:
    return msgpack.unpackb(
        data, raw=False, strict_map_key=False, unicode_errors="surrogateescape", timestamp=0
    )


# -- generated round trips ----------------------------------------------------------------------


@pytest.mark.parametrize("lang", LANGS)
@SETTINGS
@given(value=cbor_values())
def test_cbor_to_json_and_back_follow_the_mapping(codecs: Codecs, lang: str, value: Any) -> None:
    """Any CBOR value (every major type, half/single floats, bignums, tags, simple values,
    indefinite arrays and byte strings, text that is not UTF-8) becomes the JSON the mapping
    says, byte for byte the same in every SDK; that JSON, written by Python, comes back as CBOR
    that cbor2 reads as the same value."""
    c = codec(codecs, lang, "cbor")
    expected = expect_cbor(value)
    got = c.call("to_json", cbor_dumps(value))
    assert got is not None, c.logs[-1:]
    assert canon(parse(got)) == canon(expected)
    assert got == compact(expected)
    back = c.call("from_json", dumps(expected))
    assert back is not None, c.logs[-1:]
    assert canon(expect_cbor_decoded(cbor_decode(back))) == canon(expected)


@pytest.mark.parametrize("lang", LANGS)
@SETTINGS
@given(value=msgpack_values(), single=st.booleans())
def test_msgpack_to_json_and_back_follow_the_mapping(
    codecs: Codecs, lang: str, value: Any, single: bool
) -> None:
    """Any MessagePack value (int64 and uint64 ranges, float32 and float64, str, bin, ext and
    timestamps, maps with any keys) becomes the JSON the mapping says, byte for byte the same in
    every SDK; that JSON, written by Python, comes back as MessagePack that msgpack reads as the
    same value."""
    c = codec(codecs, lang, "msgpack")
    try:
        packed = msgpack.packb(value, use_bin_type=True, use_single_float=single)
    except OverflowError:  # a double beyond float32's range
        assume(False)
    if single:
        value = single_floats(value)
    expected = expect_msgpack(value)
    got = c.call("to_json", packed)
    assert got is not None, c.logs[-1:]
    assert canon(parse(got)) == canon(expected)
    assert got == compact(expected)
    back = c.call("from_json", dumps(expected))
    assert back is not None, c.logs[-1:]
    assert canon(expect_msgpack(msgpack_decode(back))) == canon(expected)


def significant_digits(text: str) -> int:
    mantissa = re.split("[eE]", text.lstrip("-"))[0].replace(".", "")
    return len(mantissa.strip("0")) or 1


@pytest.mark.parametrize("lang", LANGS)
@SETTINGS
@given(value=st.floats(allow_nan=False, allow_infinity=False))
def test_floats_print_shortest(codecs: Codecs, lang: str, value: float) -> None:
    """A float prints as Python's repr does: the shortest digits that read back to it, plain
    from 1e-4 to 1e16 and with a two-digit exponent beyond, always with a '.' or an exponent."""
    c = codec(codecs, lang, "cbor")
    got = c.call("to_json", cbor2.dumps(value))
    assert got is not None
    text = got.decode()
    assert float(text) == value and ("." in text or "e" in text.lower())
    assert significant_digits(text) <= significant_digits(repr(value)), (text, repr(value))
    assert text == repr(value)


@pytest.mark.parametrize("fmt", FORMATS)
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_languages_write_the_same_binary(codecs: Codecs, fmt: str, data: st.DataObject) -> None:
    """JSON to CBOR or MessagePack gives the same bytes in every SDK present (preferred CBOR
    serialization: shortest heads and floats; MessagePack's smallest forms)."""
    present = [c for lang in LANGS if isinstance(c := codecs.get(lang, fmt), Codec)]
    if len(present) < 2:
        pytest.skip("fewer than two SDKs built")
    value = data.draw(cbor_values() if fmt == "cbor" else msgpack_values())
    expected = expect_cbor(value) if fmt == "cbor" else expect_msgpack(value)
    outputs = {c.lang: c.call("from_json", dumps(expected)) for c in present}
    assert len(set(outputs.values())) == 1, outputs


# -- awkward cases by hand ----------------------------------------------------------------------

# RFC 8949 Appendix A, the indefinite-length examples, and the JSON they map to
INDEFINITE = [
    ("5f42010243030405ff", {"$bytes": b64(b"\x01\x02\x03\x04\x05")}),
    ("7f657374726561646d696e67ff", "streaming"),
    ("9fff", []),
    ("9f018202039f0405ffff", [1, [2, 3], [4, 5]]),
    ("9f01820203820405ff", [1, [2, 3], [4, 5]]),
    ("83018202039f0405ff", [1, [2, 3], [4, 5]]),
    ("83019f0203ff820405", [1, [2, 3], [4, 5]]),
    ("9f0102030405060708090a0b0c0d0e0f101112131415161718181819ff", list(range(1, 26))),
    ("bf61610161629f0203ffff", {"a": 1, "b": [2, 3]}),
    ("826161bf61626163ff", ["a", {"b": "c"}]),
    ("bf6346756ef563416d7421ff", {"Fun": True, "Amt": -2}),
]

CBOR_CASES = [
    *INDEFINITE,
    # float16: smallest subnormal, largest subnormal, -0, infinities, NaN
    ("f90001", 5.960464477539063e-08),
    ("f903ff", 6.097555160522461e-05),
    ("f98000", -0.0),
    ("f97c00", {"$float": "Infinity"}),
    ("f9fc00", {"$float": "-Infinity"}),
    ("f97e00", {"$float": "NaN"}),
    ("fa7fc00000", {"$float": "NaN"}),
    ("fb7ff8000000000000", {"$float": "NaN"}),
    ("f93c00", 1.0),
    ("fb3ff199999999999a", 1.1),
    ("fa47c35000", 100000.0),
    # the 64-bit ends and bignums
    ("1bffffffffffffffff", 2**64 - 1),
    ("3bffffffffffffffff", -(2**64)),
    ("c249010000000000000000", 2**64),
    ("c349010000000000000000", -(2**64) - 1),
    ("c25f4101420000ff", 2**16),  # an indefinite byte string as a bignum's content
    ("c240", 0),
    ("c340", -1),
    ("c25819" + "01" + "00" * 24, 2**192),
    (cbor2.dumps(2**200).hex(), 2**200),
    (cbor2.dumps(-(2**200)).hex(), -(2**200)),
    # tags, simple values, undefined
    ("c074323031332d30332d32315432303a30343a30305a", {"$tag": 0, "value": "2013-03-21T20:04:00Z"}),
    ("c11a514b67b0", {"$tag": 1, "value": 1363896240}),
    (
        "d82076687474703a2f2f7777772e6578616d706c652e636f6d",
        {"$tag": 32, "value": "http://www.example.com"},
    ),
    ("d9d9f7c0f6", {"$tag": 55799, "value": {"$tag": 0, "value": None}}),
    ("f7", {"$undefined": True}),
    ("f0", {"$simple": 16}),
    ("f8ff", {"$simple": 255}),
    # text that is not UTF-8, keys that are not text, control characters
    ("62fffe", {"$str_b64": "//4="}),
    ("7f61ff61feff", {"$str_b64": "//4="}),
    ("a201020304", {"$map": [[1, 2], [3, 4]]}),
    ("a2616101f502", {"$map": [["a", 1], [True, 2]]}),
    ("a162fffe01", {"$map": [[{"$str_b64": "//4="}, 1]]}),
    ("65220a5c0001", '"\n\\\x00\x01'),
    ("a0", {}),
]

MSGPACK_CASES = [
    ("cfffffffffffffffff", 2**64 - 1),
    ("d38000000000000000", -(2**63)),
    ("ca3fc00000", 1.5),
    ("ca7fc00000", {"$float": "NaN"}),
    ("cb7ff0000000000000", {"$float": "Infinity"}),
    ("a2fffe", {"$str_b64": "//4="}),
    ("d9026869", "hi"),
    ("c4020102", {"$bytes": "AQI="}),
    ("d6ff00000001", {"$ext": -1, "data": "AAAAAQ=="}),
    ("d4fe07", {"$ext": -2, "data": "Bw=="}),
    ("c70005", {"$ext": 5, "data": ""}),
    ("82010203c0", {"$map": [[1, 2], [3, None]]}),
    ("81c40101c3", {"$map": [[{"$bytes": "AQ=="}, True]]}),
    ("80", {}),
    ("90", []),
    ("cb8000000000000000", -0.0),
    ("ca00000001", 1.401298464324817e-45),  # the smallest float32 subnormal
    ("dc0000", []),
    ("de0001a1610a", {"a": 10}),
]


def _as_json(expected: Any) -> Any:
    """Hand-written expectations use dicts; compare them as ordered objects."""
    if isinstance(expected, dict):
        return Obj((k, _as_json(v)) for k, v in expected.items())
    if isinstance(expected, list):
        return [_as_json(x) for x in expected]
    return expected


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize(("fmt", "hex_in", "expected"), [
    *(("cbor", h, e) for h, e in CBOR_CASES),
    *(("msgpack", h, e) for h, e in MSGPACK_CASES),
])  # fmt: skip
def test_awkward_payloads_map_as_documented(
    codecs: Codecs, lang: str, fmt: str, hex_in: str, expected: Any
) -> None:
    """Indefinite lengths (RFC 8949 Appendix A), float16 subnormals, infinities and NaN,
    bignums, tags, simple values, text that is not UTF-8 and maps with other keys each give the
    documented JSON."""
    c = codec(codecs, lang, fmt)
    got = c.call("to_json", bytes.fromhex(hex_in))
    assert got is not None, c.logs[-1:]
    assert canon(parse(got)) == canon(_as_json(expected))
    assert got == compact(_as_json(expected))


@pytest.mark.parametrize("lang", LANGS)
def test_json_comes_back_in_the_documented_binary_forms(codecs: Codecs, lang: str) -> None:
    """JSON to CBOR: integers beyond 64 bits become bignums, floats take the smallest exact
    width, "$" objects turn back into their values; JSON to MessagePack keeps int64/uint64 and
    refuses what does not fit, with a warning."""
    c = codec(codecs, lang, "cbor")
    cases = [
        (b"18446744073709551616", cbor2.dumps(2**64)),
        (b"-18446744073709551617", cbor2.dumps(-(2**64) - 1)),
        (b"-18446744073709551616", bytes.fromhex("3bffffffffffffffff")),
        (str(2**200).encode(), cbor2.dumps(2**200)),
        (b'{"a":1.5}', bytes.fromhex("a16161f93e00")),
        (b"100000.0", bytes.fromhex("fa47c35000")),
        (b"1.1", bytes.fromhex("fb3ff199999999999a")),
        (b"1e300", cbor2.dumps(1e300)),
        (b'{"$float":"NaN"}', bytes.fromhex("f97e00")),
        (b'{"$float":"-Infinity"}', bytes.fromhex("f9fc00")),
        (b'{"$str_b64":"//4="}', bytes.fromhex("62fffe")),
        (b'{"$tag":1000,"value":[]}', bytes.fromhex("d903e880")),
        (b'{"$simple":16}', bytes.fromhex("f0")),
        (b'{"$undefined":true}', bytes.fromhex("f7")),
        (b'{"$map":[[1,2]]}', bytes.fromhex("a10102")),
        (b'"\\ud83d\\ude00"', cbor2.dumps("\U0001f600")),
    ]
    for text, binary in cases:
        assert c.call("from_json", text) == binary, text
    m = codec(codecs, lang, "msgpack")
    assert m.call("from_json", b"18446744073709551615") == msgpack.packb(2**64 - 1)
    assert m.call("from_json", b"-9223372036854775808") == msgpack.packb(-(2**63))
    assert m.call("from_json", b'{"$ext":-1,"data":"AAAAAQ=="}') == bytes.fromhex("d6ff00000001")
    assert m.call("from_json", b'{"$str_b64":"//4="}') == bytes.fromhex("a2fffe")
    for big in (b"18446744073709551616", b"-9223372036854775809"):
        assert m.refused("from_json", big), big
    assert not m.refused("from_json", b"[1,-1e30]")


def nested(depth: int, fmt: str) -> bytes:
    if fmt == "cbor":
        return b"\x81" * depth + b"\x01"
    return b"\x91" * depth + b"\x01"


MALFORMED = {
    "cbor": [
        "",  # nothing
        "1b0000",  # truncated argument
        "62ff",  # truncated string
        "830102",  # a definite array short of an item
        "9f0102",  # an indefinite array with no break
        "5f4101",  # an indefinite byte string with no break
        "5f6161ff",  # a text chunk inside a byte string
        "ff",  # a lone break
        "1c",  # reserved additional information
        "f818",  # a two-byte simple value below 32
        "0102",  # bytes after the item
        "bf6161ff",  # an indefinite map with a key and no value
        "c26161",  # a bignum whose content is not a byte string
    ],
    "msgpack": [
        "",
        "c1",  # never used
        "cd00",  # truncated uint16
        "a36162",  # truncated str
        "9301",  # an array short of items
        "820101",  # a map short of a value
        "d6ff0000",  # truncated ext
        "0101",  # bytes after the value
        "dbffffffff",  # a str32 longer than the payload
    ],
}


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("fmt", FORMATS)
def test_malformed_and_too_deep_payloads_are_dropped_with_a_warning(
    codecs: Codecs, lang: str, fmt: str
) -> None:
    """Truncated, ill-formed or trailing bytes, and nesting deeper than 32, drop the message
    with a warning in the node's log; 32 levels still convert; bad JSON is dropped too."""
    c = codec(codecs, lang, fmt)
    for hex_in in MALFORMED[fmt]:
        assert c.refused("to_json", bytes.fromhex(hex_in)), hex_in
    assert c.call("to_json", nested(MAX_DEPTH, fmt)) == b"[" * MAX_DEPTH + b"1" + b"]" * MAX_DEPTH
    assert c.refused("to_json", nested(MAX_DEPTH + 1, fmt))
    assert c.refused("to_json", nested(10_000, fmt))
    if fmt == "cbor":
        assert c.refused("to_json", b"\xc1" * (MAX_DEPTH + 1) + b"\x01")  # tags count as levels
    deep = b"[" * MAX_DEPTH + b"1" + b"]" * MAX_DEPTH
    assert c.call("from_json", deep) == nested(MAX_DEPTH, fmt)
    assert c.refused("from_json", b"[" + deep + b"]")
    # a "$" object for a scalar is no level of its own
    leaf = b"[" * MAX_DEPTH + b'{"$float":"NaN"}' + b"]" * MAX_DEPTH
    assert c.call("from_json", leaf) is not None
    assert c.refused("from_json", b"[" * MAX_DEPTH + b'{"a":1}' + b"]" * MAX_DEPTH)
    for bad in (b"", b"[1,", b"{1:2}", b'{"$float":"nan"}', b'{"$bytes":"!"}', b"01", b"[1] 2"):
        assert c.refused("from_json", bad), bad


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("fmt", FORMATS)
def test_per_message_cost_of_a_200_byte_payload(codecs: Codecs, lang: str, fmt: str) -> None:
    """A ~200-byte reading converts within the default budgets, and stays well under the
    default 100 ms deadline per message (the time is printed for the record)."""
    c = codec(codecs, lang, fmt)
    value = {
        "device": "pump-7",
        "ts": 1733580000123,
        "temp": 21.5,
        "ok": True,
        "readings": [1.25, 2.5, -3.75, 4.0, 5.125, 6.0, 7.5, 8.25],
        "counts": list(range(100, 116)),
        "raw": b"\x00\x01\x02\x03\x04\x05\x06\x07",
        "site": {"name": "north field", "lat": 52.5200066, "lon": 13.404954},
    }
    data = cbor2.dumps(value) if fmt == "cbor" else msgpack.packb(value, use_bin_type=True)
    assert 150 <= len(data) <= 260
    text = c.call("to_json", data)
    assert text is not None
    n = 300
    start = time.perf_counter()
    for _ in range(n):
        c.call("to_json", data)
    to_json_us = (time.perf_counter() - start) / n * 1e6
    start = time.perf_counter()
    for _ in range(n):
        c.call("from_json", text)
    from_json_us = (time.perf_counter() - start) / n * 1e6
    size = c.size
    print(f"{lang} {fmt}: {len(data)} B, to_json {to_json_us:.1f} us, "
          f"from_json {from_json_us:.1f} us, module {size} B")  # fmt: skip
    assert to_json_us < 20_000 and from_json_us < 20_000
