"""The deploy message: its wire format, signing and verification (docs/deploy.md).

Shared by the node (verify) and `edged module push` (sign), so both read one definition.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from edged.config.model import CAPABILITIES, ParamValue
from edged.errors import DeployRefused
from edged.keys import key_id

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )


# cryptography is imported where a key is used, not here: it costs ~7 MiB of RSS, and a node
# without deploys enabled (or one that is only parsing a deploy message) never needs it.

MAGIC = b"EDGED-DEPLOY/1\n"
SIGNING_CONTEXT = b"edged-deploy-v1\0"


@dataclass(frozen=True, kw_only=True, slots=True)
class Manifest:
    module: str
    version: int
    sha256: str
    abi: int
    params: dict[str, ParamValue] | None = None
    key_id: str | None = None
    signature: str | None = None
    request_id: str | None = None
    #: the WASI capabilities the module needs (docs/filter-abi.md, "WASI"); signed with it
    capabilities: list[str] | None = None

    def signing_bytes(self) -> bytes:
        body: dict[str, Any] = {
            "abi": self.abi,
            "module": self.module,
            "params": self.params,
            "sha256": self.sha256,
            "version": self.version,
        }
        if self.capabilities is not None:  # absent from older manifests, whose bytes stay
            body["capabilities"] = sorted(self.capabilities)
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        return SIGNING_CONTEXT + canonical.encode()

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "module": self.module,
            "version": self.version,
            "sha256": self.sha256,
            "abi": self.abi,
            "params": self.params,
        }
        for key in ("capabilities", "key_id", "signature", "request_id"):
            if (value := getattr(self, key)) is not None:
                out[key] = value
        return out


def build(
    module: str,
    version: int,
    wasm: bytes,
    *,
    key: Ed25519PrivateKey | None,
    params: dict[str, ParamValue] | None = None,
    request_id: str | None = None,
    abi: int = 1,
    capabilities: list[str] | None = None,
) -> bytes:
    """A complete deploy message, signed with `key` (unsigned when None)."""
    manifest = Manifest(
        module=module,
        version=version,
        sha256=hashlib.sha256(wasm).hexdigest(),
        abi=abi,
        params=params,
        request_id=request_id,
        capabilities=sorted(capabilities) if capabilities is not None else None,
    )
    if key is not None:
        signature = base64.b64encode(key.sign(manifest.signing_bytes())).decode()
        manifest = Manifest(
            **{**manifest.to_json(), "key_id": key_id(key.public_key()), "signature": signature}
        )
    line = json.dumps(manifest.to_json(), separators=(",", ":")).encode()
    return MAGIC + line + b"\n" + wasm


def parse(message: bytes) -> tuple[Manifest, bytes]:
    """Split and type-check a deploy message; DeployRefused('malformed') on anything off."""
    if not message.startswith(MAGIC):
        raise DeployRefused("malformed", "does not start with EDGED-DEPLOY/1")
    head, sep, wasm = message[len(MAGIC) :].partition(b"\n")
    if not sep:
        raise DeployRefused("malformed", "no newline after the manifest")
    try:
        raw = json.loads(head)
    except ValueError as exc:
        raise DeployRefused("malformed", f"manifest is not JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise DeployRefused("malformed", "manifest is not a JSON object")
    rid = raw.get("request_id") if isinstance(raw.get("request_id"), str) else None
    try:
        _check_fields(raw)
    except DeployRefused as exc:
        exc.request_id = rid
        raise
    return Manifest(**raw), wasm


def _check_fields(raw: dict[str, Any]) -> None:
    checks: dict[str, tuple[type | tuple[type, ...], bool]] = {
        "module": (str, True),
        "version": (int, True),
        "sha256": (str, True),
        "abi": (int, True),
        "params": ((dict, type(None)), False),
        "key_id": ((str, type(None)), False),
        "signature": ((str, type(None)), False),
        "request_id": ((str, type(None)), False),
        "capabilities": ((list, type(None)), False),
    }
    for field, (kind, required) in checks.items():
        if field not in raw:
            if required:
                raise DeployRefused("malformed", f"manifest has no '{field}'")
            continue
        value = raw[field]
        if (isinstance(value, bool) and kind is int) or not isinstance(value, kind):
            raise DeployRefused("malformed", f"manifest field '{field}' has the wrong type")
    unknown = sorted(set(raw) - set(checks))
    if unknown:
        raise DeployRefused("malformed", f"manifest has unknown fields: {', '.join(unknown)}")
    params = raw.get("params")
    if params is not None and not all(
        isinstance(k, str) and isinstance(v, str | int | float | bool) for k, v in params.items()
    ):
        raise DeployRefused("malformed", "params must map names to strings, numbers or booleans")
    capabilities = raw.get("capabilities")
    if capabilities is not None and not all(c in CAPABILITIES for c in capabilities):
        raise DeployRefused("malformed", f"capabilities must be names of {', '.join(CAPABILITIES)}")


def verify(
    manifest: Manifest,
    wasm: bytes,
    trusted: dict[str, Ed25519PublicKey],
    *,
    allow_unsigned: bool,
) -> bool:
    """Check signature and digest; True when the deploy was unsigned (and that is allowed)."""
    unsigned = manifest.signature is None
    if unsigned and not allow_unsigned:
        raise DeployRefused("unsigned", "the module is not signed and unsigned deploys are off")
    if not unsigned:
        public = trusted.get(manifest.key_id or "")
        if public is None:
            raise DeployRefused("unknown_key", f"key {manifest.key_id!r} is not trusted here")
        from cryptography.exceptions import InvalidSignature

        try:
            signature = base64.b64decode(manifest.signature or "", validate=True)
            public.verify(signature, manifest.signing_bytes())
        except (InvalidSignature, ValueError):
            raise DeployRefused("bad_signature", "the signature does not verify") from None
    digest = hashlib.sha256(wasm).hexdigest()
    if digest != manifest.sha256:
        raise DeployRefused(
            "digest_mismatch",
            f"bytes hash to {digest[:16]}…, manifest says {manifest.sha256[:16]}…",
        )
    return unsigned
