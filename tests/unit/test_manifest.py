"""The deploy message (docs/deploy.md): its format, what parse refuses, what verify refuses."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from edged import keys
from edged.deploy import manifest
from edged.errors import DeployRefused

WASM = b"\0asm\x01\0\0\0" + bytes(range(200))
# A fixed key, so that key ids and signatures can be compared with known values.
FIXED = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))


def raw(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(Encoding.Raw, PublicFormat.Raw)


def trusted(*private: Ed25519PrivateKey) -> dict[str, Ed25519PublicKey]:
    return {keys.key_id(k.public_key()): k.public_key() for k in private}


def message(**kwargs: Any) -> bytes:
    args: dict[str, Any] = {"key": FIXED, "params": {"limit": 31}, "request_id": "r1"}
    args.update(kwargs)
    return manifest.build("threshold", 7, WASM, **args)


def rewrite(msg: bytes, **changes: Any) -> bytes:
    """The message with manifest fields changed (None removes one), the bytes kept."""
    head, _, wasm = msg[len(manifest.MAGIC) :].partition(b"\n")
    fields = json.loads(head)
    for key, value in changes.items():
        if value is None:
            fields.pop(key, None)
        else:
            fields[key] = value
    return manifest.MAGIC + json.dumps(fields).encode() + b"\n" + wasm


def refusal(msg: bytes, keys: dict[str, Ed25519PublicKey] | None = None, **kw: bool) -> str:
    with pytest.raises(DeployRefused) as caught:
        m, wasm = manifest.parse(msg)
        manifest.verify(m, wasm, trusted(FIXED) if keys is None else keys, **kw)
    return caught.value.reason


def test_build_parse_verify_round_trip() -> None:
    """A built message parses back to the same fields and bytes and verifies with the key."""
    m, wasm = manifest.parse(message(params={"limit": 31, "ratio": 0.5, "on": True, "u": "C"}))
    assert wasm == WASM
    assert (m.module, m.version, m.abi, m.request_id) == ("threshold", 7, 1, "r1")
    assert m.params == {"limit": 31, "ratio": 0.5, "on": True, "u": "C"}
    assert m.sha256 == hashlib.sha256(WASM).hexdigest()
    assert m.key_id == keys.key_id(FIXED.public_key())
    assert manifest.verify(m, wasm, trusted(FIXED), allow_unsigned=False) is False


def test_message_layout_is_magic_one_json_line_then_the_bytes() -> None:
    """The wire format is `EDGED-DEPLOY/1\\n`, one line of JSON, `\\n`, then the module's bytes."""
    msg = message()
    assert msg.startswith(b"EDGED-DEPLOY/1\n")
    head, sep, rest = msg[len(b"EDGED-DEPLOY/1\n") :].partition(b"\n")
    assert sep and rest == WASM
    assert json.loads(head)["module"] == "threshold"


def test_signature_covers_the_documented_canonical_bytes() -> None:
    """The signature is ed25519 over the context and the sorted, compact JSON of five fields."""
    m, _ = manifest.parse(message())
    body = {
        "abi": 1,
        "module": "threshold",
        "params": {"limit": 31},
        "sha256": hashlib.sha256(WASM).hexdigest(),
        "version": 7,
    }
    signed = b"edged-deploy-v1\0" + json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    assert m.signature is not None
    FIXED.public_key().verify(base64.b64decode(m.signature), signed)  # raises if not


def test_no_params_and_no_request_id_round_trip() -> None:
    """Params and request_id are optional: a message without them parses and verifies."""
    m, wasm = manifest.parse(manifest.build("avg", 1, WASM, key=FIXED))
    assert m.params is None and m.request_id is None
    assert manifest.verify(m, wasm, trusted(FIXED), allow_unsigned=False) is False


def test_request_id_is_not_signed() -> None:
    """Changing only the request_id keeps the signature valid: it only correlates acks."""
    m, wasm = manifest.parse(rewrite(message(), request_id="another"))
    assert m.request_id == "another"
    assert manifest.verify(m, wasm, trusted(FIXED), allow_unsigned=False) is False


@pytest.mark.parametrize(
    ("msg", "says"),
    [
        (b"", "does not start with"),
        (b"EDGED-DEPLOY/2\n{}\n", "does not start with"),
        (b"edged-deploy/1\n{}\n", "does not start with"),
        (b"EDGED-DEPLOY/1\n" + b'{"module": "m"}', "no newline"),
        (b"EDGED-DEPLOY/1\n{not json\n\0asm", "not JSON"),
        (b"EDGED-DEPLOY/1\n\xff\xfe\n\0asm", "not JSON"),
        (b"EDGED-DEPLOY/1\n[1, 2]\n\0asm", "not a JSON object"),
        (b"EDGED-DEPLOY/1\n\n\0asm", "not JSON"),
    ],
)
def test_parse_refuses_what_is_not_the_format(msg: bytes, says: str) -> None:
    """Anything not `magic, JSON object line, bytes` is refused as malformed, saying why."""
    with pytest.raises(DeployRefused) as caught:
        manifest.parse(msg)
    assert caught.value.reason == "malformed"
    assert says in caught.value.detail


@pytest.mark.parametrize("field", ["module", "version", "sha256", "abi"])
def test_parse_refuses_a_missing_required_field(field: str) -> None:
    """module, version, sha256 and abi must be present."""
    with pytest.raises(DeployRefused) as caught:
        manifest.parse(rewrite(message(), **{field: None}))
    assert caught.value.reason == "malformed"
    assert f"no '{field}'" in caught.value.detail


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("module", 5),
        ("version", "7"),
        ("version", 7.0),
        ("version", True),
        ("sha256", 1),
        ("abi", "1"),
        ("abi", False),
        ("params", [1, 2]),
        ("params", "limit=31"),
        ("key_id", 12),
        ("signature", ["x"]),
        ("request_id", 3),
    ],
)
def test_parse_refuses_a_field_of_the_wrong_type(field: str, value: object) -> None:
    """Every manifest field has one JSON type; booleans do not pass for integers."""
    with pytest.raises(DeployRefused) as caught:
        manifest.parse(rewrite(message(), **{field: value}))
    assert caught.value.reason == "malformed"
    assert f"'{field}' has the wrong type" in caught.value.detail


def test_parse_refuses_unknown_fields() -> None:
    """A manifest with fields the format does not define is refused, naming them."""
    with pytest.raises(DeployRefused) as caught:
        manifest.parse(rewrite(message(), extra=1, also="x"))
    assert caught.value.reason == "malformed"
    assert "unknown fields: also, extra" in caught.value.detail


@pytest.mark.parametrize("value", [{"a": 1}, [1], None])
def test_parse_refuses_params_that_are_not_scalars(value: object) -> None:
    """Param values must be strings, numbers or booleans."""
    msg = rewrite(message(), params={"limit": value})
    with pytest.raises(DeployRefused) as caught:
        manifest.parse(msg)
    assert caught.value.reason == "malformed"
    assert "params must map names" in caught.value.detail


def test_parse_accepts_explicit_nulls_for_optional_fields() -> None:
    """params, key_id, signature and request_id may be null, meaning absent."""
    nulls = {"params": None, "key_id": None, "signature": None, "request_id": None}
    head, _, wasm = message()[len(manifest.MAGIC) :].partition(b"\n")
    fields = {**json.loads(head), **nulls}
    m, _ = manifest.parse(manifest.MAGIC + json.dumps(fields).encode() + b"\n" + wasm)
    assert (m.params, m.key_id, m.signature, m.request_id) == (None, None, None, None)


def test_verify_refuses_unsigned_unless_allowed() -> None:
    """An unsigned deploy is refused 'unsigned', and accepted (reported as such) when allowed."""
    msg = message(key=None)
    assert refusal(msg, allow_unsigned=False) == "unsigned"
    m, wasm = manifest.parse(msg)
    assert m.signature is None and m.key_id is None
    assert manifest.verify(m, wasm, {}, allow_unsigned=True) is True


def test_verify_refuses_an_unknown_key() -> None:
    """A message signed by a key the node does not trust is refused 'unknown_key'."""
    other = Ed25519PrivateKey.generate()
    assert refusal(message(key=other), allow_unsigned=False) == "unknown_key"
    assert refusal(message(), {}, allow_unsigned=True) == "unknown_key"


@pytest.mark.parametrize(
    "changes",
    [
        {"params": {"limit": 32}},
        {"params": {"limit": 31, "extra": 1}},
        {"params": None},
        {"version": 8},
        {"module": "average"},
        {"abi": 2},
        {"sha256": hashlib.sha256(b"other").hexdigest()},
    ],
)
def test_verify_refuses_any_signed_field_changed(changes: dict[str, Any]) -> None:
    """Changing params, version, module, abi or sha256 after signing is 'bad_signature'."""
    assert refusal(rewrite(message(), **changes), allow_unsigned=False) == "bad_signature"


def test_verify_refuses_a_signature_that_is_not_one() -> None:
    """Garbage or another key's signature under the trusted key id is 'bad_signature'."""
    assert refusal(rewrite(message(), signature="not base64!"), allow_unsigned=False) == (
        "bad_signature"
    )
    forged = manifest.parse(message(key=Ed25519PrivateKey.generate()))[0].signature
    assert refusal(rewrite(message(), signature=forged), allow_unsigned=False) == "bad_signature"


def test_verify_refuses_tampered_bytes() -> None:
    """Module bytes that do not hash to the signed sha256 are 'digest_mismatch'."""
    msg = message()
    tampered = msg[:-1] + bytes([msg[-1] ^ 1])
    assert refusal(tampered, allow_unsigned=False) == "digest_mismatch"
    assert refusal(message(key=None)[:-3], allow_unsigned=True) == "digest_mismatch"


def test_load_public_key_from_base64_and_pem() -> None:
    """A trusted key may be written as base64 of the raw 32 bytes or as a PEM block."""
    public = FIXED.public_key()
    b64 = base64.b64encode(raw(public)).decode()
    pem = public.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()
    for text in (b64, f"  {b64}\n", pem, f"\n{pem}\n"):
        assert raw(keys.load_public_key(text)) == raw(public)


@pytest.mark.parametrize(
    "text",
    [
        base64.b64encode(bytes(31)).decode(),
        base64.b64encode(bytes(33)).decode(),
        "not base64 at all!",
        "",
    ],
)
def test_load_public_key_refuses_what_is_not_an_ed25519_key(text: str) -> None:
    """A wrong length, text that is not base64, or nothing at all is a ValueError."""
    with pytest.raises(ValueError):
        keys.load_public_key(text)


def test_load_public_key_refuses_a_pem_of_another_algorithm() -> None:
    """A PEM public key of another algorithm is refused, not taken for an ed25519 one."""
    ec_pem = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    with pytest.raises(ValueError, match="not an ed25519 public key"):
        keys.load_public_key(ec_pem)


def test_key_id_is_stable() -> None:
    """The key id is the first 16 hex of SHA-256 of the raw public key, however it was loaded."""
    public = FIXED.public_key()
    expected = hashlib.sha256(raw(public)).hexdigest()[:16]
    assert keys.key_id(public) == expected == "56475aa75463474c"
    pem = public.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()
    b64 = base64.b64encode(raw(public)).decode()
    assert keys.key_id(keys.load_public_key(pem)) == expected
    assert keys.key_id(keys.load_public_key(b64)) == expected
    assert keys.key_id(Ed25519PrivateKey.generate().public_key()) != expected


def test_capabilities_are_signed_and_a_manifest_without_them_signs_as_before() -> None:
    """The WASI capabilities a push asks for are part of what is signed: granting more by
    editing the manifest breaks the signature. Without them, the signed bytes are the five
    fields as before, so older pushes verify unchanged."""
    m, wasm = manifest.parse(message(capabilities=["random", "clock"]))
    assert m.capabilities == ["clock", "random"]
    assert manifest.verify(m, wasm, trusted(FIXED), allow_unsigned=False) is False
    widened = rewrite(message(capabilities=["clock"]), capabilities=["clock", "log"])
    assert refusal(widened, allow_unsigned=False) == "bad_signature"
    dropped = rewrite(message(capabilities=["clock"]), capabilities=None)
    assert refusal(dropped, allow_unsigned=False) == "bad_signature"
    plain, _ = manifest.parse(message())
    assert b"capabilities" not in plain.signing_bytes()


def test_an_unknown_capability_is_malformed() -> None:
    assert refusal(rewrite(message(), capabilities=["network"]), allow_unsigned=False) == (
        "malformed"
    )
